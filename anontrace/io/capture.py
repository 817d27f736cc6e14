"""Open captures for reading by magic; open outputs atomically, format and compression by name."""

from __future__ import annotations

import gzip
import os
import struct
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import zstandard

from anontrace.errors import OutputError, TraceFormatError
from anontrace.io.pcap import MAGICS, PcapReader, PcapWriter
from anontrace.io.pcapng import SHB, PcapngReader, PcapngWriter
from anontrace.io.stream import open_input

Reader = PcapReader | PcapngReader
Writer = PcapWriter | PcapngWriter
FORMATS = {".pcap": "pcap", ".cap": "pcap", ".dmp": "pcap", ".pcapng": "pcapng", ".ntar": "pcapng"}
COMPRESSIONS = (".gz", ".zst")


def open_reader(path: str) -> Reader:
    """Open a pcap or pcapng capture (possibly compressed, `-` for stdin), found by its magic."""
    stream = open_input(path)
    head = stream.read(4)
    if not head:
        stream.close()
        raise TraceFormatError(stream.name, "file is empty", "a capture starts with a pcap or pcapng header")
    magic = struct.unpack("<I", head.ljust(4, b"\0"))[0]
    try:
        if len(head) == 4 and magic in MAGICS:
            return PcapReader(stream, head)
        if len(head) == 4 and magic == SHB:
            return PcapngReader(stream, head)
    except TraceFormatError:
        stream.close()
        raise
    stream.close()
    raise TraceFormatError(f"{stream.name}: byte 0", f"not a pcap or pcapng file (starts with {head.hex()})",
                           "give a .pcap or .pcapng capture, optionally gzip or zstd compressed")


def output_format(path: str, input_format: str) -> tuple[str, str]:
    """(capture format, compression suffix) for an output path: by extension, else the input's."""
    name = Path(path).name.lower()
    compression = next((c for c in COMPRESSIONS if name.endswith(c)), "")
    base = name.removesuffix(compression) if compression else name
    return FORMATS.get(Path(base).suffix, input_format), compression


def make_writer(out: BinaryIO, name: str, capture_format: str, reader: Reader) -> Writer:
    if capture_format == "pcapng":
        return PcapngWriter(out, name)
    link_field = reader.link_field if isinstance(reader, PcapReader) else None
    return PcapWriter(out, name, link_field)


@contextmanager
def atomic_output(path: str) -> Iterator[BinaryIO]:
    """A binary stream that appears under `path` only if the block finishes without an error.

    The data goes to a hidden temporary file beside `path`, which is renamed over it at the end
    and removed on any failure or interruption. `-` writes to stdout (which cannot be undone).
    """
    if path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    try:
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    except OSError as exc:
        raise OutputError(path, f"cannot create output: {exc.strerror}",
                          "check that the directory exists and is writable") from None
    raw = os.fdopen(fd, "wb")
    compression = output_format(path, "pcap")[1]
    stream: BinaryIO = raw
    if compression == ".gz":
        stream = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0)  # type: ignore[assignment]
    elif compression == ".zst":
        stream = zstandard.ZstdCompressor().stream_writer(raw, closefd=False)
    try:
        yield stream
        if stream is not raw:
            stream.close()
        raw.flush()
        os.fsync(raw.fileno())
        raw.close()
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, target)
    except OSError as exc:
        raise OutputError(path, f"cannot write output: {exc.strerror}") from None
    finally:
        if not raw.closed:
            raw.close()
        if os.path.exists(temporary):
            os.unlink(temporary)
