"""Shared checks every transform, built-in or third-party, must pass (`conformance`)."""
