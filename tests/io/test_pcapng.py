"""pcapng: sections in both byte orders, interface resolutions and offsets, every packet block,
blocks and options left behind (and never copied), the writer checked by scapy and tshark."""

from __future__ import annotations

import math
import struct
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pytest
from capbuild import (
    CUSTOM_COPY,
    CUSTOM_NOCOPY,
    EPB,
    IF_DESCRIPTION,
    IF_MACADDR,
    IF_NAME,
    NS,
    OPT_COMMENT,
    SHB,
    SHB_HARDWARE,
    SHB_OS,
    SHB_USERAPPL,
    MiB,
    Order,
    block,
    convert,
    custom,
    dsb,
    epb,
    epoch,
    idb,
    isb,
    nrb,
    opb,
    pcap_header,
    pcap_record,
    read_all,
    read_until_error,
    same_frames,
    scapy_pcap,
    scapy_pcapng,
    shb,
    spb,
    tshark_fields,
    tsoffset,
    tsresol,
)

from anontrace.errors import TraceFormatError
from anontrace.io.pcapng import PcapngWriter
from anontrace.packet.frame import Frame, Interface

ORDERS: list[Order] = ["<", ">"]
SECRET = b"SECRET"  # every name, comment and host detail in the input carries this marker
MAC = bytes.fromhex("deadbeef0102")
BINARY_20 = 0x80 | 20
OFFSET_SECONDS = 1_600_000_000


def _other(order: Order) -> Order:
    return ">" if order == "<" else "<"


def _payload(size: int, seed: int) -> bytes:
    return bytes((seed + 7 * i) & 0xFF for i in range(size))


@dataclass(frozen=True)
class Expected:
    """What one frame must read as, and its exact time (before any rounding to nanoseconds)."""

    frame: Frame
    exact: Fraction


def _expect(frames: list[Expected], ts_ns: int, data: bytes, wirelen: int, interfaces: list[Interface],
            iface: int, exact: Fraction | None = None) -> None:
    frame = Frame(len(frames), ts_ns, data, wirelen, interfaces[iface].linktype, iface, None)
    frames.append(Expected(frame, Fraction(ts_ns, NS) if exact is None else exact))


def _rich_capture(order: Order) -> tuple[bytes, list[Interface], list[Expected], int]:
    """Two sections (the second in the other byte order), six interfaces of four link types and
    five resolutions, EPB/OPB/SPB frames, and six blocks that must be left out.

    Returns the file, its interfaces, the frames it holds, and the number of blocks left out.
    """
    other = _other(order)
    interfaces = [
        Interface(1, 64, 6), Interface(113, 262144, 9), Interface(101, 0, BINARY_20),
        Interface(1, 65535, 6), Interface(228, 0, 3), Interface(113, 1500, 9),
    ]
    frames: list[Expected] = []
    parts = [
        shb(order, (SHB_HARDWARE, SECRET + b"-hardware Dell"), (SHB_OS, SECRET + b"-os Linux"),
            (SHB_USERAPPL, SECRET + b"-dumpcap")),
        idb(order, 1, 64, (IF_NAME, SECRET + b"-ifname-eth0"), (IF_DESCRIPTION, SECRET + b"-desc"),
            (IF_MACADDR, MAC)),
        idb(order, 113, 262144, tsresol(9), (IF_NAME, SECRET + b"-ifname-any")),
        idb(order, 101, 0, tsresol(BINARY_20)),
        idb(order, 1, 65535, tsresol(6), tsoffset(order, OFFSET_SECONDS)),
        nrb(order, bytes([192, 0, 2, 1]), SECRET + b"-host.example"),
    ]

    units = 1_700_000_000_123_456  # microseconds
    parts.append(epb(order, 0, units, _payload(60, 1), 60, (OPT_COMMENT, SECRET + b"-comment")))
    _expect(frames, units * 1000, _payload(60, 1), 60, interfaces, 0)

    units = 1_700_000_000_123_456_789  # nanoseconds
    parts.append(epb(order, 1, units, _payload(40, 2), 1514))
    _expect(frames, units, _payload(40, 2), 1514, interfaces, 1)

    units = (1_700_000_000 << 20) + 777_777  # 2^-20 s: not a whole number of nanoseconds
    parts.append(epb(order, 2, units, _payload(33, 3), 33))
    _expect(frames, math.floor(Fraction(units * NS, 1 << 20)), _payload(33, 3), 33, interfaces, 2,
            Fraction(units, 1 << 20))

    units = 123_456_789  # microseconds after if_tsoffset
    parts.append(opb(order, 3, units, _payload(50, 4), 50))
    _expect(frames, OFFSET_SECONDS * NS + units * 1000, _payload(50, 4), 50, interfaces, 3)

    parts += [isb(order, 0, 5, SECRET + b"-isb"), dsb(order, b"CLIENT_RANDOM " + SECRET + b"-keylog")]

    parts.append(spb(order, _payload(64, 5), 100))  # cut to interface 0's snaplen of 64
    _expect(frames, 0, _payload(64, 5), 100, interfaces, 0)
    parts.append(spb(order, _payload(10, 6), 10))  # padded to 12 bytes in the block
    _expect(frames, 0, _payload(10, 6), 10, interfaces, 0)

    parts += [custom(order, CUSTOM_COPY, SECRET + b"-custom-a"),
              custom(order, CUSTOM_NOCOPY, SECRET + b"-custom-b"),
              block(order, 0x80000001, SECRET + b"-local-use")]

    units = 1_700_000_000_999_999
    parts.append(epb(order, 1, units, b"", 42))
    _expect(frames, units, b"", 42, interfaces, 1)

    # second section, other byte order: interface ids restart at 0
    parts += [shb(other, (SHB_OS, SECRET + b"-os-2")), idb(other, 228, 0, tsresol(3)),
              idb(other, 113, 1500, tsresol(9), (IF_NAME, SECRET + b"-ifname-unused"))]
    units = 1_700_000_001_500  # milliseconds
    parts.append(epb(other, 0, units, _payload(20, 7), 20))
    _expect(frames, units * 1_000_000, _payload(20, 7), 20, interfaces, 4)
    parts.append(spb(other, _payload(21, 8), 21))
    _expect(frames, 0, _payload(21, 8), 21, interfaces, 4)

    return b"".join(parts), interfaces, frames, 6


