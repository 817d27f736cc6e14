"""Byte sources: plain, gzip and zstd files (found by magic, not by name), stdin, and the errors
of unreadable sources."""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from capbuild import (
    NS,
    MiB,
    epb,
    idb,
    pcap_header,
    pcap_record,
    read_all,
    scapy_pcap,
    shb,
    tsresol,
)
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from anontrace.errors import TraceFormatError

TIMEOUT = 120


def _bulky_pcap(count: int = 2500) -> bytes:
    """About 2 MiB of records of varying sizes, so reads cross the 1 MiB chunk boundaries."""
    records = [pcap_record("<", 1_700_000_000 + n, n * 7 % 1_000_000,
                           bytes((n + i) & 0xFF for i in range(200 + n % 1300)), wirelen=1600)
               for n in range(count)]
    return pcap_header("<", snaplen=65535) + b"".join(records)


def _bulky_pcapng(count: int = 2500) -> bytes:
    blocks = [epb(">", n % 2, 1_700_000_000_000_000_000 + n * 1_234_567,
                  bytes((3 * n + i) & 0xFF for i in range(100 + n % 1400)))
              for n in range(count)]
    return shb(">") + idb(">", 1, 0, tsresol(9)) + idb(">", 101, 0) + b"".join(blocks)


def _zstd_frames(data: bytes) -> bytes:
    """Two concatenated zstd frames, split inside a record."""
    half = len(data) // 2 + 3
    compressor = zstandard.ZstdCompressor()
    return compressor.compress(data[:half]) + compressor.compress(data[half:])


def _gzip_members(data: bytes) -> bytes:
    half = len(data) // 3 + 1
    return gzip.compress(data[:half]) + gzip.compress(data[half:])


def _zstd_streamed(data: bytes) -> bytes:
    """A zstd frame that does not record its content size (as `zstd` writes from a pipe)."""
    compressor = zstandard.ZstdCompressor().compressobj()
    return compressor.compress(data) + compressor.flush()


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "gzip-two-members": _gzip_members,
    "zstd": zstandard.ZstdCompressor().compress,
    "zstd-streamed": _zstd_streamed,
    "zstd-two-frames": _zstd_frames,
}


# --- files -----------------------------------------------------------------------------------


def test_plain_reading_across_chunks_matches_scapy(tmp_path: Path) -> None:
    path = tmp_path / "bulky.pcap"
    path.write_bytes(_bulky_pcap())
    assert path.stat().st_size > 2 * MiB

    frames = read_all(path).frames
    theirs = scapy_pcap(path).records

    assert len(frames) == len(theirs)
    for frame, (seconds, micros, caplen, wirelen, data) in zip(frames, theirs, strict=True):
        assert (frame.ts_ns, frame.data, frame.wirelen) == (seconds * NS + micros * 1000, data, wirelen)
        assert len(frame.data) == caplen


@pytest.mark.parametrize("compress", COMPRESSORS.values(), ids=COMPRESSORS.keys())
@pytest.mark.parametrize("make", [_bulky_pcap, _bulky_pcapng], ids=["pcap", "pcapng"])
def test_compressed_input_reads_like_plain(tmp_path: Path, compress: Callable[[bytes], bytes],
                                           make: Callable[[], bytes]) -> None:
    plain, packed = tmp_path / "plain", tmp_path / "capture.bin"  # found by magic, not by name
    data = make()
    plain.write_bytes(data)
    packed.write_bytes(compress(data))
    assert packed.read_bytes()[:2] != data[:2]

    assert read_all(packed) == read_all(plain)


