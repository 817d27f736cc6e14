"""Record size limits: records longer than the snaplen are read up to 262144 bytes (the largest
packet capture tools write, as libpcap and Wireshark allow); beyond that, and beyond 256 MiB in
any case, a record is damage and is refused with a located error."""

from __future__ import annotations

from pathlib import Path

import pytest
from capbuild import MiB, pcap_header, pcap_record, read_all, read_until_error

from anontrace.io import limits

LARGEST_PACKET = 262144
LARGEST_RECORD = 256 * MiB
FIRST_RECORD = 24  # byte offset of the first record, after the file header


def test_limits_are_the_documented_sizes() -> None:
    assert (limits.MAX_PACKET, limits.MAX_RECORD) == (LARGEST_PACKET, LARGEST_RECORD)


def _claim(path: Path, snaplen: int, caplen: int, *, data: bytes = b"") -> None:
    """A file whose second record claims `caplen` bytes (and holds `data`)."""
    first = pcap_record("<", 1, 0, b"first")
    path.write_bytes(pcap_header("<", snaplen=snaplen) + first
                     + pcap_record("<", 2, 0, data, caplen=caplen, wirelen=caplen))


@pytest.mark.parametrize("snaplen", [0, 65535, LARGEST_PACKET, 300 * MiB, 0xFFFFFFFF])
def test_record_over_256_mib_is_refused_whatever_the_snaplen(tmp_path: Path, snaplen: int) -> None:
    path = tmp_path / "huge.pcap"
    _claim(path, snaplen, LARGEST_RECORD + 1)

    frames, error = read_until_error(path)

    assert [frame.data for frame in frames] == [b"first"]
    assert error.where == f"{path}: frame 2 at byte {FIRST_RECORD + 16 + 5}"


@pytest.mark.parametrize("snaplen", [96, 65535])
def test_record_over_snaplen_and_over_262144_bytes_is_refused(tmp_path: Path, snaplen: int) -> None:
    path = tmp_path / "damaged.pcap"
    _claim(path, snaplen, LARGEST_PACKET + 1, data=bytes(LARGEST_PACKET + 1))

    frames, error = read_until_error(path)

    assert len(frames) == 1
    assert error.where == f"{path}: frame 2 at byte {FIRST_RECORD + 16 + 5}"


@pytest.mark.parametrize("caplen", [97, 65536, LARGEST_PACKET])
def test_record_over_snaplen_up_to_262144_bytes_is_read_and_counted(tmp_path: Path, caplen: int) -> None:
    path = tmp_path / "long.pcap"
    data = bytes(range(256)) * (caplen // 256) + bytes(caplen % 256)
    _claim(path, 96, caplen, data=data)

    capture = read_all(path)

    assert [frame.data for frame in capture.frames] == [b"first", data]
    assert sum(capture.notices.values()) == 1


def test_every_long_record_is_counted(tmp_path: Path) -> None:
    path = tmp_path / "long.pcap"
    records = [pcap_record("<", n, 0, bytes(100 + n)) for n in range(5)]  # 100..104 bytes
    path.write_bytes(pcap_header("<", snaplen=102) + b"".join(records))
    capture = read_all(path)
    assert len(capture.frames) == 5
    assert sum(capture.notices.values()) == 2


@pytest.mark.parametrize("snaplen", [0, 1_000_000])
def test_snaplen_0_or_above_262144_allows_longer_records_without_notice(tmp_path: Path,
                                                                        snaplen: int) -> None:
    path = tmp_path / "jumbo.pcap"
    data = bytes(300_000)
    _claim(path, snaplen, len(data), data=data)
    capture = read_all(path)
    assert [len(frame.data) for frame in capture.frames] == [5, 300_000]
    assert capture.notices == {}


def test_record_over_a_large_snaplen_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "damaged.pcap"
    _claim(path, 1_000_000, 1_000_001)
    _, error = read_until_error(path)
    assert error.where == f"{path}: frame 2 at byte {FIRST_RECORD + 16 + 5}"
