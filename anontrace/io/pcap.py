"""Classic pcap: microsecond and nanosecond magic, both byte orders, any snaplen.

A file that ends inside a record (or whose compressed data breaks there) is refused with an error
located at that record's start, and nothing is published; one that ends between records is whole.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterator
from typing import BinaryIO

from anontrace.errors import TraceFormatError
from anontrace.io.limits import MAX_PACKET, MAX_RECORD
from anontrace.io.stream import ByteStream, DamagedInput
from anontrace.packet.frame import NS_PER_SECOND, Frame, Interface
from anontrace.packet.linktypes import is_known

MAGICS = {  # magic as read little-endian -> (byte order, nanosecond)
    0xA1B2C3D4: ("<", False), 0xD4C3B2A1: (">", False),
    0xA1B23C4D: ("<", True), 0x4D3CB2A1: (">", True),
}
HEADER = 24
RECORD = 16
LINKTYPE_MASK = 0x03FFFFFF  # low bits: link type; top bits: FCS length flags (kept as they were)


class PcapReader:
    """Streams the frames of a classic pcap file."""

    format = "pcap"

    def __init__(self, stream: ByteStream, head: bytes) -> None:
        self.stream = stream
        self.notices: Counter[str] = Counter()
        self.first_index = 0  # the number of records before the first one read (a split file's piece)
        order, self.nanosecond = MAGICS[struct.unpack_from("<I", head)[0]]
        self._order = order
        try:
            header = head + stream.read(HEADER - len(head))
        except DamagedInput as exc:
            raise TraceFormatError(f"{stream.name}: byte 0", exc.what, exc.hint) from None
        if len(header) < HEADER:
            raise TraceFormatError(f"{stream.name}: byte 0",
                                   f"file ends inside the pcap file header ({len(header)} of {HEADER} bytes)",
                                   _TRUNCATED_HINT)
        _, _, _, _, _, snaplen, network = struct.unpack(order + "IHHiIII", header)
        self.link_field = network
        linktype = network & 0xFFFF
        if not is_known(linktype):
            raise TraceFormatError(f"{stream.name}: byte 20", f"link type {linktype} is not registered",
                                   "see https://www.tcpdump.org/linktypes.html")
        self.interfaces = [Interface(linktype, snaplen, 9 if self.nanosecond else 6)]

    def __iter__(self) -> Iterator[Frame]:
        stream, name = self.stream, self.stream.name
        unpack = struct.Struct(self._order + "IIII").unpack
        scale = 1 if self.nanosecond else 1000
        linktype = self.interfaces[0].linktype
        snaplen = self.interfaces[0].snaplen or MAX_RECORD
        limit = record_limit(snaplen)
        index = self.first_index
        while True:
            offset = stream.offset
            try:
                head = stream.read(RECORD)
                if not head:
                    return
                if len(head) < RECORD:
                    raise TraceFormatError(_at(name, index, offset), "file ends inside a record header",
                                           _TRUNCATED_HINT)
                seconds, fraction, caplen, wirelen = unpack(head)
                if caplen > limit:
                    raise TraceFormatError(_at(name, index, offset),
                                           f"record claims {caplen} bytes, more than the snaplen "
                                           f"or the {MAX_RECORD >> 20} MiB limit", _DAMAGED_HINT)
                if caplen > snaplen:
                    self.notices["records longer than the file's snaplen (read whole)"] += 1
                data = stream.read(caplen)
            except DamagedInput as exc:  # compressed data broken inside this record: locate it here
                raise TraceFormatError(_at(name, index, offset), exc.what, exc.hint) from None
            if len(data) < caplen:
                raise TraceFormatError(_at(name, index, offset),
                                       f"file ends inside the record ({len(data)} of {caplen} bytes)",
                                       _TRUNCATED_HINT)
            yield Frame(index, seconds * NS_PER_SECOND + fraction * scale, data, wirelen, linktype)
            index += 1


def record_limit(snaplen: int) -> int:
    """The most bytes a record may claim: records past the snaplen are read up to a limit."""
    return min(max(snaplen, MAX_PACKET), MAX_RECORD)


def _at(name: str, index: int, offset: int) -> str:
    """Where a record is: built only for an error, as the loop above is the hot path."""
    return f"{name}: frame {index + 1} at byte {offset}"


_TRUNCATED_HINT = "the capture was cut short; cut it at the last whole record (e.g. `editcap`)"
_DAMAGED_HINT = "the file is damaged at this point"


class PcapWriter:
    """Writes classic pcap; the header is written with the first frame's interface, in
    nanoseconds if that interface's resolution is finer than microseconds."""

    def __init__(self, out: BinaryIO, name: str, link_field: int | None = None) -> None:
        self._out = out
        self._name = name
        self.nanosecond = False
        self._link_field = link_field
        self._linktype: int | None = None
        self._pack = struct.Struct("<IIII").pack

    def _start(self, interface: Interface) -> None:
        field = self._link_field
        if field is None or field & 0xFFFF != interface.linktype:
            field = interface.linktype
        self.nanosecond = interface.finer_than_microseconds
        magic = 0xA1B23C4D if self.nanosecond else 0xA1B2C3D4
        self._out.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, interface.snaplen, field))
        self._linktype = interface.linktype

    def write(self, index: int, interface: Interface, ts_ns: int, data: bytes | bytearray,
              wirelen: int, comment: str | None = None) -> None:
        if self._linktype is None:
            self._start(interface)
        elif interface.linktype != self._linktype:
            raise TraceFormatError(self._name, "a pcap file holds one link type, the input has several",
                                   "write pcapng instead (give the output a .pcapng extension)")
        seconds, rest = divmod(ts_ns, NS_PER_SECOND)
        if not 0 <= seconds <= 0xFFFFFFFF:
            raise TraceFormatError(self._name, f"timestamp {ts_ns} ns does not fit a pcap record",
                                   "write pcapng instead (give the output a .pcapng extension)")
        fraction = rest if self.nanosecond else rest // 1000
        self._out.write(self._pack(seconds, fraction, len(data), wirelen))
        self._out.write(data)

    def finish(self, interfaces: list[Interface]) -> None:
        """Write the header even when no frame was written, so the output is a valid capture."""
        if self._linktype is None and interfaces:
            self._start(interfaces[0])