def test_missing_file_is_located(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.pcap"
    with pytest.raises(TraceFormatError) as caught:
        read_all(path)
    assert caught.value.where == str(path)


def test_directory_is_located(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError) as caught:
        read_all(tmp_path)
    assert caught.value.where == str(tmp_path)
    assert "directory" in caught.value.what


def _corrupt_gzip(data: bytes) -> bytes:
    return gzip.compress(data)[:10] + b"\xff" * 64  # a valid gzip header, then no valid deflate block


def _truncated_gzip(data: bytes) -> bytes:
    packed = gzip.compress(data)
    return packed[:len(packed) // 2]


def _corrupt_zstd(data: bytes) -> bytes:
    packed = bytearray(zstandard.ZstdCompressor(write_checksum=True).compress(data))
    for i in range(len(packed) // 2, len(packed) // 2 + 16):
        packed[i] ^= 0x5A
    return bytes(packed)


def _zstd_cut_in_second_frame(data: bytes) -> bytes:
    """The first frame holds whole records, the second is cut: the loss is at a record boundary."""
    records = 24 + 1000 * (16 + 200)
    compressor = zstandard.ZstdCompressor(write_checksum=True)
    second = compressor.compress(data[records:])
    return compressor.compress(data[:records]) + second[:len(second) // 2]


def _zstd_without_checksum_end(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(write_checksum=True).compress(data)[:-2]


DAMAGED: dict[str, Callable[[bytes], bytes]] = {
    "corrupt-gzip": _corrupt_gzip,
    "truncated-gzip": _truncated_gzip,
    "corrupt-zstd": _corrupt_zstd,
    "zstd-cut-in-second-frame": _zstd_cut_in_second_frame,
    "zstd-cut-in-checksum": _zstd_without_checksum_end,
}


@pytest.mark.parametrize("damage", DAMAGED.values(), ids=DAMAGED.keys())
def test_damaged_compressed_input_is_a_located_error(tmp_path: Path,
                                                     damage: Callable[[bytes], bytes]) -> None:
    data = pcap_header("<") + b"".join(pcap_record("<", n, 0, bytes([n % 256]) * 200) for n in range(2000))
    path = tmp_path / "damaged.pcap.gz"
    path.write_bytes(damage(data))
    with pytest.raises(TraceFormatError) as caught:
        read_all(path)
    assert caught.value.where.startswith(str(path))


# --- stdin, in process -----------------------------------------------------------------------


@pytest.mark.parametrize("compress", [lambda d: d, gzip.compress, _zstd_streamed],
                         ids=["plain", "gzip", "zstd"])
def test_dash_reads_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          compress: Callable[[bytes], bytes]) -> None:
    data = _bulky_pcapng(300)
    plain = tmp_path / "plain.pcapng"
    plain.write_bytes(data)
    stdin = io.TextIOWrapper(io.BufferedReader(io.BytesIO(compress(data))))
    monkeypatch.setattr(sys, "stdin", stdin)

    assert read_all("-") == read_all(plain)


class TrickleRaw(io.RawIOBase):
    """A pipe whose writer delivered the first byte alone: the first read returns one byte."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        size = 1 if self._pos == 0 else min(len(buffer), len(self._data) - self._pos)
        buffer[:size] = self._data[self._pos:self._pos + size]
        self._pos += size
        return size


@pytest.mark.parametrize("compress", [lambda d: d, gzip.compress, _zstd_streamed],
                         ids=["plain", "gzip", "zstd"])
def test_stdin_format_does_not_depend_on_the_first_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        compress: Callable[[bytes], bytes]) -> None:
    data = _bulky_pcap(200)
    plain = tmp_path / "plain.pcap"
    plain.write_bytes(data)
    stdin = io.TextIOWrapper(io.BufferedReader(TrickleRaw(compress(data))))
    monkeypatch.setattr(sys, "stdin", stdin)

    assert read_all("-") == read_all(plain)


def test_stdin_errors_name_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = io.TextIOWrapper(io.BufferedReader(io.BytesIO(pcap_header("<") + b"\0" * 10)))
    monkeypatch.setattr(sys, "stdin", stdin)
    with pytest.raises(TraceFormatError) as caught:
        read_all("-")
    assert caught.value.where == "<stdin>: frame 1 at byte 24"


# --- stdin, through the command line ---------------------------------------------------------


def _traffic() -> tuple[bytes, list[int]]:
    """A small Ethernet/IPv4 capture the default rules keep every frame of, and its times."""
    packets = []
    for n in range(40):
        ip = IP(src=f"10.1.{n % 3}.{n + 10}", dst="192.0.2.80")
        layer = UDP(sport=40000 + n, dport=53) if n % 2 else TCP(sport=50000 + n, dport=80, flags="PA")
        packets.append(bytes(Ether(src="00:11:22:33:44:55", dst="66:77:88:99:aa:bb") / ip / layer
                             / Raw(b"payload %d" % n)))
    times = [1_710_000_000 * NS + n * 1_234_567_891 for n in range(len(packets))]
    body = b"".join(pcap_record("<", t // NS, t % NS, p) for t, p in zip(times, packets, strict=True))
    return pcap_header("<", nano=True, snaplen=65535) + body, times


@pytest.fixture(scope="module")
def scrubbed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[int], bytes]:
    """(key file, input, its frame times, the output of scrubbing the input given by name)."""
    work = tmp_path_factory.mktemp("scrub")
    key = work / "key"
    subprocess.run([sys.executable, "-m", "anontrace", "keygen", "-o", str(key)],
                   check=True, capture_output=True, timeout=TIMEOUT)
    data, times = _traffic()
    source, reference = work / "in.pcap", work / "reference.pcap"
    source.write_bytes(data)
    _scrub(key, str(source), reference)
    return key, source, times, reference.read_bytes()


def _scrub_command(key: Path, source: str, target: str) -> list[str]:
    return [sys.executable, "-m", "anontrace", "scrub", source, "-o", target, "-q", "--key-file", str(key)]


def _scrub(key: Path, source: str, target: Path, stdin: bytes | None = None) -> None:
    done = subprocess.run(_scrub_command(key, source, str(target)), input=stdin, capture_output=True,
                          check=False, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr.decode()


STDIN_FORMS: dict[str, Callable[[bytes], bytes]] = {
    "plain": lambda d: d, "gzip": gzip.compress, "zstd": _zstd_streamed}


@pytest.mark.parametrize("compress", STDIN_FORMS.values(), ids=STDIN_FORMS.keys())
def test_scrub_reads_stdin(tmp_path: Path, scrubbed: tuple[Path, Path, list[int], bytes],
                           compress: Callable[[bytes], bytes]) -> None:
    key, source, times, reference = scrubbed
    target = tmp_path / "out.pcap"

    _scrub(key, "-", target, stdin=compress(source.read_bytes()))

    written = target.read_bytes()
    assert written == reference
    theirs = scapy_pcap(target)
    assert theirs.nano
    assert [s * NS + f for s, f, _, _, _ in theirs.records] == times


def test_scrub_reads_stdin_and_writes_stdout(scrubbed: tuple[Path, Path, list[int], bytes]) -> None:
    key, source, _, reference = scrubbed
    done = subprocess.run(_scrub_command(key, "-", "-"), input=source.read_bytes(), capture_output=True,
                          check=False, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == reference


@pytest.mark.parametrize("compress", [gzip.compress, _zstd_streamed], ids=["gzip", "zstd"])
def test_compressed_stdin_is_found_when_the_pipe_delivers_one_byte_first(
        tmp_path: Path, scrubbed: tuple[Path, Path, list[int], bytes],
        compress: Callable[[bytes], bytes]) -> None:
    """A producer may write the magic in pieces; what arrives first must not decide the format."""
    key, source, _, reference = scrubbed
    target = tmp_path / "out.pcap"
    data = compress(source.read_bytes())
    process = subprocess.Popen(_scrub_command(key, "-", str(target)), stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdin is not None
    process.stdin.write(data[:1])
    process.stdin.flush()
    time.sleep(1.0)  # let the reader look at the first byte alone
    _, stderr = process.communicate(input=data[1:], timeout=TIMEOUT)

    assert process.returncode == 0, stderr.decode()
    assert target.read_bytes() == reference


@pytest.mark.parametrize("compress", [lambda b: b, *COMPRESSORS.values()], ids=["plain", *COMPRESSORS.keys()])
def test_digest_covers_the_file_as_stored(tmp_path: Path, compress: Callable[[bytes], bytes]) -> None:
    import hashlib

    from anontrace.io.capture import open_reader

    stored = compress(_bulky_pcapng())
    path = tmp_path / "capture.bin"
    path.write_bytes(stored)
    reader = open_reader(str(path))
    frames = sum(1 for _ in reader)
    digest = reader.stream.digest()
    reader.stream.close()

    assert frames > 0
    assert digest == (hashlib.sha256(stored).hexdigest(), len(stored))
