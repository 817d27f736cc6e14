"""Fuzz target: any bytes as a capture file, read to the end by `open_reader` as a scrub reads it.

Only `TraceFormatError` may come out, located in the input; the frames read before it must be
consistent (numbered in order, on a described interface, of that interface's link type). The
same bytes compressed with gzip and with zstd must read exactly the same (frames, interfaces,
notices, and the error with its location): compressed input is located in uncompressed bytes.

Input: the bytes of a file as stored (pcap, pcapng, or anything else), given on stdin in memory.
Seeds: capture files, e.g. `../shared/corpus` and `sample_pcaps` (compressed ones included).
Run: `python fuzz/readers.py [libFuzzer options] [corpus directories]` (see fuzz/README.md).
"""

from __future__ import annotations

import gzip
import io
import sys
from dataclasses import dataclass

import atheris
import zstandard

with atheris.instrument_imports(include=["anontrace"]):
    from harness import fuzz

    from anontrace.errors import TraceFormatError
    from anontrace.io.capture import open_reader
    from anontrace.io.limits import MAX_RECORD
    from anontrace.io.stream import GZIP_MAGIC, ZSTD_MAGIC
    from anontrace.packet.frame import Frame, Interface

STDIN = "<stdin>"
ZSTD = zstandard.ZstdCompressor(write_checksum=True)


@dataclass(frozen=True)
class Read:
    """Everything a reader made of one input."""

    frames: list[Frame]
    interfaces: list[Interface]
    notices: dict[str, int]
    error: tuple[str, str] | None  # (where, what)


def read(data: bytes) -> Read:
    """Read `data` as stdin to the end (and hash it, as the manifest does), checking each frame."""
    sys.stdin = io.TextIOWrapper(io.BytesIO(data))
    frames: list[Frame] = []
    try:
        reader = open_reader("-")
    except TraceFormatError as error:
        return Read(frames, [], {}, located(error))
    try:
        for frame in reader:
            check(frame, len(frames), reader.interfaces)
            frames.append(frame)
        reader.stream.digest()
    except TraceFormatError as error:
        return Read(frames, list(reader.interfaces), dict(reader.notices), located(error))
    finally:
        reader.stream.close()
    return Read(frames, list(reader.interfaces), dict(reader.notices), None)


def located(error: TraceFormatError) -> tuple[str, str]:
    assert error.where.startswith(STDIN) and error.what, (error.where, error.what)
    return error.where, error.what


def check(frame: Frame, count: int, interfaces: list[Interface]) -> None:
    assert frame.index == count, (frame.index, count)
    assert 0 <= frame.iface < len(interfaces), (frame.iface, len(interfaces))
    assert frame.linktype == interfaces[frame.iface].linktype, frame
    assert len(frame.data) <= MAX_RECORD and frame.wirelen >= 0, frame


def test_one_input(data: bytes) -> None:
    plain = read(data)
    if data.startswith((GZIP_MAGIC, ZSTD_MAGIC)):
        return  # compressing it again would read differently, and rightly so
    for compress in (lambda d: gzip.compress(d, mtime=0), ZSTD.compress):
        assert read(compress(data)) == plain, "compressed input reads differently"


if __name__ == "__main__":
    fuzz(test_one_input)
