"""Split a capture file at record boundaries into pieces that can be read on their own.

A piece (`Chunk`) is a byte range of the file that starts at a record (pcap) or block (pcapng),
with what a reader needs to start there: the global number of the first frame, and the file's
header (pcap) or the section's byte order and the interfaces described so far (pcapng). Reading
the pieces one after the other gives exactly the frames (and errors) of reading the whole file.

The walk that finds the boundaries reads only record headers, through `mmap`. Where it meets
anything it cannot vouch for (a record that claims too much, a block whose lengths disagree, an
interface the reader would refuse), it stops splitting: the rest of the file becomes the last
piece, and the reader of that piece meets the damage and reports it exactly as a whole-file read
would, at the same frame number and byte offset. Only uncompressed regular files are split.
"""

from __future__ import annotations

import hashlib
import io
import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from anontrace.errors import TraceFormatError
from anontrace.io.capture import Reader
from anontrace.io.limits import MAX_RECORD
from anontrace.io.pcap import HEADER, MAGICS, RECORD, PcapReader, record_limit
from anontrace.io.pcapng import BYTE_ORDER_MAGIC, EPB, IDB, OPB, SHB, SHB_SHORTEST, SPB, PcapngReader
from anontrace.io.stream import ByteStream
from anontrace.packet.frame import NS_PER_SECOND, Interface

HASH_STEP = 8 << 20  # bytes hashed at a time while walking


@dataclass(frozen=True, slots=True)
class Section:
    """A pcapng reader's state between blocks: byte order, the interfaces described so far (all
    sections), their `if_tsoffset`s, and the current section's interface ids."""

    order: str
    interfaces: tuple[Interface, ...]
    offsets: tuple[int, ...]
    section: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes `start` to `end` (None: the end of the file) of `source`, holding the frames numbered
    from `first` (0-based, in the whole file); `frames` is how many (None when not counted).
    `state` is the pcap file header, or the pcapng reader's state at `start`."""

    source: str
    start: int
    end: int | None
    first: int
    frames: int | None
    state: bytes | Section

    def describe(self) -> str:
        end = "the end" if self.end is None else f"byte {self.end}"
        return f"{self.source}: bytes {self.start} to {end} (from frame {self.first + 1})"


class Digest:
    """SHA-256 and size of a file, built while it is walked (the manifest needs them)."""

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.size = 0

    def hexdigest(self) -> tuple[str, int]:
        return self.sha256.hexdigest(), self.size


def splittable(path: str) -> bool:
    """Whether `path` is an uncompressed pcap or pcapng regular file (the kinds that can be split)."""
    if path == "-":
        return False
    try:
        if not Path(path).is_file():
            return False
        with open(path, "rb") as file:
            head = file.read(4)
    except OSError:
        return False
    if len(head) < 4:
        return False
    magic = struct.unpack("<I", head)[0]
    return magic in MAGICS or magic == SHB


def split_size(path: str) -> int:
    """The size of a file `splittable` accepted (0 if it is gone)."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def chunks(path: str, target: int, digest: Digest | None = None,
           clock: list[int] | None = None) -> Iterator[Chunk]:
    """The pieces of an uncompressed capture, each about `target` bytes, in file order, found
    lazily (the first piece can be at work while the walk goes on). `digest`, when given, is fed
    every byte of the file by the time the last piece is yielded; `clock` gets every frame's time
    (ns, as the reader gives it) up to the damage if any, each piece's before the piece is
    yielded."""
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size == 0:
            raise TraceFormatError(path, "file is empty", "a capture starts with a pcap or pcapng header")
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as view:
            hashed = 0
            walk = _pcap(path, view, target, clock) if struct.unpack_from("<I", view)[0] in MAGICS \
                else _pcapng(path, view, target, clock)
            for chunk in walk:
                if digest is not None:
                    hashed = _hash(view, hashed, size if chunk.end is None else chunk.end, digest)
                yield chunk
            if digest is not None:
                _hash(view, hashed, size, digest)


def _hash(view: mmap.mmap, start: int, end: int, digest: Digest) -> int:
    memory = memoryview(view)
    try:
        for at in range(start, end, HASH_STEP):
            digest.sha256.update(memory[at:min(at + HASH_STEP, end)])
    finally:
        memory.release()
    digest.size = max(digest.size, end)
    return end


def _pcap(path: str, view: mmap.mmap, target: int, clock: list[int] | None) -> Iterator[Chunk]:
    size = len(view)
    if size < HEADER:  # the reader says what is wrong with it
        yield Chunk(path, 0, None, 0, None, b"")
        return
    header = bytes(view[:HEADER])
    order, nanosecond = MAGICS[struct.unpack_from("<I", header)[0]]
    record = struct.Struct(order + "II").unpack_from
    scale = 1 if nanosecond else 1000
    limit = record_limit(struct.unpack_from(order + "I", header, 16)[0] or MAX_RECORD)
    caplen_at = struct.Struct(order + "I").unpack_from
    position = start = HEADER
    index = first = 0
    while position + RECORD <= size:
        caplen = caplen_at(view, position + 8)[0]
        if caplen > limit or position + RECORD + caplen > size:
            break  # damage: the last piece's reader reports it
        if clock is not None:
            seconds, fraction = record(view, position)
            clock.append(seconds * NS_PER_SECOND + fraction * scale)
        position += RECORD + caplen
        index += 1
        if position - start >= target and position < size:
            yield Chunk(path, start, position, first, index - first, header)
            start, first = position, index
    yield Chunk(path, start, None, first, None, header)


def _pcapng(path: str, view: mmap.mmap, target: int, clock: list[int] | None) -> Iterator[Chunk]:
    size = len(view)
    shadow = PcapngReader(ByteStream(io.BytesIO(), path), b"")  # parses SHBs and IDBs for their state
    position = start = 0
    index = first = 0
    state = _state(shadow)
    while position + 12 <= size:
        block = _block(view, position, shadow)
        if block is None:
            break
        block_type, length = block
        packet = block_type in (EPB, OPB, SPB)
        if block_type in (SHB, IDB) or (packet and clock is not None):
            body = view[position + 8:position + length - 4]  # copied only when it is read
            try:
                if block_type == SHB:
                    shadow._new_section(position, body)
                elif block_type == IDB:
                    shadow._interface(position, body)
                elif clock is not None:
                    clock.append(_time(shadow, block_type, body, position))
            except TraceFormatError:
                break  # the last piece's reader refuses it, located the same way
        position += length
        if packet:
            index += 1
            if position - start >= target and position < size:
                yield Chunk(path, start, position, first, index - first, state)
                start, first, state = position, index, _state(shadow)
    yield Chunk(path, start, None, first, None, state)


def _time(shadow: PcapngReader, block_type: int, body: bytes, position: int) -> int:
    """A packet block's time as the reader gives it (`TraceFormatError` where it refuses it)."""
    if block_type == SPB:
        return shadow._simple(position, body, 0).ts_ns
    return shadow._packet(block_type, position, body, 0).ts_ns


