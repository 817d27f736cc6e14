"""Frames and their dissection into layer offsets; checksums."""