@pytest.fixture(params=ORDERS, ids=["little-endian-first", "big-endian-first"])
def rich(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, list[Interface], list[Expected], int]:
    data, interfaces, frames, left_out = _rich_capture(request.param)
    path = tmp_path / "rich.pcapng"
    path.write_bytes(data)
    return path, interfaces, frames, left_out


Rich = tuple[Path, list[Interface], list[Expected], int]


# --- reading ---------------------------------------------------------------------------------


def test_reads_every_frame_with_its_interface_time_and_length(rich: Rich) -> None:
    path, interfaces, expected, _ = rich
    capture = read_all(path)
    assert capture.format == "pcapng"
    assert capture.interfaces == interfaces
    assert capture.frames == [e.frame for e in expected]


def test_blocks_left_out_are_counted(rich: Rich) -> None:
    path, _, _, left_out = rich
    notices = read_all(path).notices
    assert sum(notices.values()) == left_out
    for kind in ("name resolution", "statistics", "decryption", "custom"):
        assert any(kind in notice for notice in notices), (kind, notices)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(
    ("resolution", "units", "ts_ns"),
    [
        (None, 1_000_001, 1_000_001_000),  # no if_tsresol: microseconds
        (6, 1_000_001, 1_000_001_000),
        (9, 1_000_000_001, 1_000_000_001),
        (0, 3, 3 * NS),
        (12, 1_000_000_000_999, 1_000_000_000),  # picoseconds: below a nanosecond is dropped
        (0x80 | 0, 3, 3 * NS),
        (0x80 | 10, 1025, NS + 976_562),  # 1025/1024 s = 1.0009765625 s
        (BINARY_20, (1 << 20) + 1, NS + 953),  # 1 + 2^-20 s = 1.00000095367431640625 s
        (BINARY_20, (1 << 52) - 1, math.floor(Fraction(((1 << 52) - 1) * NS, 1 << 20))),
        (0x80 | 30, 3 << 30, 3 * NS),
    ],
)
def test_time_resolutions(tmp_path: Path, order: Order, resolution: int | None, units: int,
                          ts_ns: int) -> None:
    items = [] if resolution is None else [tsresol(resolution)]
    path = tmp_path / "res.pcapng"
    path.write_bytes(shb(order) + idb(order, 1, 0, *items) + epb(order, 0, units, b"abcd"))
    capture = read_all(path)
    assert [frame.ts_ns for frame in capture.frames] == [ts_ns]
    assert capture.interfaces[0].tsresol == (6 if resolution is None else resolution)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("offset", [0, 1, 1_600_000_000, -1_000])
