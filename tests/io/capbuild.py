"""Helpers for the io tests: build pcap/pcapng files byte by byte with `struct`, read them back
with anontrace, and read our outputs with independent readers (scapy, tshark).

The builders follow the file formats as specified (libpcap file format; pcapng,
draft-ietf-opsawg-pcapng), not anontrace's code, so tests compare anontrace against the format.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import pytest
from scapy.utils import RawPcapNgReader, RawPcapReader

from anontrace.errors import TraceFormatError
from anontrace.io.capture import atomic_output, make_writer, open_reader
from anontrace.packet.frame import Frame, Interface

Order = Literal["<", ">"]
NS = 1_000_000_000
MiB = 1 << 20

# ---------------------------------------------------------------------------------------------
# classic pcap


def pcap_header(order: Order = "<", *, nano: bool = False, snaplen: int = 65535,
                network: int = 1) -> bytes:
    """The 24-byte file header; the magic is written in `order` like every other field."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    return struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, network)


def pcap_record(order: Order, seconds: int, fraction: int, data: bytes, *,
                wirelen: int | None = None, caplen: int | None = None) -> bytes:
    """A record header plus data; `caplen` may claim more bytes than `data` holds."""
    caplen = len(data) if caplen is None else caplen
    wirelen = len(data) if wirelen is None else wirelen
    return struct.pack(order + "IIII", seconds, fraction, caplen, wirelen) + data


# ---------------------------------------------------------------------------------------------
# pcapng

SHB, IDB, OPB, SPB, NRB, ISB, EPB, DSB = 0x0A0D0D0A, 1, 2, 3, 4, 5, 6, 0x0A
CUSTOM_COPY, CUSTOM_NOCOPY = 0x00000BAD, 0x40000BAD
OPT_COMMENT, IF_NAME, IF_DESCRIPTION, IF_MACADDR, IF_TSRESOL, IF_TSOFFSET = 1, 2, 3, 6, 9, 14
SHB_HARDWARE, SHB_OS, SHB_USERAPPL = 2, 3, 4


def option(order: Order, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def options(order: Order, *items: tuple[int, bytes]) -> bytes:
    """Options followed by opt_endofopt (nothing at all when there are none)."""
    if not items:
        return b""
    return b"".join(option(order, code, value) for code, value in items) + option(order, 0, b"")


def block(order: Order, block_type: int, body: bytes, *, length: int | None = None,
          trailer: int | None = None) -> bytes:
    """A generic block; `length` and `trailer` override the (otherwise correct) lengths."""
    body += b"\0" * (-len(body) % 4)
    real = 12 + len(body)
    head = real if length is None else length
    tail = real if trailer is None else trailer
    return struct.pack(order + "II", block_type, head) + body + struct.pack(order + "I", tail)


def shb(order: Order, *items: tuple[int, bytes]) -> bytes:
    body = struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1) + options(order, *items)
    return block(order, SHB, body)


def idb(order: Order, linktype: int, snaplen: int = 0, *items: tuple[int, bytes]) -> bytes:
    return block(order, IDB, struct.pack(order + "HHI", linktype, 0, snaplen) + options(order, *items))


def tsresol(value: int) -> tuple[int, bytes]:
    return (IF_TSRESOL, bytes([value]))


def tsoffset(order: Order, seconds: int) -> tuple[int, bytes]:
    return (IF_TSOFFSET, struct.pack(order + "q", seconds))


def _padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def epb(order: Order, iface: int, units: int, data: bytes, wirelen: int | None = None,
        *items: tuple[int, bytes], caplen: int | None = None) -> bytes:
    caplen = len(data) if caplen is None else caplen
    wirelen = len(data) if wirelen is None else wirelen
    fields = struct.pack(order + "IIIII", iface, units >> 32, units & 0xFFFFFFFF, caplen, wirelen)
    return block(order, EPB, fields + _padded(data) + options(order, *items))


def opb(order: Order, iface: int, units: int, data: bytes, wirelen: int | None = None) -> bytes:
    """Obsolete Packet Block: 16-bit interface id and drop count."""
    wirelen = len(data) if wirelen is None else wirelen
    fields = struct.pack(order + "HHIIII", iface, 0, units >> 32, units & 0xFFFFFFFF, len(data), wirelen)
    return block(order, OPB, fields + _padded(data))


def spb(order: Order, data: bytes, wirelen: int | None = None) -> bytes:
    """Simple Packet Block: the original length, then min(original length, snaplen) bytes."""
    wirelen = len(data) if wirelen is None else wirelen
    return block(order, SPB, struct.pack(order + "I", wirelen) + _padded(data))


