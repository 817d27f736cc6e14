"""Classic pcap: reading both magics in both byte orders, writing, round trips, damaged files."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from capbuild import (
    NS,
    Order,
    convert,
    epoch,
    pcap_header,
    pcap_record,
    read_all,
    read_until_error,
    same_frames,
    scapy_pcap,
    tshark_fields,
)

from anontrace.errors import TraceFormatError
from anontrace.io.pcap import PcapWriter
from anontrace.packet.frame import Frame, Interface

ORDERS: list[Order] = ["<", ">"]
US_MAGIC, NS_MAGIC = 0xA1B2C3D4, 0xA1B23C4D


def _payload(size: int, seed: int) -> bytes:
    return bytes((seed + 7 * i) & 0xFF for i in range(size))


def _records(nano: bool) -> list[tuple[int, int, bytes, int]]:
    """(seconds, fraction, data, wirelen): full, cut (caplen < wirelen), empty, extreme times."""
    top = NS - 1 if nano else 999_999
    fine = 123_456_789 if nano else 123_456
    return [
        (1_700_000_000, fine, _payload(60, 1), 60),
        (1_700_000_001, 1, _payload(40, 2), 1514),
        (1_700_000_001, 2, b"", 60),
        (0, 0, _payload(1, 3), 1),
        (0, top, _payload(17, 4), 17),
        (0xFFFFFFFF, top, _payload(33, 5), 9000),
    ]


def _expected_ns(seconds: int, fraction: int, nano: bool) -> int:
    return seconds * NS + fraction * (1 if nano else 1000)


def _write_pcap(path: Path, order: Order, nano: bool, snaplen: int, network: int = 1) -> None:
    body = b"".join(pcap_record(order, s, f, d, wirelen=w) for s, f, d, w in _records(nano))
    path.write_bytes(pcap_header(order, nano=nano, snaplen=snaplen, network=network) + body)


def _write_frames(path: Path, interface: Interface, frames: list[tuple[int, bytes, int]]) -> None:
    with path.open("wb") as out:
        writer = PcapWriter(out, str(path))
        for ts_ns, data, wirelen in frames:
            writer.write(0, interface, ts_ns, data, wirelen)
        writer.finish([interface])


# --- reading ---------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("nano", [False, True], ids=["us", "ns"])
@pytest.mark.parametrize("snaplen", [0, 64, 65535, 262144, 0xFFFFFFFF])
def test_reads_both_magics_in_both_byte_orders(tmp_path: Path, order: Order, nano: bool,
                                               snaplen: int) -> None:
    path = tmp_path / "in.pcap"
    _write_pcap(path, order, nano, snaplen)

    capture = read_all(path)

    assert capture.format == "pcap"
    assert capture.interfaces == [Interface(1, snaplen, 9 if nano else 6)]
    assert capture.notices == {}
    expected = [Frame(i, _expected_ns(s, f, nano), d, w, 1, 0, None)
                for i, (s, f, d, w) in enumerate(_records(nano))]
    assert capture.frames == expected


@pytest.mark.parametrize("linktype", [0, 101, 113, 127, 228, 276])
def test_reads_the_link_type(tmp_path: Path, linktype: int) -> None:
    path = tmp_path / "in.pcap"
    _write_pcap(path, "<", False, 65535, network=linktype)
    capture = read_all(path)
    assert capture.interfaces[0].linktype == linktype
    assert {frame.linktype for frame in capture.frames} == {linktype}


def test_header_only_file_has_no_frames(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    path.write_bytes(pcap_header(">", nano=True, snaplen=1500, network=101))
    capture = read_all(path)
    assert capture.frames == []
    assert capture.interfaces == [Interface(101, 1500, 9)]


# --- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("nano", [False, True], ids=["us", "ns"])
def test_round_trip_keeps_frames_link_type_and_precision(tmp_path: Path, order: Order,
                                                         nano: bool) -> None:
    source, target = tmp_path / "in.pcap", tmp_path / "out.pcap"
    _write_pcap(source, order, nano, 65535, network=113)

    convert(source, target, "pcap")

    before, after = read_all(source), read_all(target)
    same_frames(before.frames, after.frames)
    assert after.interfaces == before.interfaces  # link type, snaplen and resolution (ns stays ns)
    magic = struct.unpack_from("<I", target.read_bytes())[0]
    assert magic == (NS_MAGIC if nano else US_MAGIC)


@pytest.mark.parametrize("nano", [False, True], ids=["us", "ns"])
def test_round_trip_output_is_read_identically_by_scapy(tmp_path: Path, nano: bool) -> None:
    source, target = tmp_path / "in.pcap", tmp_path / "out.pcap"
    _write_pcap(source, ">", nano, 65535, network=101)

    convert(source, target, "pcap")

    theirs = scapy_pcap(target)
    assert (theirs.linktype, theirs.nano, theirs.snaplen) == (101, nano, 65535)
    assert theirs.records == [(s, f, len(d), w, d) for s, f, d, w in _records(nano)]


def test_round_trip_keeps_the_fcs_bits_of_the_link_type_field(tmp_path: Path) -> None:
    field = (2 << 29) | (1 << 28) | 1  # Ethernet, "F" bit set, FCS length 2 (16-bit words)
    source, target = tmp_path / "in.pcap", tmp_path / "out.pcap"
    _write_pcap(source, "<", False, 65535, network=field)

    convert(source, target, "pcap")

    assert struct.unpack_from("<I", target.read_bytes(), 20)[0] == field
    assert read_all(target).interfaces[0].linktype == 1


def test_round_trip_of_a_header_only_file_gives_a_valid_empty_capture(tmp_path: Path) -> None:
    source, target = tmp_path / "in.pcap", tmp_path / "out.pcap"
    source.write_bytes(pcap_header("<", nano=True, snaplen=96, network=1))

    convert(source, target, "pcap")

    theirs = scapy_pcap(target)
    assert (theirs.linktype, theirs.nano, theirs.snaplen, theirs.records) == (1, True, 96, [])


def test_round_trip_keeps_records_longer_than_262144_bytes_of_a_snaplen_0_file(tmp_path: Path) -> None:
    """The reader accepts a 300000-byte record when the snaplen is 0 (no limit); the copy the
    writer makes of that file must be readable too."""
    source, target = tmp_path / "in.pcap", tmp_path / "out.pcap"
    data = _payload(300_000, 9)
    source.write_bytes(pcap_header("<", snaplen=0) + pcap_record("<", 5, 6, data))
    before = read_all(source)
    assert [frame.data for frame in before.frames] == [data]

    convert(source, target, "pcap")

    same_frames(before.frames, read_all(target).frames)


# --- the writer ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tsresol", "nano"),
    [(6, False), (3, False), (0, False), (9, True), (12, True), (0x80 | 19, False), (0x80 | 20, True)],
)
def test_writer_uses_the_nanosecond_magic_only_for_interfaces_finer_than_a_microsecond(
        tmp_path: Path, tsresol: int, nano: bool) -> None:
    path = tmp_path / "out.pcap"
    ts_ns = 1_600_000_000 * NS + 987_654_321
    _write_frames(path, Interface(1, 65535, tsresol), [(ts_ns, b"abc", 3)])

    theirs = scapy_pcap(path)
    assert theirs.nano is nano
    fraction = 987_654_321 if nano else 987_654
    assert theirs.records == [(1_600_000_000, fraction, 3, 3, b"abc")]


def test_writer_output_matches_tshark(tmp_path: Path) -> None:
    path = tmp_path / "out.pcap"
    times = [1_500_000_000 * NS + 1, 1_500_000_000 * NS + 999_999_999, 4_000_000_000 * NS + 500]
    _write_frames(path, Interface(1, 65535, 9), [(t, _payload(64, t % 251), 128) for t in times])

    rows = tshark_fields(path, "frame.time_epoch", "frame.len", "frame.cap_len")
    assert rows == [[epoch(t), "128", "64"] for t in times]


def test_writer_refuses_times_a_pcap_record_cannot_hold(tmp_path: Path) -> None:
    path = tmp_path / "out.pcap"
    interface = Interface(1, 65535, 9)
    last = (1 << 32) * NS - 1  # 0xFFFFFFFF seconds and 999999999 ns: the latest pcap time
    with path.open("wb") as out:
        writer = PcapWriter(out, str(path))
        writer.write(0, interface, last, b"x", 1)
        for ts_ns in ((1 << 32) * NS, (1 << 40) * NS, -1):
            with pytest.raises(TraceFormatError) as caught:
                writer.write(1, interface, ts_ns, b"y", 1)
            assert caught.value.where == str(path)
    assert scapy_pcap(path).records == [(0xFFFFFFFF, NS - 1, 1, 1, b"x")]


def test_writer_refuses_a_second_link_type(tmp_path: Path) -> None:
    path = tmp_path / "out.pcap"
    with path.open("wb") as out:
        writer = PcapWriter(out, str(path))
        writer.write(0, Interface(1), 0, b"a", 1)
        writer.write(1, Interface(1, 100, 9), 0, b"b", 1)  # same link type: fine
        with pytest.raises(TraceFormatError) as caught:
            writer.write(2, Interface(101), 0, b"c", 1)
    assert caught.value.where == str(path)


def test_writer_finish_without_frames_writes_the_first_interface(tmp_path: Path) -> None:
    path = tmp_path / "out.pcap"
    with path.open("wb") as out:
        PcapWriter(out, str(path)).finish([Interface(113, 2000, 9), Interface(1)])
    theirs = scapy_pcap(path)
    assert (theirs.linktype, theirs.nano, theirs.snaplen, theirs.records) == (113, True, 2000, [])


# --- damaged input ---------------------------------------------------------------------------


def _three_records(order: Order) -> tuple[bytes, int]:
    """A header and two whole records; returns the bytes and the offset where record 3 starts."""
    head = pcap_header(order, snaplen=65535)
    body = pcap_record(order, 1, 2, _payload(50, 1)) + pcap_record(order, 3, 4, _payload(70, 2))
    return head + body, len(head) + len(body)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("kept", [1, 8, 15], ids=lambda n: f"{n}-header-bytes")
def test_truncated_record_header_is_located(tmp_path: Path, order: Order, kept: int) -> None:
    good, offset = _three_records(order)
    path = tmp_path / "cut.pcap"
    path.write_bytes(good + pcap_record(order, 5, 6, _payload(30, 3))[:kept])

    frames, error = read_until_error(path)

    assert len(frames) == 2
    assert error.where == f"{path}: frame 3 at byte {offset}"


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("kept", [0, 1, 29], ids=lambda n: f"{n}-data-bytes")
def test_truncated_record_data_is_located(tmp_path: Path, order: Order, kept: int) -> None:
    good, offset = _three_records(order)
    path = tmp_path / "cut.pcap"
    path.write_bytes(good + pcap_record(order, 5, 6, _payload(30, 3))[:16 + kept])

    frames, error = read_until_error(path)

    assert len(frames) == 2
    assert error.where == f"{path}: frame 3 at byte {offset}"


@pytest.mark.parametrize("order", ORDERS)
def test_unknown_link_type_is_refused_at_the_header(tmp_path: Path, order: Order) -> None:
    path = tmp_path / "odd.pcap"
    path.write_bytes(pcap_header(order, network=65000) + pcap_record(order, 1, 2, b"abcd"))
    with pytest.raises(TraceFormatError) as caught:
        read_all(path)
    assert caught.value.where == f"{path}: byte 20"
    assert "65000" in caught.value.what


@pytest.mark.parametrize("size", [4, 10, 23])
def test_truncated_file_header_is_located(tmp_path: Path, size: int) -> None:
    path = tmp_path / "short.pcap"
    path.write_bytes(pcap_header("<")[:size])
    with pytest.raises(TraceFormatError) as caught:
        read_all(path)
    assert caught.value.where == f"{path}: byte 0"  # the incomplete structure starts there
    assert f"({size} of 24 bytes)" in caught.value.what