def test_tsoffset_is_added_in_seconds(tmp_path: Path, order: Order, offset: int) -> None:
    path = tmp_path / "offset.pcapng"
    path.write_bytes(shb(order) + idb(order, 1, 0, tsresol(9), tsoffset(order, offset))
                     + epb(order, 0, 5_000_000_123, b"abcd"))
    assert [frame.ts_ns for frame in read_all(path).frames] == [offset * NS + 5_000_000_123]


@pytest.mark.parametrize("order", ORDERS)
def test_interface_ids_restart_in_each_section(tmp_path: Path, order: Order) -> None:
    other = _other(order)
    path = tmp_path / "sections.pcapng"
    path.write_bytes(
        shb(order) + idb(order, 1) + idb(order, 101) + epb(order, 1, 1, b"a") + epb(order, 0, 2, b"b")
        + shb(other) + idb(other, 113) + epb(other, 0, 3, b"c")
        + shb(order) + idb(order, 228) + idb(order, 1) + epb(order, 1, 4, b"d") + epb(order, 0, 5, b"e")
    )
    capture = read_all(path)
    assert [i.linktype for i in capture.interfaces] == [1, 101, 113, 228, 1]
    assert [(f.data, f.iface, f.linktype) for f in capture.frames] == [
        (b"a", 1, 101), (b"b", 0, 1), (b"c", 2, 113), (b"d", 4, 1), (b"e", 3, 228)]


# --- damaged input ---------------------------------------------------------------------------


def _good(order: Order) -> bytes:
    return shb(order) + idb(order, 1, 0) + epb(order, 0, 1, b"first")


def _cut(data: bytes, keep: int) -> bytes:
    return data[:keep]


# each case: (name, bad bytes appended after a good section with one frame, where suffix)
# the where suffix is formatted with {offset}: the byte where the bad block starts.
DAMAGE: list[tuple[str, Callable[[Order], bytes], str]] = [
    ("length-not-multiple-of-4", lambda o: block(o, EPB, bytes(24), length=38), "at byte {offset}"),
    ("length-below-12", lambda o: block(o, 0x0BAD, b"", length=8), "at byte {offset}"),
    ("length-zero", lambda o: block(o, EPB, bytes(20), length=0), "at byte {offset}"),
    ("length-over-256-mib", lambda o: block(o, EPB, bytes(20), length=256 * MiB + 4), "at byte {offset}"),
    ("trailing-length-differs", lambda o: block(o, EPB, bytes(24), trailer=32), "at byte {offset}"),
    ("file-ends-inside-block", lambda o: _cut(epb(o, 0, 2, bytes(40)), 30), "at byte {offset}"),
    ("file-ends-inside-trailer", lambda o: _cut(epb(o, 0, 2, bytes(40)), 70), "at byte {offset}"),
    ("file-ends-inside-block-header", lambda o: _cut(epb(o, 0, 2, bytes(40)), 6), "at byte {offset}"),
    ("undescribed-interface", lambda o: epb(o, 1, 2, b"second"), "frame 2 at byte {offset}"),
    ("packet-longer-than-block", lambda o: epb(o, 0, 2, b"abcd", caplen=9), "frame 2 at byte {offset}"),
    ("epb-too-short", lambda o: block(o, EPB, bytes(8)), "frame 2 at byte {offset}"),
    ("unknown-link-type", lambda o: idb(o, 65000), "at byte {offset}"),
    ("idb-too-short", lambda o: block(o, 1, bytes(4)), "at byte {offset}"),
    ("new-section-forgets-interfaces", lambda o: shb(_other(o)) + epb(_other(o), 0, 2, b"second"),
     "frame 2 at byte {offset_after_shb}"),
    ("spb-in-section-without-interface", lambda o: shb(o) + spb(o, b"second"),
     "frame 2 at byte {offset_after_shb}"),
]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(("bad", "where"), [(d[1], d[2]) for d in DAMAGE], ids=[d[0] for d in DAMAGE])
def test_damage_is_located(tmp_path: Path, order: Order, bad: Callable[[Order], bytes], where: str) -> None:
    good = _good(order)
    path = tmp_path / "bad.pcapng"
    path.write_bytes(good + bad(order))
    offset_after_shb = len(good) + len(shb(_other(order)))

    frames, error = read_until_error(path)

    assert [frame.data for frame in frames] == [b"first"]
    suffix = where.format(offset=len(good), offset_after_shb=offset_after_shb)
    assert error.where == f"{path}: {suffix}"