def _block(view: mmap.mmap, position: int, shadow: PcapngReader) -> tuple[int, int] | None:
    """The type and length of a whole, well-formed block at `position`, or None."""
    block_type = struct.unpack_from("<I", view, position)[0]  # SHB's type reads alike both ways
    if block_type == SHB:
        magic = struct.unpack_from("<I", view, position + 8)[0]
        if magic not in (BYTE_ORDER_MAGIC, 0x4D3C2B1A):
            return None
        shadow._order = "<" if magic == BYTE_ORDER_MAGIC else ">"
    order = shadow._order
    block_type, length = struct.unpack_from(order + "II", view, position)
    shortest = SHB_SHORTEST if block_type == SHB else 12
    if length < shortest or length % 4 or length > MAX_RECORD or position + length > len(view):
        return None
    if struct.unpack_from(order + "I", view, position + length - 4)[0] != length:
        return None
    return block_type, length


def _state(reader: PcapngReader) -> Section:
    return Section(reader._order, tuple(reader.interfaces), tuple(reader._offsets), tuple(reader._section))


class _Window(io.RawIOBase):
    """Reads byte ranges of a file one after the other, as if they were one stream."""

    def __init__(self, file: BinaryIO, ranges: list[tuple[int, int | None]]) -> None:
        super().__init__()
        self._file = file
        self._ranges = ranges
        self._left: int | None = 0
        self._next()

    def _next(self) -> bool:
        if not self._ranges:
            return False
        start, end = self._ranges.pop(0)
        self._file.seek(start)
        self._left = None if end is None else end - start
        return True

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while True:
            wanted = size if self._left is None else min(size, self._left)
            data = self._file.read(wanted) if wanted else b""
            if self._left is not None:
                self._left -= len(data)
            if data or not self._next():
                return data

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._file.close()
        super().close()


def open_chunk(chunk: Chunk) -> Reader:
    """A reader of one piece: frames numbered as in the whole file, errors located in it."""
    try:
        file = open(chunk.source, "rb")  # noqa: SIM115 - owned by the reader's stream
    except OSError as exc:
        raise TraceFormatError(chunk.source, f"cannot open: {exc.strerror}") from None
    reader: Reader
    if chunk.state == b"":  # too short for a header: read as a whole, to be refused as such
        stream = ByteStream(file, chunk.source)
        reader = PcapReader(stream, stream.read(4))
    elif isinstance(chunk.state, bytes):
        window = _Window(file, [(0, HEADER), (chunk.start, chunk.end)])
        stream = ByteStream(window, chunk.source, window)  # type: ignore[arg-type]
        reader = PcapReader(stream, stream.read(4))
    else:
        window = _Window(file, [(chunk.start, chunk.end)])
        stream = ByteStream(window, chunk.source, window)  # type: ignore[arg-type]
        reader = PcapngReader(stream, b"")
        reader._order = chunk.state.order
        reader.interfaces = list(chunk.state.interfaces)
        reader._offsets = list(chunk.state.offsets)
        reader._section = list(chunk.state.section)
    stream.offset = chunk.start
    reader.first_index = chunk.first
    return reader
