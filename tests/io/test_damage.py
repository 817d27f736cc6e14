"""Damaged captures through the real scrub path (`plan` + `scrub`, and the CLI for a sample).

Every prefix (cut at every byte) and seeded random bit flips of small pcap and pcapng captures,
plain, gzip and zstd, must end in one of two ways, within a time bound and without any other
exception:

- a `TraceFormatError` located in the input (`frame N at byte OFFSET`, `at byte OFFSET` or
  `byte 0`), with nothing under the output's name and no `.partial` file left; or
- a published trace that scapy reads, holding exactly the complete records of the input (scapy
  counts the same records in the input as `frames_in`), whose records before the damage are the
  very records the undamaged capture scrubs to.

What a truncated final record does: it is an error located at the start of that record (pcap:
`frame N at byte OFFSET`; pcapng: the block's `at byte OFFSET`; the pcap file header: `byte 0`),
and nothing is published; the same for gzip and zstd input, whose offsets count uncompressed bytes.
A capture that ends exactly between two records is whole and is scrubbed.

Expected outcomes come from the files' structure as the formats define it (walked here with
`struct`), from zlib and zstandard for how much of a cut compressed file can be decoded, and
from scapy as the independent reader.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import signal
import struct
import tempfile
import time
import traceback
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import zstandard
from capbuild import (
    CUSTOM_COPY,
    IF_TSRESOL,
    OPT_COMMENT,
    SHB_HARDWARE,
    MiB,
    custom,
    epb,
    idb,
    isb,
    nrb,
    opb,
    pcap_header,
    pcap_record,
    shb,
    spb,
    tsoffset,
)
from click.testing import CliRunner
from scapy.error import Scapy_Exception
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.utils import RawPcapNgReader, RawPcapReader

from anontrace.cli import cli
from anontrace.errors import TraceFormatError
from anontrace.io.capture import open_reader
from anontrace.keys import Key, write_key_file
from anontrace.packet.frame import Frame
from anontrace.rules.compile import read_rules
from anontrace.scrub import plan, scrub

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "sample_pcaps"
CORPUS = REPO.parent / "shared" / "corpus"
RULES = read_rules(None)
KEY = Key(bytes(32))
CASE_SECONDS = 2.0  # a case that takes longer is a hang (cases take milliseconds)
FLIPS = 300  # bit flips per capture
SAMPLED_CUTS = 400  # prefixes tried in a capture too big to cut at every byte

# --- captures --------------------------------------------------------------------------------


def _packets() -> list[bytes]:
    """Ethernet frames built with scapy, with real addresses for the transforms to work on."""
    client, server = "10.1.2.3", "192.0.2.80"
    mac_a, mac_b = "00:14:22:01:23:45", "00:1b:54:aa:bb:cc"
    return [
        bytes(Ether(src=mac_a, dst=mac_b) / IP(src=client, dst="198.51.100.53") / UDP(sport=40000, dport=53)
              / DNS(rd=1, qd=DNSQR(qname="files.corp.example.com"))),
        bytes(Ether(src=mac_a, dst=mac_b) / IP(src=client, dst=server)
              / TCP(sport=40001, dport=80, flags="S")),
        bytes(Ether(src=mac_b, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=mac_b, psrc=server, pdst=client)),
        bytes(Ether(src=mac_b, dst=mac_a) / IP(src=server, dst=client) / ICMP(type=0)),
        bytes(Ether(src=mac_a, dst=mac_b) / IPv6(src="2001:db8::10", dst="2001:db8::80") / UDP(sport=5353)),
    ]


def _raw(frame: bytes) -> bytes:
    """The IP datagram inside an Ethernet frame (link type 101, raw IP)."""
    return frame[14:]


def multi_section_pcapng() -> bytes:
    """Two sections in opposite byte orders: three interfaces with different link types and time
    resolutions, packets in EPBs, an SPB and an OPB, and blocks that are left out (name
    resolution, statistics, custom) around them."""
    frames = _packets()
    little = (
        shb("<", (SHB_HARDWARE, b"probe-7 x86_64"))
        + idb("<", 1, 0)
        + idb("<", 101, 65535, (IF_TSRESOL, bytes([9])), tsoffset("<", 100))
        + nrb("<", bytes([10, 1, 2, 3]), b"files.corp.example.com")
        + epb("<", 0, 1_700_000_000_000_001, frames[0])
        + epb("<", 1, 1_700_000_000_000_000_123, _raw(frames[1]), None, (OPT_COMMENT, b"syn"))
        + isb("<", 0, 1_700_000_001_000_000, b"counters")
        + spb("<", frames[2])
        + custom("<", CUSTOM_COPY, b"vendor data")
    )
    big = (
        shb(">")
        + idb(">", 1, 262144, (IF_TSRESOL, bytes([0x80 | 20])))
        + opb(">", 0, 1_782_580_000 << 20, frames[3])
        + epb(">", 0, (1_782_580_001 << 20) + 5, frames[4])
    )
    return little + big


def small_pcap() -> bytes:
    """A microsecond pcap of the scapy-built frames with a snaplen of 60: two records are cut to it."""
    records = [pcap_record("<", 1_700_000_000 + n, 1000 * n, frame[:60], wirelen=len(frame))
               for n, frame in enumerate(_packets())]
    return pcap_header("<", snaplen=60) + b"".join(records)


def _zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(write_checksum=True).compress(data)


@dataclass(frozen=True)
class Capture:
    """A capture to damage: its bytes as stored, its uncompressed bytes, its format."""

    name: str
    stored: bytes
    plain: bytes
    format: str  # "pcap" or "pcapng"
    compression: str  # "", "gzip" or "zstd"
    every_byte: bool = True

    @property
    def suffix(self) -> str:
        return "." + self.format + {"": "", "gzip": ".gz", "zstd": ".zst"}[self.compression]


def _stored(name: str, plain: bytes, capture_format: str, compression: str = "",
            every_byte: bool = True) -> Capture:
    stored = {"": plain, "gzip": gzip.compress(plain, mtime=0), "zstd": _zstd(plain)}[compression]
    return Capture(name, stored, plain, capture_format, compression, every_byte)


def _file(path: Path, every_byte: bool = True) -> Capture:
    capture_format = "pcapng" if path.suffix == ".pcapng" else "pcap"
    return _stored(f"{path.parent.name}/{path.name}", path.read_bytes(), capture_format,
                   every_byte=every_byte)


def captures() -> list[Capture]:
    found = [
        _stored("built/small.pcap", small_pcap(), "pcap"),
        _stored("built/multi-section.pcapng", multi_section_pcapng(), "pcapng"),
        _stored("built/small.pcap.gz", small_pcap(), "pcap", "gzip"),
        _stored("built/multi-section.pcapng.zst", multi_section_pcapng(), "pcapng", "zstd"),
        _file(SAMPLES / "nanosecond.pcap"),
        _file(SAMPLES / "office.pcap"),
        _file(SAMPLES / "dualstack.pcapng", every_byte=False),
    ]
    found += [_file(CORPUS / name) for name in ("tcp-handshake-nano.pcap", "ospf3_auth.pcapng",
                                                "dhcp-option-108.pcapng") if (CORPUS / name).exists()]
    return found


CAPTURES = {capture.name: capture for capture in captures()}

# --- the structure of a capture, as the formats define it ------------------------------------


@dataclass(frozen=True)
class Part:
    """A file header, record or block: where it starts and ends, and which packet it holds."""

    start: int
    end: int
    frame: int | None  # 1-based packet number; None for headers and blocks without a packet


def pcap_parts(data: bytes) -> list[Part]:
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    parts, pos = [Part(0, 24, None)], 24
    while pos < len(data):
        caplen = struct.unpack_from(order + "I", data, pos + 8)[0]
        parts.append(Part(pos, pos + 16 + caplen, len(parts)))
        pos += 16 + caplen
    assert pos == len(data)
    return parts


def pcapng_parts(data: bytes) -> list[Part]:
    parts: list[Part] = []
    pos, frames, order = 0, 0, "<"
    while pos < len(data):
        if data[pos:pos + 4] == b"\x0a\x0d\x0d\x0a":  # section header: its magic sets the byte order
            order = "<" if data[pos + 8:pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
        block_type, length = struct.unpack_from(order + "II", data, pos)
        frame = None
        if block_type in (2, 3, 6):  # obsolete, simple and enhanced packet blocks
            frames += 1
            frame = frames
        parts.append(Part(pos, pos + length, frame))
        pos += length
    assert pos == len(data)
    return parts


def parts_of(capture: Capture) -> list[Part]:
    return pcap_parts(capture.plain) if capture.format == "pcap" else pcapng_parts(capture.plain)


def frames_before(parts: list[Part], offset: int) -> int:
    """How many packets lie in records that end at or before `offset`."""
    return sum(1 for part in parts if part.frame is not None and part.end <= offset)


def located_at(path: Path, capture: Capture, parts: list[Part], available: int) -> str:
    """Where the error must point when only the first `available` (uncompressed) bytes can be
    read and they end inside a record, or (compressed input) the stream breaks right after them:
    the start of the first record not wholly available."""
    if available < 4:  # not even the magic: the file as a whole
        return f"{path}: byte 0"
    part = next((p for p in parts if p.end > available), None)
    if capture.format == "pcap":
        if part is None:  # all records whole, the stream broken where the next would start
            return f"{path}: frame {len(parts)} at byte {available}"
        return f"{path}: byte 0" if part.frame is None else f"{path}: frame {part.frame} at byte {part.start}"
    return f"{path}: at byte {available if part is None else part.start}"


def decodable(capture: Capture, stored: bytes) -> int:
    """How many uncompressed bytes the first bytes of a compressed file decode to."""
    if capture.compression == "gzip":
        return len(zlib.decompressobj(wbits=31).decompress(stored))
    return len(zstandard.ZstdDecompressor().decompressobj().decompress(stored))


# --- running one case ------------------------------------------------------------------------


class Hang(BaseException):
    """A case ran past CASE_SECONDS (a BaseException, so no library `except Exception` eats it)."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: FrameType | None) -> None:
        raise Hang

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Outcome:
    source: Path
    target: Path
    error: TraceFormatError | None
    frames_in: int
    frames_out: int
    dropped: int
    published: bool
    withheld: bool  # the leakage report failed its gates: only the report was written
    left: list[str]  # the directory's files besides the input, after the run