def nrb(order: Order, ipv4: bytes, name: bytes) -> bytes:
    record = ipv4 + name + b"\0"
    body = struct.pack(order + "HH", 1, len(record)) + _padded(record) + struct.pack(order + "HH", 0, 0)
    return block(order, NRB, body)


def isb(order: Order, iface: int, units: int, comment: bytes) -> bytes:
    body = struct.pack(order + "III", iface, units >> 32, units & 0xFFFFFFFF)
    return block(order, ISB, body + options(order, (OPT_COMMENT, comment)))


def dsb(order: Order, secret: bytes) -> bytes:
    body = struct.pack(order + "II", 0x544C534B, len(secret)) + _padded(secret)  # TLS key log
    return block(order, DSB, body)


def custom(order: Order, block_type: int, payload: bytes) -> bytes:
    return block(order, block_type, struct.pack(order + "I", 32473) + payload)  # PEN 32473: examples


# ---------------------------------------------------------------------------------------------
# reading and writing with anontrace


@dataclass
class Capture:
    """Everything a reader produced: frames, interfaces (as known at the end) and notices."""

    frames: list[Frame]
    interfaces: list[Interface]
    notices: dict[str, int]
    format: str


def read_all(path: Path | str) -> Capture:
    reader = open_reader(str(path))
    try:
        frames = list(reader)
    finally:
        reader.stream.close()
    return Capture(frames, list(reader.interfaces), dict(reader.notices), reader.format)


def read_until_error(path: Path) -> tuple[list[Frame], TraceFormatError]:
    """The frames a reader yields before it raises, and the error (the test fails if none)."""
    reader = open_reader(str(path))
    frames: list[Frame] = []
    try:
        with pytest.raises(TraceFormatError) as caught:
            for frame in reader:
                frames.append(frame)
    finally:
        reader.stream.close()
    return frames, caught.value


def convert(source: Path, target: Path, capture_format: str) -> None:
    """Copy every frame of `source` to `target` as the pipeline does (reader -> writer)."""
    reader = open_reader(str(source))
    try:
        with atomic_output(str(target)) as out:
            writer = make_writer(out, str(target), capture_format, reader)
            for frame in reader:
                writer.write(frame.iface, reader.interfaces[frame.iface], frame.ts_ns, frame.data,
                             frame.wirelen, frame.comment)
            writer.finish(reader.interfaces)
    finally:
        reader.stream.close()


def same_frames(left: list[Frame], right: list[Frame]) -> None:
    """Assert equal time, bytes, original length and link type, frame by frame."""
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        assert (a.index, a.ts_ns, a.data, a.wirelen, a.linktype) == (
            b.index, b.ts_ns, b.data, b.wirelen, b.linktype)


# ---------------------------------------------------------------------------------------------
# independent readers


@dataclass(frozen=True)
class ScapyPcap:
    linktype: int
    nano: bool
    snaplen: int
    records: list[tuple[int, int, int, int, bytes]]  # seconds, fraction, caplen, wirelen, data


def scapy_pcap(path: Path) -> ScapyPcap:
    reader = RawPcapReader(str(path))
    try:
        records = [(meta.sec, meta.usec, meta.caplen, meta.wirelen, data) for data, meta in reader]
        return ScapyPcap(reader.linktype, bool(reader.nano), reader.snaplen, records)
    finally:
        reader.close()


@dataclass(frozen=True)
class ScapyNgPacket:
    linktype: int
    ticks_per_second: int
    units: int
    wirelen: int
    data: bytes

    @property
    def seconds(self) -> Fraction:
        return Fraction(self.units, self.ticks_per_second)


def scapy_pcapng(path: Path) -> tuple[list[ScapyNgPacket], list[tuple[int, int]]]:
    """Packets, and every described interface as (link type, ticks per second)."""
    reader = RawPcapNgReader(str(path))
    try:
        packets = []
        for data, meta in reader:
            ng: Any = meta  # scapy types this as its pcap metadata, but pcapng gives more fields
            packets.append(ScapyNgPacket(ng.linktype, ng.tsresol, (ng.tshigh << 32) | ng.tslow,
                                         ng.wirelen, data))
        interfaces = [(linktype, opts["tsresol"]) for linktype, _snaplen, opts in reader.interfaces]
        return packets, interfaces
    finally:
        reader.close()


def tshark_fields(path: Path, *fields: str) -> list[list[str]]:
    """One row per frame with the given tshark fields (the test is skipped without tshark)."""
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed")
    command = [tshark, "-n", "-r", str(path), "-T", "fields", *(a for f in fields for a in ("-e", f))]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    return [line.split("\t") for line in done.stdout.splitlines()]


def epoch(ts_ns: int) -> str:
    """A nanosecond time as tshark prints frame.time_epoch."""
    seconds, rest = divmod(ts_ns, NS)
    return f"{seconds}.{rest:09d}"