@pytest.mark.parametrize("order", ORDERS)
def test_bad_byte_order_magic_is_located(tmp_path: Path, order: Order) -> None:
    good = _good(order)
    path = tmp_path / "bad.pcapng"
    path.write_bytes(good + block(order, SHB, struct.pack("<IHHq", 0x11223344, 1, 0, -1)))
    _, error = read_until_error(path)
    assert error.where == f"{path}: at byte {len(good) + 8}"


@pytest.mark.parametrize("order", ORDERS)
def test_option_running_past_its_block_is_located(tmp_path: Path, order: Order) -> None:
    good = _good(order)
    path = tmp_path / "bad.pcapng"
    # an IDB whose first option (at body byte 8) claims 100 bytes in a 12-byte remainder
    body = struct.pack(order + "HHI", 1, 0, 0) + struct.pack(order + "HH", 2, 100) + bytes(8)
    path.write_bytes(good + block(order, 1, body))
    _, error = read_until_error(path)
    assert error.where == f"{path}: at byte {len(good) + 8 + 8}"


@pytest.mark.parametrize("size", [4, 7, 11, 27])
def test_file_cut_inside_the_first_section_header(tmp_path: Path, size: int) -> None:
    path = tmp_path / "short.pcapng"
    path.write_bytes(shb("<")[:size])
    _, error = read_until_error(path)
    assert error.where == f"{path}: at byte 0"


# --- writing ---------------------------------------------------------------------------------


def test_round_trip_keeps_frames_link_types_and_resolutions(rich: Rich, tmp_path: Path) -> None:
    path, interfaces, _, _ = rich
    target = tmp_path / "out.pcapng"

    convert(path, target, "pcapng")

    before, after = read_all(path), read_all(target)
    same_frames(before.frames, after.frames)
    # input interface -> output interface: one to one, same link type and resolution
    used: dict[int, int] = {}
    for was, now in zip(before.frames, after.frames, strict=True):
        assert used.setdefault(was.iface, now.iface) == now.iface
    assert len(set(used.values())) == len(used)
    assert len(after.interfaces) == len(interfaces)  # unused interfaces are described too
    assert Counter((i.linktype, i.tsresol) for i in after.interfaces) == Counter(
        (i.linktype, i.tsresol) for i in interfaces)
    for old, new in used.items():
        assert (after.interfaces[new].linktype, after.interfaces[new].tsresol) == (
            interfaces[old].linktype, interfaces[old].tsresol)
    assert after.notices == {}


def test_nothing_but_frames_and_interfaces_is_copied(rich: Rich, tmp_path: Path) -> None:
    path, _, _, _ = rich
    target = tmp_path / "out.pcapng"
    convert(path, target, "pcapng")
    written = target.read_bytes()
    assert SECRET in path.read_bytes()
    assert SECRET not in written
    assert MAC not in written