def run_case(work: Path, capture: Capture, content: bytes) -> Outcome:
    """Scrub `content` as the capture's file, in-process; any other exception fails the test."""
    source = work / f"in{capture.suffix}"
    target = work / f"out.{capture.format}"
    source.write_bytes(content)
    error, frames_in, frames_out, dropped, published, withheld = None, 0, 0, 0, False, False
    with deadline(CASE_SECONDS):
        try:
            result = scrub(plan([str(source)], str(target)), RULES, KEY)
        except TraceFormatError as exc:
            error = exc
        else:
            stats = result.total
            frames_in, frames_out, dropped = stats.frames_in, stats.frames_out, sum(stats.dropped.values())
            published = result.written[0].published
            withheld = not result.written[0].report["passed"]
    left = sorted(p.name for p in work.iterdir() if p != source)
    return Outcome(source, target, error, frames_in, frames_out, dropped, published, withheld, left)


def clean(work: Path) -> None:
    for path in work.iterdir():
        path.unlink()


Record = tuple[object, ...]  # time fields, original length, data (as the format holds them)


def scapy_records(path: Path, capture_format: str) -> list[Record]:
    """Records as scapy reads them; scapy stops quietly at damage, so this is what it could read."""
    records: list[Record] = []
    try:
        if capture_format == "pcap":
            with RawPcapReader(str(path)) as pcap:
                records += [(meta.sec, meta.usec, meta.wirelen, data) for data, meta in pcap]
        else:
            with RawPcapNgReader(str(path)) as pcapng:
                for data, meta in pcapng:
                    ng: Any = meta  # scapy types this as its pcap metadata; pcapng gives more fields
                    records.append((ng.tshigh, ng.tslow, ng.tsresol, ng.wirelen, data))
    except (Scapy_Exception, EOFError, struct.error):
        pass
    return records


