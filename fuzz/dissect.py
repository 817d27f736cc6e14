"""Fuzz target: any bytes as a frame of any link type anontrace dissects, through the whole
per-frame path (dissection, cut, the transforms of every shipped profile, checksum fix-up).

Input: the first byte picks the link type (`harness.LINKTYPES[byte % n]`), the rest is the frame.
Run: `python fuzz/dissect.py [libFuzzer options] [corpus directories]` (see fuzz/README.md).
"""

from __future__ import annotations

import atheris  # type: ignore[import-untyped]

with atheris.instrument_imports(include=["anontrace"]):
    from harness import LINKTYPES, check_frame, fuzz


def test_one_input(data: bytes) -> None:
    if not data:
        return
    check_frame(data[1:], LINKTYPES[data[0] % len(LINKTYPES)])


if __name__ == "__main__":
    fuzz(test_one_input)