def test_scrub_copies_no_names_comments_or_host_details(rich: Rich, tmp_path: Path) -> None:
    path, _, _, _ = rich
    target = tmp_path / "scrubbed.pcapng"
    done = subprocess.run([sys.executable, "-m", "anontrace", "scrub", str(path), "-o", str(target), "-q"],
                          capture_output=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    written = target.read_bytes()
    assert written.startswith(struct.pack("<I", SHB))
    assert SECRET not in written
    assert MAC not in written


def test_writer_output_is_read_the_same_by_scapy(rich: Rich, tmp_path: Path) -> None:
    path, interfaces, expected, _ = rich
    target = tmp_path / "out.pcapng"

    convert(path, target, "pcapng")
    packets, described = scapy_pcapng(target)

    def ticks(interface: Interface) -> int:
        exponent = interface.tsresol & 0x7F
        return 1 << exponent if interface.tsresol & 0x80 else 10**exponent

    assert len(packets) == len(expected)
    for packet, want in zip(packets, expected, strict=True):
        interface = interfaces[want.frame.iface]
        assert packet.linktype == interface.linktype
        assert packet.ticks_per_second == ticks(interface)
        assert packet.seconds == want.exact  # the very same instant, in the same units
        assert (packet.data, packet.wirelen) == (want.frame.data, want.frame.wirelen)
    assert sorted(described) == sorted((i.linktype, ticks(i)) for i in interfaces)


def test_writer_output_is_read_the_same_by_tshark(rich: Rich, tmp_path: Path) -> None:
    path, _, expected, _ = rich
    target = tmp_path / "out.pcapng"

    convert(path, target, "pcapng")
    rows = tshark_fields(target, "frame.time_epoch", "frame.interface_id", "frame.len", "frame.cap_len")

    assert [(r[0], int(r[2]), int(r[3])) for r in rows] == [
        (epoch(e.frame.ts_ns), e.frame.wirelen, len(e.frame.data)) for e in expected]
    mapping: dict[int, str] = {}
    for row, want in zip(rows, expected, strict=True):
        assert mapping.setdefault(want.frame.iface, row[1]) == row[1]
    assert len(set(mapping.values())) == len(mapping)


def test_pcapng_to_pcap_keeps_nanoseconds(tmp_path: Path) -> None:
    source, target = tmp_path / "in.pcapng", tmp_path / "out.pcap"
    units = [1_700_000_000_123_456_789, 1_700_000_000_123_457_001]
    source.write_bytes(shb(">") + idb(">", 113, 0, tsresol(9))
                       + b"".join(epb(">", 0, u, _payload(30, n), 90) for n, u in enumerate(units)))

    convert(source, target, "pcap")

    theirs = scapy_pcap(target)
    assert (theirs.linktype, theirs.nano) == (113, True)
    assert theirs.records == [(u // NS, u % NS, 30, 90, _payload(30, n)) for n, u in enumerate(units)]


@pytest.mark.parametrize(("nano", "ticks"), [(False, 10**6), (True, 10**9)], ids=["us", "ns"])
def test_pcap_to_pcapng_keeps_the_resolution(tmp_path: Path, nano: bool, ticks: int) -> None:
    source, target = tmp_path / "in.pcap", tmp_path / "out.pcapng"
    fractions = [0, 1, ticks - 1, ticks // 3]
    records = [pcap_record("<", 1_700_000_000 + n, f, _payload(20 + n, n), wirelen=80)
               for n, f in enumerate(fractions)]
    source.write_bytes(pcap_header("<", nano=nano, network=101) + b"".join(records))

    convert(source, target, "pcapng")

    packets, described = scapy_pcapng(target)
    assert described == [(101, ticks)]
    assert [(p.units, p.wirelen, p.data) for p in packets] == [
        ((1_700_000_000 + n) * ticks + f, 80, _payload(20 + n, n)) for n, f in enumerate(fractions)]


def test_writer_refuses_times_a_pcapng_block_cannot_hold(tmp_path: Path) -> None:
    path = tmp_path / "out.pcapng"
    interface = Interface(1, 0, 9)
    with path.open("wb") as out:
        writer = PcapngWriter(out, str(path))
        writer.write(0, interface, (1 << 64) - 1, b"x", 1)  # the latest time in nanosecond units
        for ts_ns in (-1, 1 << 64):
            with pytest.raises(TraceFormatError) as caught:
                writer.write(0, interface, ts_ns, b"y", 1)
            assert caught.value.where == str(path)
        writer.finish([interface])
    packets, _ = scapy_pcapng(path)
    assert [(p.units, p.data) for p in packets] == [((1 << 64) - 1, b"x")]


def test_writer_describes_interfaces_without_frames(tmp_path: Path) -> None:
    path = tmp_path / "out.pcapng"
    interfaces = [Interface(1, 0, 6), Interface(105, 2048, 9), Interface(101, 0, BINARY_20)]
    with path.open("wb") as out:
        PcapngWriter(out, str(path)).finish(interfaces)
    packets, described = scapy_pcapng(path)
    assert packets == []
    assert described == [(1, 10**6), (105, 10**9), (101, 1 << 20)]
    assert read_all(path).interfaces == interfaces