def scapy_count(work: Path, capture: Capture, plain: bytes) -> int:
    path = work / f"scapy.{capture.format}"
    path.write_bytes(plain)
    try:
        return len(scapy_records(path, capture.format))
    finally:
        path.unlink()


@dataclass
class Reference:
    """The undamaged capture scrubbed: its records as scapy reads them."""

    parts: list[Part]
    records: list[Record]


REFERENCES: dict[str, Reference] = {}


def reference(work: Path, capture: Capture) -> Reference:
    if capture.name not in REFERENCES:
        outcome = run_case(work, capture, capture.stored)
        assert outcome.error is None and outcome.published, capture.name
        parts = parts_of(capture)
        frames = sum(1 for part in parts if part.frame is not None)
        assert outcome.frames_in == outcome.frames_out == frames, capture.name
        records = scapy_records(outcome.target, capture.format)
        assert len(records) == frames
        REFERENCES[capture.name] = Reference(parts, records)
        clean(work)
    return REFERENCES[capture.name]


LOCATION = re.compile(r": (?:frame (\d+) )?(?:at )?byte (\d+)$")


class Judge:
    """Collects what is wrong with each case, so one run shows every kind of failure."""

    def __init__(self, work: Path, capture: Capture) -> None:
        self.work = work
        self.capture = capture
        self.reference = reference(work, capture)
        self.problems: list[str] = []
        self.cases = 0
        self.errors = 0
        self.published = 0
        self.withheld: list[str] = []
        self.slowest = 0.0

    def check(self, case: str, ok: bool, what: str) -> None:
        if not ok:
            self.problems.append(f"{self.capture.name} {case}: {what}")

    def nothing_left(self, case: str, outcome: Outcome) -> None:
        self.errors += 1
        self.check(case, outcome.left == [], f"files left after an error: {outcome.left}")

    def published_records(self, case: str, outcome: Outcome, frames_in: int, intact: int) -> None:
        """A published trace: `frames_in` records read, scapy reads every output record, and the
        first `intact` output records are the undamaged capture's."""
        self.check(case, not any(name.endswith(".partial") for name in outcome.left),
                   f"partial files left: {outcome.left}")
        self.check(case, outcome.frames_in == frames_in,
                   f"frames_in {outcome.frames_in}, expected {frames_in}")
        self.check(case, outcome.frames_out == outcome.frames_in - outcome.dropped,
                   "frames out + dropped != frames in")
        if outcome.withheld:  # fail closed: the report found an original identifier in the output
            self.withheld.append(case)
            self.check(case, not outcome.published and outcome.target.name not in outcome.left,
                       "a trace that failed its gates was published")
            return
        self.published += 1
        self.check(case, outcome.published, "no error and no failed gate, yet nothing was published")
        records = scapy_records(outcome.target, self.capture.format)
        self.check(case, len(records) == outcome.frames_out,
                   f"scapy reads {len(records)} records of {outcome.frames_out} written")
        same = min(intact, len(records))
        self.check(case, records[:same] == self.reference.records[:same],
                   "records before the damage differ from the undamaged capture's")

    def run(self, case: str, content: bytes) -> Outcome | None:
        """The case's outcome; None (and a problem noted) if it hung or raised anything else."""
        self.cases += 1
        started = time.perf_counter()
        try:
            return run_case(self.work, self.capture, content)
        except Hang:
            self.problems.append(f"{self.capture.name} {case}: ran over {CASE_SECONDS} s")
        except Exception as exc:  # the point: nothing but TraceFormatError may escape
            last = traceback.extract_tb(exc.__traceback__)[-1]
            self.problems.append(f"{self.capture.name} {case}: {type(exc).__name__}: {exc} "
                                 f"({last.filename}:{last.lineno})")
        finally:
            self.slowest = max(self.slowest, time.perf_counter() - started)
        clean(self.work)
        return None

    def verdict(self) -> None:
        shown = "\n".join(self.problems[:30])
        assert not self.problems, (f"{len(self.problems)} problems in {self.cases} cases "
                                   f"(slowest {self.slowest:.3f} s):\n{shown}")


