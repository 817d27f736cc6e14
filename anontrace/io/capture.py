"""Open captures for reading by magic; open outputs atomically, format and compression by name."""

from __future__ import annotations

import gzip
import os
import shutil
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
from anontrace.io.stream import CHUNK, DamagedInput, open_input

Reader = PcapReader | PcapngReader
Writer = PcapWriter | PcapngWriter
FORMATS = {".pcap": "pcap", ".cap": "pcap", ".dmp": "pcap", ".pcapng": "pcapng", ".ntar": "pcapng"}
COMPRESSIONS = (".gz", ".zst")


def open_reader(path: str) -> Reader:
    """Open a pcap or pcapng capture (possibly compressed, `-` for stdin), found by its magic."""
    stream = open_input(path)
    try:
        head = stream.read(4)
    except DamagedInput as exc:
        stream.close()
        raise TraceFormatError(f"{stream.name}: byte 0", exc.what, exc.hint) from None
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


class StagedOutput:
    """An output built in a hidden temporary file and published under its name only on request.

    The temporary file sits beside `path` (so publishing is one atomic rename), or in the temporary
    directory for `-` (stdout gets a copy of it when published). Until `publish`, nothing exists
    under the final name; `discard` (or leaving the `with` block unpublished, by an error or an
    interruption) removes the temporary file. `seal` finishes the file so it can be read back:
    the leakage report scans an output before deciding whether it may be published.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        if path == "-":
            directory, name = tempfile.gettempdir(), "stdout"
        else:
            directory, name = str(Path(path).parent), Path(path).name
        try:
            fd, self.temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".partial")
        except OSError as exc:
            raise OutputError(path, f"cannot create output: {exc.strerror}",
                              "check that the directory exists and is writable") from None
        self._raw = os.fdopen(fd, "wb")
        compression = output_format(path, "pcap")[1] if path != "-" else ""
        self.stream: BinaryIO = self._raw
        if compression == ".gz":
            self.stream = gzip.GzipFile(fileobj=self._raw, mode="wb", mtime=0)  # type: ignore[assignment]
        elif compression == ".zst":
            self.stream = zstandard.ZstdCompressor().stream_writer(self._raw, closefd=False)
        self.published = False

    def __enter__(self) -> StagedOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.published:
            self.discard()

    def seal(self) -> None:
        """Finish writing: flush any compression and the file to disk, and close it."""
        if self._raw.closed:
            return
        try:
            if self.stream is not self._raw:
                self.stream.close()
            self._raw.flush()
            os.fsync(self._raw.fileno())
        except OSError as exc:
            raise OutputError(self.path, f"cannot write output: {exc.strerror}") from None
        finally:
            self._raw.close()

    def publish(self) -> None:
        """Make the output appear under its final name (or on stdout), all at once."""
        self.seal()
        try:
            if self.path == "-":
                with open(self.temporary, "rb") as staged:
                    shutil.copyfileobj(staged, sys.stdout.buffer, CHUNK)
                sys.stdout.buffer.flush()
                os.unlink(self.temporary)
            else:
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(self.temporary, 0o666 & ~umask)
                os.replace(self.temporary, self.path)
        except OSError as exc:
            raise OutputError(self.path, f"cannot write output: {exc.strerror}") from None
        self.published = True

    def discard(self) -> None:
        """Remove the temporary file; nothing is left behind."""
        if not self._raw.closed:
            self._raw.close()
        if os.path.exists(self.temporary):
            os.unlink(self.temporary)


@contextmanager
def atomic_output(path: str) -> Iterator[BinaryIO]:
    """A binary stream that appears under `path` (or on stdout for `-`) only if the block finishes
    without an error; see `StagedOutput`."""
    with StagedOutput(path) as staged:
        yield staged.stream
        staged.publish()
