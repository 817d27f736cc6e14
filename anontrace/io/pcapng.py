"""pcapng: sections in either byte order, interfaces with their time resolution, EPB/SPB/OPB.

Only what a frame needs is read: link type, snap length, `if_tsresol` and `if_tsoffset`. All other
blocks (name resolution, statistics, decryption secrets, custom, ...) and every option carrying
names, comments or host details are left behind and counted, never copied to the output.
A file that ends inside a block (or whose compressed data breaks there) is refused with an error
located at that block's start, as in `pcap`.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterator
from typing import BinaryIO

from anontrace import __version__
from anontrace.errors import TraceFormatError
from anontrace.io.limits import MAX_RECORD
from anontrace.io.stream import ByteStream, DamagedInput
from anontrace.packet.frame import Frame, Interface, ns_to_units, units_to_ns
from anontrace.packet.linktypes import is_known

SHB, IDB, OPB, SPB, EPB = 0x0A0D0D0A, 0x00000001, 0x00000002, 0x00000003, 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
BLOCK_NAMES = {
    0x00000004: "name resolution", 0x00000005: "interface statistics",
    0x0000000A: "decryption secrets", 0x00000009: "systemd journal export",
    0x00000BAD: "custom", 0x40000BAD: "custom", 0x00000007: "IRIG timestamp",
    0x00000008: "ARINC 429",
}
OPT_TSRESOL, OPT_TSOFFSET = 9, 14
SHB_SHORTEST = 28  # type, length, byte-order magic, version, section length, trailing length


class PcapngReader:
    """Streams the frames of a pcapng file; `interfaces` grows as IDBs are read."""

    format = "pcapng"

    def __init__(self, stream: ByteStream, head: bytes) -> None:
        self.stream = stream
        self._head = head
        self.interfaces: list[Interface] = []
        self._offsets: list[int] = []  # if_tsoffset per interface, in seconds
        self._section: list[int] = []  # section-local interface id -> index in `interfaces`
        self._order = "<"
        self.notices: Counter[str] = Counter()
        self.first_index = 0  # the number of frames before the first one read (a split file's piece)

    def _where(self, offset: int, index: int | None = None) -> str:
        frame = f"frame {index + 1} " if index is not None else ""
        return f"{self.stream.name}: {frame}at byte {offset}"

    def _blocks(self) -> Iterator[tuple[int, int, bytes]]:
        """Yield (block type, file offset, body) for every block, checking lengths."""
        head = self._head
        while True:
            offset = self.stream.offset - len(head)
            try:
                block = self._block(head, offset)
            except DamagedInput as exc:  # compressed data broken inside this block: locate it here
                raise TraceFormatError(self._where(offset), exc.what, exc.hint) from None
            if block is None:
                return
            yield block
            head = b""

    def _block(self, head: bytes, offset: int) -> tuple[int, int, bytes] | None:
        """Read the block at `offset` (its first bytes already in `head`); None at the end."""
        stream = self.stream
        head += stream.read(8 - len(head))
        if not head:
            return None
        if len(head) < 8:
            raise TraceFormatError(self._where(offset), "file ends inside a block header")
        block_type = struct.unpack_from(self._order + "I", head)[0]
        if block_type == SHB:
            body_start = stream.read(4)
            if len(body_start) < 4:
                raise TraceFormatError(self._where(offset), "file ends inside a section header")
            magic = struct.unpack("<I", body_start)[0]
            if magic not in (BYTE_ORDER_MAGIC, 0x4D3C2B1A):
                raise TraceFormatError(self._where(offset + 8), "bad byte-order magic in section header")
            self._order = "<" if magic == BYTE_ORDER_MAGIC else ">"
        else:
            body_start = b""
        length = struct.unpack_from(self._order + "I", head, 4)[0]
        shortest = SHB_SHORTEST if block_type == SHB else 12
        if length < shortest or length % 4 or length > MAX_RECORD:
            raise TraceFormatError(self._where(offset), f"block length {length} is invalid",
                                   "the file is damaged at this point")
        body = body_start + stream.read(length - 12 - len(body_start))
        trailer = stream.read(4)
        if len(body) + len(trailer) < length - 8:
            raise TraceFormatError(self._where(offset), "file ends inside a block",
                                   "the capture was cut short; cut it at the last whole block")
        if struct.unpack(self._order + "I", trailer)[0] != length:
            raise TraceFormatError(self._where(offset), "block's trailing length differs from its header")
        return block_type, offset, body

    def __iter__(self) -> Iterator[Frame]:
        index = self.first_index
        for block_type, offset, body in self._blocks():
            if block_type in (EPB, OPB):
                frame = self._packet(block_type, offset, body, index)
            elif block_type == SPB:
                frame = self._simple(offset, body, index)
            elif block_type == IDB:
                self._interface(offset, body)
                continue
            elif block_type == SHB:
                self._new_section(offset, body)
                continue
            else:
                name = BLOCK_NAMES.get(block_type, f"type 0x{block_type:08x}")
                self.notices[f"{name} blocks left out"] += 1
                continue
            yield frame
            index += 1

    def _new_section(self, offset: int, body: bytes) -> None:
        """A section's interfaces are its own; a major version other than 1 is another format."""
        major = struct.unpack_from(self._order + "H", body, 4)[0]
        if major != 1:
            raise TraceFormatError(self._where(offset + 12), f"section header has major version {major}",
                                   "only pcapng version 1 is defined; the file is damaged at this point")
        self._section = []

    def _interface(self, offset: int, body: bytes) -> None:
        if len(body) < 8:
            raise TraceFormatError(self._where(offset), "interface description block is too short")
        linktype, _, snaplen = struct.unpack_from(self._order + "HHI", body)
        if not is_known(linktype):
            raise TraceFormatError(self._where(offset), f"link type {linktype} is not registered",
                                   "see https://www.tcpdump.org/linktypes.html")
        tsresol, tsoffset = 6, 0
        for code, value in self._options(body, 8, offset):
            if code == OPT_TSRESOL and len(value) >= 1:
                tsresol = value[0]
            elif code == OPT_TSOFFSET and len(value) >= 8:
                tsoffset = struct.unpack_from(self._order + "q", value)[0]
        self._section.append(len(self.interfaces))
        self.interfaces.append(Interface(linktype, snaplen, tsresol))
        self._offsets.append(tsoffset)

    def _options(self, body: bytes, start: int, offset: int) -> Iterator[tuple[int, bytes]]:
        pos = start
        while pos + 4 <= len(body):
            code, length = struct.unpack_from(self._order + "HH", body, pos)
            if code == 0:
                return
            end = pos + 4 + length
            if end > len(body):
                raise TraceFormatError(self._where(offset + 8 + pos), "option runs past its block")
            yield code, body[pos + 4:end]
            pos = end + (-length % 4)

    def _lookup(self, iface: int, offset: int, index: int) -> int:
        if iface >= len(self._section):
            raise TraceFormatError(self._where(offset, index),
                                   f"packet names interface {iface}, which the section has not described")
        return self._section[iface]

    def _packet(self, block_type: int, offset: int, body: bytes, index: int) -> Frame:
        fields = "IIIII" if block_type == EPB else "HHIIII"
        size = struct.calcsize(self._order + fields)
        if len(body) < size:
            raise TraceFormatError(self._where(offset, index), "packet block is too short")
        values = struct.unpack_from(self._order + fields, body)
        iface, high, low, caplen, wirelen = (values[0], *values[-4:])
        if caplen > len(body) - size:
            raise TraceFormatError(self._where(offset, index),
                                   f"packet claims {caplen} bytes, more than its block holds")
        glob = self._lookup(iface, offset, index)
        interface = self.interfaces[glob]
        ts_ns = units_to_ns((high << 32) | low, interface.tsresol) + self._offsets[glob] * 1_000_000_000
        return Frame(index, ts_ns, body[size:size + caplen], wirelen, interface.linktype, glob)

    def _simple(self, offset: int, body: bytes, index: int) -> Frame:
        if len(body) < 4:
            raise TraceFormatError(self._where(offset, index), "simple packet block is too short")
        glob = self._lookup(0, offset, index)
        interface = self.interfaces[glob]
        wirelen = struct.unpack_from(self._order + "I", body)[0]
        caplen = min(wirelen, len(body) - 4, interface.snaplen or MAX_RECORD)
        return Frame(index, 0, body[4:4 + caplen], wirelen, interface.linktype, glob)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _block(block_type: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


class PcapngWriter:
    """Writes one little-endian pcapng section; interfaces are described as frames first use them."""

    def __init__(self, out: BinaryIO, name: str) -> None:
        self._out = out
        self._name = name
        self._ids: dict[int, int] = {}  # input interface index -> output interface id
        options = _option(4, f"anontrace {__version__}".encode()) + _option(0, b"")
        out.write(_block(SHB, struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + options))

    def _describe(self, index: int, interface: Interface) -> int:
        options = b""
        if interface.tsresol != 6:
            options = _option(OPT_TSRESOL, bytes([interface.tsresol])) + _option(0, b"")
        body = struct.pack("<HHI", interface.linktype, 0, interface.snaplen) + options
        self._out.write(_block(IDB, body))
        self._ids[index] = len(self._ids)
        return self._ids[index]

    def write(self, index: int, interface: Interface, ts_ns: int, data: bytes | bytearray,
              wirelen: int, comment: str | None = None) -> None:
        iface = self._ids.get(index)
        if iface is None:
            iface = self._describe(index, interface)
        units = ns_to_units(ts_ns, interface.tsresol)
        if not 0 <= units < 1 << 64:
            raise TraceFormatError(self._name, f"timestamp {ts_ns} ns does not fit a pcapng block")
        options = b""
        if comment:
            options = _option(1, comment.encode()) + _option(0, b"")
        pad = b"\0" * (-len(data) % 4)
        length = 12 + 20 + len(data) + len(pad) + len(options)
        self._out.write(struct.pack("<IIIIIII", EPB, length, iface, units >> 32, units & 0xFFFFFFFF,
                                    len(data), wirelen))
        self._out.write(data)
        self._out.write(pad + options + struct.pack("<I", length))

    def finish(self, interfaces: list[Interface]) -> None:
        """Describe every input interface, used or not, so link types and resolutions survive."""
        for index, interface in enumerate(interfaces):
            if index not in self._ids:
                self._describe(index, interface)