MEMORY_DISK = Path("/dev/shm")


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    """A directory in memory where there is one: every published case fsyncs half a dozen files,
    and on a disk shared with other jobs those syncs, not anontrace, would set the runtime."""
    if not (MEMORY_DISK.is_dir() and os.access(MEMORY_DISK, os.W_OK)):
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=MEMORY_DISK, prefix="anontrace-damage-") as directory:
        yield Path(directory)


@pytest.fixture
def judge(request: pytest.FixtureRequest, work: Path) -> Judge:
    return Judge(work, CAPTURES[request.param])


# --- prefixes --------------------------------------------------------------------------------


def cuts(capture: Capture, parts: list[Part]) -> list[int]:
    """Every byte, or for a bigger capture every record boundary (and one byte either side) and a
    seeded sample of the rest."""
    size = len(capture.stored)
    if capture.every_byte:
        return list(range(size + 1))
    edges = {edge + delta for part in parts for edge in (part.start, part.end) for delta in (-1, 0, 1)}
    sample = random.Random(f"cuts {capture.name}").sample(range(size), SAMPLED_CUTS)
    return sorted(c for c in edges | set(sample) | {0, size} if 0 <= c <= size)


def expect_prefix(judge: Judge, cut: int, outcome: Outcome) -> None:
    capture, parts = judge.capture, judge.reference.parts
    case = f"cut at {cut}"
    whole = cut == len(capture.stored)
    if capture.compression:
        boundary = whole
        available = len(capture.plain) if whole else decodable(capture, capture.stored[:cut])
    else:
        available = cut
        boundary = cut >= parts[0].end and any(part.end == cut for part in parts)
    if boundary:
        judge.check(case, outcome.error is None, f"whole records, yet {outcome.error}")
        if outcome.error is None:
            complete = frames_before(parts, available)
            judge.published_records(case, outcome, complete, complete)
        return
    error = outcome.error
    judge.check(case, error is not None, "a cut record was not refused")
    if error is None:
        return
    judge.nothing_left(case, outcome)
    expected = str(outcome.source) if cut == 0 else located_at(outcome.source, capture, parts, available)
    judge.check(case, error.where == expected, f"located at {error.where!r}, expected {expected!r}")


