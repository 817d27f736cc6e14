"""Byte sources: files or stdin, gzip/zstd detected by magic, read in large chunks."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path
from typing import BinaryIO

import zstandard

from anontrace.errors import TraceFormatError

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class ByteStream:
    """Sequential reads over a binary stream, buffered in large chunks, tracking the byte offset."""

    def __init__(self, raw: BinaryIO, name: str, counter: BinaryIO | None = None) -> None:
        self._raw = raw
        self._counter = counter or raw
        self.name = name
        self._buffer = b""
        self._pos = 0
        self.offset = 0

    def read(self, size: int) -> bytes:
        """Up to `size` bytes; fewer only at the end of the stream."""
        end = self._pos + size
        if end > len(self._buffer):
            self._fill(size)
            end = self._pos + size
        data = self._buffer[self._pos:end]
        self._pos += len(data)
        self.offset += len(data)
        return data

    def _fill(self, size: int) -> None:
        parts = [self._buffer[self._pos:]]
        have = len(parts[0])
        while have < size:
            try:
                chunk = self._raw.read(max(CHUNK, size - have))
            except (OSError, EOFError, zstandard.ZstdError) as exc:
                raise TraceFormatError(f"{self.name}: byte {self.offset + have}",
                                       f"cannot read input: {exc}") from None
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        self._buffer = b"".join(parts)
        self._pos = 0

    def raw_position(self) -> int:
        """How far into the underlying (possibly compressed) file reading has got, for progress."""
        try:
            return self._counter.tell()
        except (OSError, ValueError):
            return 0

    def close(self) -> None:
        self._raw.close()
        if self._counter is not self._raw:
            self._counter.close()


def open_input(path: str) -> ByteStream:
    """Open a capture file or `-` (stdin), undoing gzip or zstd compression found by magic."""
    name = "<stdin>" if path == "-" else path
    if path == "-":
        raw: BinaryIO = sys.stdin.buffer
    else:
        target = Path(path)
        if target.is_dir():
            raise TraceFormatError(name, "is a directory, not a capture file")
        try:
            raw = open(target, "rb")  # noqa: SIM115 - owned by the returned ByteStream
        except OSError as exc:
            raise TraceFormatError(name, f"cannot open: {exc.strerror}") from None
    head = raw.peek(4)[:4] if hasattr(raw, "peek") else b""
    if head.startswith(GZIP_MAGIC):
        return ByteStream(gzip.GzipFile(fileobj=raw, mode="rb"), name, raw)  # type: ignore[arg-type]
    if head.startswith(ZSTD_MAGIC):
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        return ByteStream(reader, name, raw)
    return ByteStream(raw, name)
