"""Byte sources: files or stdin, gzip/zstd detected by magic, read in large chunks."""

from __future__ import annotations

import gzip
import hashlib
import sys
import zlib
from pathlib import Path
from typing import BinaryIO

import zstandard

from anontrace.errors import TraceFormatError

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_DAMAGED_HINT = "the input is damaged or cut short (offsets in compressed input count uncompressed bytes)"


class DamagedInput(TraceFormatError):
    """The bytes under a capture could not be read (a read error, or compressed data that is damaged
    or ends early). `where` is the uncompressed offset at which reading failed; readers re-raise it
    located at the record they were reading, so every damaged capture is reported the same way."""


class ByteStream:
    """Sequential reads over a binary stream, buffered in large chunks, tracking the byte offset."""

    def __init__(self, raw: BinaryIO, name: str, counter: BinaryIO | None = None,
                 source: _Prefixed | None = None) -> None:
        self._raw = raw
        self._counter = counter or raw
        self._source = source
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
        """Buffer at least `size` bytes (fewer at the end), reading at most CHUNK at a time: a
        record that claims more bytes than the input holds costs only what the input holds."""
        parts = [self._buffer[self._pos:]]
        have = len(parts[0])
        while have < size:
            try:
                chunk = self._raw.read(CHUNK)
            except (OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
                raise DamagedInput(f"{self.name}: byte {self.offset + have}",
                                   f"cannot read input past byte {self.offset + have}: {exc}",
                                   _DAMAGED_HINT) from None
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

    def digest(self) -> tuple[str, int]:
        """SHA-256 (hex) and size of the whole file as stored, once the reader is done with it."""
        if self._source is None:
            return "", 0
        try:
            self._source.drain()
        except OSError as exc:
            raise TraceFormatError(self.name, f"cannot read input: {exc.strerror}") from None
        return self._source.sha256.hexdigest(), self._source.size

    def close(self) -> None:
        self._raw.close()
        if self._counter is not self._raw:
            self._counter.close()


class _Prefixed:
    """A stream whose first bytes were already read to find its format: hands them back first.
    It also hashes every byte of the file as stored (compressed or not), for the manifest."""

    def __init__(self, head: bytes, raw: BinaryIO) -> None:
        self._head = head
        self._raw = raw
        self.sha256 = hashlib.sha256(head)
        self.size = len(head)

    def _read_raw(self, size: int) -> bytes:
        data = self._raw.read(size)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._read_raw(size)
        if size < 0:
            data, self._head = self._head + self._read_raw(-1), b""
            return data
        data, self._head = self._head[:size], self._head[size:]
        return data if len(data) == size else data + self._read_raw(size - len(data))

    def drain(self) -> None:
        """Read what is left of the file (bytes after the last record) into the digest."""
        self._head = b""
        while self._read_raw(CHUNK):
            pass

    def tell(self) -> int:
        return self._raw.tell() - len(self._head)

    def close(self) -> None:
        self._raw.close()


class _Gunzip:
    """gzip input, read a decoded piece at a time. `GzipFile.read` fills its whole request before
    returning, so the data decoded before a break in the stream would be lost with the break,
    and the error would point at an earlier record than the one the damage is in."""

    def __init__(self, raw: BinaryIO) -> None:
        self._file = gzip.GzipFile(fileobj=raw, mode="rb")

    def read(self, size: int = -1) -> bytes:
        return self._file.read1(size)

    def close(self) -> None:
        self._file.close()


class _ZstdFrames:
    """Reads concatenated zstd frames, and refuses input that ends inside a frame."""

    def __init__(self, raw: _Prefixed) -> None:
        self._raw = raw
        self._frame = zstandard.ZstdDecompressor().decompressobj()
        self._started = False

    def read(self, size: int = -1) -> bytes:
        while True:
            chunk = self._raw.read(CHUNK)
            if not chunk:
                if self._started and not self._frame.eof:
                    raise EOFError("compressed input ends inside a zstd frame")
                return b""
            data = self._feed(chunk)
            if data:
                return data

    def _feed(self, chunk: bytes) -> bytes:
        parts = []
        while chunk:
            if self._frame.eof:
                self._frame = zstandard.ZstdDecompressor().decompressobj()
            self._started = True
            parts.append(self._frame.decompress(chunk))
            chunk = self._frame.unused_data if self._frame.eof else b""
        return b"".join(parts)

    def close(self) -> None:
        self._raw.close()


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
    try:
        head = raw.read(4)  # a buffered read: waits for all 4 bytes unless the input ends
    except OSError as exc:
        raw.close()
        raise TraceFormatError(name, f"cannot read: {exc.strerror}") from None
    source = _Prefixed(head, raw)
    counter: BinaryIO = source  # type: ignore[assignment]
    if head.startswith(GZIP_MAGIC):
        return ByteStream(_Gunzip(counter), name, counter, source)  # type: ignore[arg-type]
    if head.startswith(ZSTD_MAGIC):
        return ByteStream(_ZstdFrames(source), name, counter, source)  # type: ignore[arg-type]
    return ByteStream(counter, name, source=source)