@pytest.mark.parametrize("judge", CAPTURES, indirect=True)
def test_every_prefix_is_refused_at_the_cut_record_or_scrubbed_whole(judge: Judge) -> None:
    content = judge.capture.stored
    for cut in cuts(judge.capture, judge.reference.parts):
        outcome = judge.run(f"cut at {cut}", content[:cut])
        if outcome is not None:
            expect_prefix(judge, cut, outcome)
        clean(judge.work)
    judge.verdict()
    assert judge.errors and judge.published  # both outcomes were seen


# --- bit flips -------------------------------------------------------------------------------


def flips(capture: Capture) -> list[tuple[int, int]]:
    chance = random.Random(f"flips {capture.name}")
    return [(chance.randrange(len(capture.stored)), chance.randrange(8)) for _ in range(FLIPS)]


def damaged_plain(capture: Capture, stored: bytes) -> bytes | None:
    """The uncompressed bytes of a damaged file, or None if it does not decompress."""
    try:
        if capture.compression == "gzip":
            return gzip.decompress(stored)
        if capture.compression == "zstd":
            return zstandard.ZstdDecompressor().decompressobj().decompress(stored)
    except (OSError, EOFError, zlib.error, zstandard.ZstdError):
        return None
    return stored


def first_difference(left: bytes, right: bytes) -> int:
    same = min(len(left), len(right))
    return next((n for n in range(same) if left[n] != right[n]), same)


def expect_flip(judge: Judge, position: int, bit: int, damaged: bytes, outcome: Outcome) -> None:
    capture, parts = judge.capture, judge.reference.parts
    case = f"bit {bit} of byte {position} flipped"
    plain = damaged_plain(capture, damaged)
    # in the uncompressed bytes: the first byte that differs, and the record that holds it
    changed = position if not capture.compression else first_difference(plain or b"", capture.plain)
    damaged_part = next((p for p in parts if p.end > changed), parts[-1])
    if outcome.error is not None:
        judge.nothing_left(case, outcome)
        where = outcome.error.where
        location = LOCATION.search(where)
        judge.check(case, where.startswith(f"{outcome.source}: ") and location is not None,
                    f"not located: {where!r}")
        if location is not None and not capture.compression:
            offset = int(location.group(2))
            judge.check(case, offset >= damaged_part.start or offset == 0,
                        f"located at byte {offset}, before the damaged record at {damaged_part.start}")
        return
    judge.check(case, plain is not None, "damaged compressed input was scrubbed")
    if plain is None:
        return
    intact = frames_before(parts, damaged_part.start)
    judge.published_records(case, outcome, scapy_count(judge.work, capture, plain), intact)


@pytest.mark.parametrize("judge", CAPTURES, indirect=True)
def test_bit_flips_are_refused_located_or_scrubbed_as_read(judge: Judge) -> None:
    content = judge.capture.stored
    for position, bit in flips(judge.capture):
        damaged = bytearray(content)
        damaged[position] ^= 1 << bit
        outcome = judge.run(f"bit {bit} of byte {position} flipped", bytes(damaged))
        if outcome is not None:
            expect_flip(judge, position, bit, bytes(damaged), outcome)
        clean(judge.work)
    judge.verdict()


# --- the command line, for a sample of the same cases ------------------------------------------

CLI_CASES = 6  # per capture: half cut short, half with a bit flipped


def cli_contents(capture: Capture) -> list[tuple[str, bytes]]:
    chance = random.Random(f"cli {capture.name}")
    contents = []
    for _ in range(CLI_CASES // 2):
        cut = chance.randrange(len(capture.stored))
        contents.append((f"cut at {cut}", capture.stored[:cut]))
        position, bit = chance.randrange(len(capture.stored)), chance.randrange(8)
        damaged = bytearray(capture.stored)
        damaged[position] ^= 1 << bit
        contents.append((f"bit {bit} of byte {position} flipped", bytes(damaged)))
    return contents


@pytest.mark.parametrize("judge", CAPTURES, indirect=True)
def test_the_command_line_fails_located_or_writes_the_same_trace(
        judge: Judge, tmp_path_factory: pytest.TempPathFactory) -> None:
    """`anontrace scrub` (with the same key) ends as the library does: exit 1 with the located
    error and nothing left, exit 3 for a withheld trace, or exit 0 and the very same trace."""
    capture = judge.capture
    key_file = tmp_path_factory.mktemp("key") / "zero.key"
    write_key_file(key_file, KEY)
    work = tmp_path_factory.mktemp("cli")
    source, target = work / f"in{capture.suffix}", work / f"out.{capture.format}"
    for case, content in cli_contents(capture):
        expected = run_case(judge.work, capture, content)
        trace = expected.target.read_bytes() if expected.published else None
        clean(judge.work)
        source.write_bytes(content)
        result = CliRunner().invoke(cli, ["scrub", str(source), "-o", str(target),
                                          "--key-file", str(key_file), "-q", "--json"])
        left = sorted(p.name for p in work.iterdir() if p != source)
        assert "Traceback" not in result.stderr, (case, result.stderr)
        assert "internal error" not in result.stderr, (case, result.stderr)
        if expected.error is not None:
            where = expected.error.where.replace(str(expected.source), str(source))
            assert result.exit_code == 1, (case, result.stderr)
            assert result.stderr.startswith(f"Error: {where}: {expected.error.what}\n"), (case, result.stderr)
            assert left == [], case
        elif expected.withheld:
            assert result.exit_code == 3, (case, result.stderr)
            assert target.name not in left, case
        else:
            assert result.exit_code == 0, (case, result.stderr)
            assert json.loads(result.stdout)["frames_in"] == expected.frames_in, case
            assert target.read_bytes() == trace, case
        clean(work)


# --- resource bombs: claims of huge records cost what the file holds, not what it claims --------

GIB_4 = 0xFFFFFFFC  # the largest block length that is a multiple of 4
BOUND = 32 * MiB  # a whole scrub of a small capture peaks at a few MiB


def _pcapng_claiming(length: int) -> tuple[bytes, int]:
    """A good section and frame, then a packet block claiming `length` bytes that holds 100;
    returns the bytes and where the claiming block starts."""
    good = shb("<") + idb("<", 1, 0) + epb("<", 0, 1, _packets()[0])
    return good + struct.pack("<II", 6, length) + bytes(100), len(good)


def _pcap_claiming(snaplen: int, caplen: int) -> tuple[bytes, int]:
    good = pcap_header("<", snaplen=snaplen) + pcap_record("<", 1, 0, _packets()[0])
    return good + struct.pack("<IIII", 2, 0, caplen, caplen) + bytes(100), len(good)


BOMBS = {
    # name: (content, where suffix, what starts with)
    "pcapng-block-claims-4-GiB": (*_pcapng_claiming(GIB_4), "at byte {at}",
                                  f"block length {GIB_4} is invalid"),
    "pcapng-block-claims-252-MiB": (*_pcapng_claiming(252 * MiB), "at byte {at}", "file ends inside a block"),
    "pcap-record-claims-4-GiB": (*_pcap_claiming(0xFFFFFFFF, 0xFFFFFFFF), "frame 2 at byte {at}",
                                 "record claims 4294967295 bytes"),
    "pcap-record-claims-4-GiB-snaplen-65535": (*_pcap_claiming(65535, 0xFFFFFFFF), "frame 2 at byte {at}",
                                               "record claims 4294967295 bytes"),
    "pcap-record-claims-255-MiB": (*_pcap_claiming(0, 255 * MiB), "frame 2 at byte {at}",
                                   "file ends inside the record (100 of"),
}
COMPRESSIONS: dict[str, Callable[[bytes], bytes]] = {
    "plain": lambda data: data, "gzip": lambda data: gzip.compress(data, mtime=0), "zstd": _zstd}


@pytest.mark.parametrize("compress", COMPRESSIONS.values(), ids=COMPRESSIONS.keys())
@pytest.mark.parametrize("bomb", BOMBS.values(), ids=BOMBS.keys())
def test_a_record_claiming_gigabytes_is_a_located_error_in_bounded_memory(
        tmp_path: Path, bomb: tuple[bytes, int, str, str], compress: Callable[[bytes], bytes]) -> None:
    content, at, where, what = bomb
    suffix = ".pcapng" if content.startswith(b"\x0a\x0d\x0d\x0a") else ".pcap"
    source = tmp_path / f"bomb{suffix}"
    source.write_bytes(compress(content))

    tracemalloc.start()
    try:
        with pytest.raises(TraceFormatError) as caught:
            scrub(plan([str(source)], str(tmp_path / f"out{suffix}")), RULES, KEY)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert caught.value.where == f"{source}: {where.format(at=at)}"
    assert caught.value.what.startswith(what)
    assert peak < BOUND, f"peak {peak >> 20} MiB"
    assert sorted(p.name for p in tmp_path.iterdir()) == [source.name]


# --- regressions: damage found by the cases above ------------------------------------------------


@pytest.mark.parametrize("major", [0, 2, 0x4101])
def test_a_section_of_another_major_version_is_refused(tmp_path: Path, major: int) -> None:
    """Found by a flipped bit in a section header's version: the section was read as version 1."""
    section = bytearray(shb("<") + idb("<", 1, 0) + epb("<", 0, 1, b"frame"))
    struct.pack_into("<H", section, 12, major)
    path = tmp_path / "odd.pcapng"
    path.write_bytes(section)
    reader = open_reader(str(path))
    try:
        with pytest.raises(TraceFormatError) as caught:
            list(reader)
    finally:
        reader.stream.close()
    assert caught.value.where == f"{path}: at byte 12"
    assert f"major version {major}" in caught.value.what


def test_a_section_header_too_short_for_its_fields_is_refused(tmp_path: Path) -> None:
    """A section header holds at least 28 bytes (through its section length); 24 was accepted."""
    good = shb("<") + idb("<", 1, 0)
    path = tmp_path / "short.pcapng"
    path.write_bytes(good + struct.pack("<IIIHHII", 0x0A0D0D0A, 24, 0x1A2B3C4D, 1, 0, 0, 24))
    reader = open_reader(str(path))
    try:
        with pytest.raises(TraceFormatError) as caught:
            list(reader)
    finally:
        reader.stream.close()
    assert caught.value.where == f"{path}: at byte {len(good)}"
    assert caught.value.what == "block length 24 is invalid"


def test_a_cut_gzip_capture_is_located_at_the_cut_record_far_into_the_file(tmp_path: Path) -> None:
    """gzip's reads fill their whole (1 MiB) request, so the records decoded before the cut were
    lost with it and the error pointed up to 1 MiB before the cut record."""
    records = [pcap_record("<", n, 0, n.to_bytes(4, "big") * 50) for n in range(12_000)]  # 216 bytes each
    plain = pcap_header("<") + b"".join(records)
    stored = gzip.compress(plain, mtime=0)
    cut = len(stored) * 3 // 4
    available = len(zlib.decompressobj(wbits=31).decompress(stored[:cut]))
    complete = (available - 24) // 216
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(stored[:cut])
    reader = open_reader(str(path))
    frames: list[Frame] = []
    try:
        with pytest.raises(TraceFormatError) as caught:
            frames.extend(reader)
    finally:
        reader.stream.close()
    assert len(frames) == complete
    assert 24 + 216 * complete > MiB  # past the first of gzip's 1 MiB reads
    assert caught.value.where == f"{path}: frame {complete + 1} at byte {24 + 216 * complete}"
