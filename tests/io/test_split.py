"""Splitting a capture into pieces: read one after the other with `open_chunk`, the pieces give
exactly the frames, interfaces, notices and errors of reading the whole file, wherever the
boundaries fall (every record its own piece, right after the first record, right before the last,
a record bigger than the target); the walk's digest is the file's.

Captures are built byte by byte (capbuild follows the file formats, not anontrace's code), so the
record boundaries each test expects come from construction."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
import zstandard
from capbuild import (
    CUSTOM_COPY,
    CUSTOM_NOCOPY,
    Order,
    block,
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
    tsresol,
)

from anontrace.errors import AnontraceError, TraceFormatError
from anontrace.io.capture import Reader, open_reader
from anontrace.io.split import Chunk, Digest, chunks, open_chunk, splittable
from anontrace.packet.frame import Frame, Interface

CORPUS = Path("/work/shared/corpus")
HEADER = 24
ORDERS: list[Order] = ["<", ">"]
FrameKey = tuple[int, int, bytes, int, int, int]  # index, ts_ns, data, wirelen, iface, linktype
ErrorKey = tuple[type, str, str, str]  # type, where, what, hint


@dataclass
class Outcome:
    """What reading produced: frames, the interfaces known at the end, notices, and the error."""

    frames: list[FrameKey]
    interfaces: list[Interface]
    notices: Counter[str]
    error: ErrorKey | None


def key(frame: Frame) -> FrameKey:
    return (frame.index, frame.ts_ns, frame.data, frame.wirelen, frame.iface, frame.linktype)


def error_key(error: AnontraceError) -> ErrorKey:
    return (type(error), error.where, error.what, error.hint)


def read_into(outcome: Outcome, open_one: Callable[[], Reader]) -> bool:
    """Add one reader's frames, interfaces and notices to `outcome`; False once an error is met."""
    try:
        reader = open_one()
    except TraceFormatError as exc:
        outcome.error = error_key(exc)
        return False
    try:
        for frame in reader:
            outcome.frames.append(key(frame))
    except TraceFormatError as exc:
        outcome.error = error_key(exc)
    finally:
        reader.stream.close()
    outcome.interfaces = list(reader.interfaces)
    outcome.notices.update(reader.notices)
    return outcome.error is None


def read_whole(path: Path) -> Outcome:
    outcome = Outcome([], [], Counter(), None)
    read_into(outcome, lambda: open_reader(str(path)))
    return outcome


def read_pieces(pieces: list[Chunk]) -> Outcome:
    """Read `pieces` in order with a reader each, stopping at the first error."""
    outcome = Outcome([], [], Counter(), None)
    for chunk in pieces:
        if not read_into(outcome, partial(open_chunk, chunk)):
            break
    return outcome


def split(path: Path, target: int) -> list[Chunk]:
    """The pieces, checked to cover the file from its first record to its end without a gap."""
    pieces = list(chunks(str(path), target))
    assert pieces[-1].end is None
    assert all(a.end == b.start for a, b in itertools.pairwise(pieces))
    assert all(c.end is not None and c.end > c.start for c in pieces[:-1])
    assert all(c.source == str(path) for c in pieces)
    return pieces


def same_as_whole(path: Path, target: int) -> list[Chunk]:
    """Assert the pieces read like the whole file (frames, interfaces, notices, error); return them."""
    pieces = split(path, target)
    whole, parts = read_whole(path), read_pieces(pieces)
    assert parts.frames == whole.frames
    assert parts.error == whole.error
    assert parts.notices == whole.notices
    if whole.error is None:
        assert parts.interfaces == whole.interfaces
    counted = 0
    for chunk in pieces:  # each piece knows the number of its first frame and, but the last, its count
        assert chunk.first == counted
        if chunk.end is not None:
            assert chunk.frames is not None
            counted += chunk.frames
    return pieces


# ---------------------------------------------------------------------------------------------
# captures built in code


SIZES = (60, 1514, 14, 301, 77, 998, 42)


def payload(number: int, size: int) -> bytes:
    return bytes((number * 31 + i * 7) % 256 for i in range(size))


@dataclass(frozen=True)
class Built:
    path: Path
    starts: list[int]  # byte offset of every record (pcap) or of the block after each packet (pcapng)
    frames: int


def build_pcap(directory: Path, order: Order, nano: bool, sizes: tuple[int, ...] = SIZES) -> Built:
    data = bytearray(pcap_header(order, nano=nano))
    starts = []
    for number, size in enumerate(sizes):
        starts.append(len(data))
        fraction = (number * 123_457) % (1_000_000_000 if nano else 1_000_000)
        data += pcap_record(order, 1_700_000_000 + number, fraction, payload(number, size),
                            wirelen=size + number)
    path = directory / f"built-{'be' if order == '>' else 'le'}-{'ns' if nano else 'us'}.pcap"
    path.write_bytes(bytes(data))
    return Built(path, starts, len(sizes))


@pytest.mark.parametrize("nano", [False, True], ids=["us", "ns"])
@pytest.mark.parametrize("order", ORDERS, ids=["le", "be"])
def test_pcap_pieces_read_like_the_whole_file(tmp_path: Path, order: Order, nano: bool) -> None:
    built = build_pcap(tmp_path, order, nano)
    whole = read_whole(built.path)
    assert len(whole.frames) == built.frames and whole.error is None
    assert [f[2] for f in whole.frames] == [payload(n, s) for n, s in enumerate(SIZES)]

    every = same_as_whole(built.path, 1)
    assert [c.start for c in every] == built.starts  # every record its own piece
    assert [c.first for c in every] == list(range(built.frames))

    after_first = same_as_whole(built.path, 16 + SIZES[0])
    assert after_first[1].start == built.starts[1]
    assert after_first[0].frames == 1

    size = built.path.stat().st_size
    before_last = same_as_whole(built.path, built.starts[-1] - HEADER)
    assert [c.start for c in before_last] == [HEADER, built.starts[-1]]
    assert before_last[1].first == built.frames - 1

    for target in range(1, size + 2, 37):  # boundaries wherever the byte counts put them
        pieces = same_as_whole(built.path, target)
        assert {c.start for c in pieces} <= set(built.starts)
    assert [c.start for c in split(built.path, size)] == [HEADER]  # larger than the file: one piece


def test_notices_of_records_past_the_snaplen_add_up(tmp_path: Path) -> None:
    path = tmp_path / "snap.pcap"
    path.write_bytes(pcap_header("<", snaplen=100) + b"".join(
        pcap_record("<", n, 0, payload(n, 80 + 20 * (n % 3))) for n in range(9)))
    whole = read_whole(path)
    assert whole.notices == Counter({"records longer than the file's snaplen (read whole)": 3})
    for target in (1, 150, 500):
        same_as_whole(path, target)


def test_a_record_bigger_than_the_target_is_never_cut(tmp_path: Path) -> None:
    """A byte-count boundary at 300 would fall inside the 5000-byte record: the piece ends after it."""
    built = build_pcap(tmp_path, "<", False, (100, 5000, 100, 100))
    pieces = same_as_whole(built.path, 300)
    assert [c.start for c in pieces] == [HEADER, built.starts[2]]  # 116 + 5016 bytes, then the rest
    assert pieces[0].frames == 2


def build_pcapng(directory: Path) -> tuple[Path, list[int], list[str]]:
    """Two sections, the second big-endian, with their own interfaces; IDBs between packets;
    NRB, ISB and custom blocks; EPB, SPB and OPB. Returns the path, the offset after every packet
    block, and the kind of every block in file order."""
    first: list[tuple[str, bytes]] = [
        ("shb", shb("<")),
        ("idb", idb("<", 1, 0)),
        ("idb", idb("<", 101, 0, tsresol(9))),
        ("packet", epb("<", 0, 1_700_000_000_123_456, payload(0, 60))),
        ("other", nrb("<", bytes([10, 0, 0, 1]), b"host.example")),
        ("packet", epb("<", 1, 1_700_000_001_000_000_007, payload(1, 40), 1500)),
        ("packet", spb("<", payload(2, 90))),
        ("other", isb("<", 0, 1_700_000_002_000_000, b"statistics")),
        ("idb", idb("<", 228, 0, tsresol(0x80 | 20), tsoffset("<", 3600))),
        ("other", custom("<", CUSTOM_COPY, b"vendor data")),
        ("packet", epb("<", 2, 1_700_000_003 << 20, payload(3, 1200))),
        ("packet", opb("<", 1, 1_700_000_004_000_000_000, payload(4, 20))),
    ]
    second: list[tuple[str, bytes]] = [
        ("shb", shb(">")),
        ("idb", idb(">", 113, 0, tsresol(3))),
        ("packet", epb(">", 0, 1_700_000_005_001, payload(5, 33))),
        ("idb", idb(">", 1, 0)),
        ("other", custom(">", CUSTOM_NOCOPY, b"more vendor data")),
        ("packet", epb(">", 1, 1_700_000_006_000_000, payload(6, 700))),
        ("packet", spb(">", payload(7, 64))),
        ("packet", epb(">", 0, 1_700_000_007_002, payload(8, 3000))),
    ]
    data = bytearray()
    after: list[int] = []
    kinds: list[str] = []
    for kind, raw in first + second:
        data += raw
        kinds.append(kind)
        if kind == "packet":
            after.append(len(data))
    path = directory / "built.pcapng"
    path.write_bytes(bytes(data))
    return path, after, kinds


def test_pcapng_sections_interfaces_and_blocks_read_alike_in_pieces(tmp_path: Path) -> None:
    path, after, kinds = build_pcapng(tmp_path)
    whole = read_whole(path)
    assert whole.error is None and len(whole.frames) == kinds.count("packet") == 9
    assert [i.linktype for i in whole.interfaces] == [1, 101, 228, 113, 1]
    assert [f[4] for f in whole.frames] == [0, 1, 0, 2, 1, 3, 4, 3, 3]  # global interface ids
    assert sum(whole.notices.values()) == kinds.count("other")  # NRB, ISB, 2 custom: counted

    every = same_as_whole(path, 1)
    assert [c.start for c in every] == [0, *after[:-1]]  # a piece after every packet block
    assert every[5].start == after[4]  # this piece starts with the big-endian section header
    assert every[6].start == after[5]  # and this one with a big-endian IDB, mid-section
    assert same_as_whole(path, after[0])[1].start == after[0]  # right after the first packet
    assert [c.start for c in same_as_whole(path, after[-2])] == [0, after[-2]]  # right before the last
    size = path.stat().st_size
    for target in range(1, size + 2):
        pieces = same_as_whole(path, target)
        assert {c.start for c in pieces} <= {0, *after}


# ---------------------------------------------------------------------------------------------
# damaged captures: the same error at the same place, the frames before it read fine


def damaged_pcap(directory: Path, name: str, records: list[bytes]) -> Path:
    path = directory / name
    path.write_bytes(pcap_header("<") + b"".join(records))
    return path


def good_records(count: int) -> list[bytes]:
    return [pcap_record("<", 1_700_000_000 + n, n, payload(n, 50 + n)) for n in range(count)]


def pcap_cases(directory: Path) -> dict[str, Path]:
    records = good_records(6)
    return {
        "truncated last record": damaged_pcap(directory, "cut.pcap", [*records[:-1], records[-1][:-9]]),
        "last record header cut": damaged_pcap(directory, "cuthead.pcap", [*records, records[0][:7]]),
        "record claims too much": damaged_pcap(
            directory, "claims.pcap",
            [*records[:3], pcap_record("<", 5, 0, payload(9, 40), caplen=0x7FFFFFF0), *records[3:]]),
        "record claims past the end": damaged_pcap(
            directory, "past.pcap", [*records[:3], pcap_record("<", 5, 0, payload(9, 40), caplen=9000),
                                     *records[3:]]),
    }


DAMAGE = {
    "truncated last record": "file ends inside the record",
    "last record header cut": "file ends inside a record header",
    "record claims too much": "record claims 2147483632 bytes",
    "record claims past the end": "file ends inside the record",
    "bad block trailer in the middle": "trailing length differs",
    "bad block length in the middle": "block length 13 is invalid",
    "truncated last block": "file ends inside a block",
    "unregistered link type in the middle": "link type 60000 is not registered",
    "packet of an undescribed interface": "packet names interface 5",
    "bad byte-order magic in a later section": "bad byte-order magic",
    "bad option in a later IDB": "option runs past its block",
}


def pcapng_cases(directory: Path) -> dict[str, Path]:
    head = shb("<") + idb("<", 1, 0)
    packets = [epb("<", 0, 1_000_000 * n, payload(n, 40 + n)) for n in range(6)]
    bad_trailer = block("<", 6, bytes(20) + payload(7, 40), trailer=64)
    bad_length = block("<", 6, bytes(20) + payload(7, 40), length=13)
    cases = {
        "bad block trailer in the middle": head + b"".join(packets[:3]) + bad_trailer + b"".join(packets[3:]),
        "bad block length in the middle": head + b"".join(packets[:3]) + bad_length + b"".join(packets[3:]),
        "truncated last block": head + b"".join(packets) + packets[0][:-6],
        "unregistered link type in the middle": head + b"".join(packets[:2]) + idb("<", 60000, 0)
        + b"".join(packets[2:]),
        "packet of an undescribed interface": head + b"".join(packets[:4]) + epb("<", 5, 0, b"x" * 20)
        + b"".join(packets[4:]),
        "bad byte-order magic in a later section": head + b"".join(packets[:3])
        + shb("<").replace(struct.pack("<I", 0x1A2B3C4D), b"\0\1\2\3") + b"".join(packets[3:]),
        "bad option in a later IDB": head + b"".join(packets[:3])
        + block("<", 1, struct.pack("<HHI", 1, 0, 0) + struct.pack("<HH", 9, 200) + b"\x06\0\0\0")
        + b"".join(packets[3:]),
    }
    paths = {}
    for number, (name, data) in enumerate(cases.items()):
        paths[name] = directory / f"damaged{number}.pcapng"
        paths[name].write_bytes(data)
    return paths


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_damage_is_reported_by_the_pieces_as_by_the_whole_file(tmp_path: Path, kind: str) -> None:
    cases = pcap_cases(tmp_path) if kind == "pcap" else pcapng_cases(tmp_path)
    for name, path in cases.items():
        whole = read_whole(path)
        assert whole.error is not None and whole.error[0] is TraceFormatError, name
        assert DAMAGE[name] in whole.error[2], (name, whole.error)  # the damage built is the one met
        assert len(whole.frames) >= 2, name  # frames before the damage
        for target in (1, 2, 64, 100, 1 << 20):
            pieces = same_as_whole(path, target)
            if target == 1:  # the frames before the damage each had a piece of their own
                assert len(pieces) > len(whole.frames), name


def test_the_damaged_piece_names_the_byte_where_the_damage_is(tmp_path: Path) -> None:
    records = good_records(4)
    bad = pcap_record("<", 5, 0, payload(9, 40), caplen=0x7FFFFFF0)
    path = damaged_pcap(tmp_path, "claims.pcap", [*records, bad])
    at = HEADER + sum(len(r) for r in records)
    parts = read_pieces(split(path, 1))
    assert parts.error is not None
    assert parts.error[1] == f"{path}: frame 5 at byte {at}"
    assert len(parts.frames) == 4


# ---------------------------------------------------------------------------------------------
# digest, corpus, what is not split


def test_the_digest_is_the_files_by_the_last_piece(tmp_path: Path) -> None:
    built = build_pcap(tmp_path, "<", False)
    ng, _, _ = build_pcapng(tmp_path)
    damaged = pcapng_cases(tmp_path)["bad block trailer in the middle"]
    for path in (built.path, ng, damaged):
        data = path.read_bytes()
        expected = (hashlib.sha256(data).hexdigest(), len(data))
        for target in (1, 100, 1 << 30):
            digest = Digest()
            for chunk in chunks(str(path), target, digest):
                if chunk.end is None:
                    assert digest.hexdigest() == expected  # already whole when the last piece comes
            assert digest.hexdigest() == expected


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.iterdir() if p.suffix in (".pcap", ".pcapng"))


def test_every_corpus_capture_reads_alike_in_pieces() -> None:
    files = corpus_files()
    assert len(files) >= 100
    checked = 0
    for path in files:
        if not splittable(str(path)):
            head = path.read_bytes()[:4]
            assert head[:2] == b"\x1f\x8b" or head == b"\x28\xb5\x2f\xfd" or len(head) < 4, path
            continue
        for target in (1, 200):
            same_as_whole(path, target)
        data = path.read_bytes()
        digest = Digest()
        list(chunks(str(path), 500, digest))
        assert digest.hexdigest() == (hashlib.sha256(data).hexdigest(), len(data)), path
        checked += 1
    assert checked >= 100


def test_an_empty_file_is_refused_as_the_reader_refuses_it(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")
    with pytest.raises(TraceFormatError) as caught:
        list(chunks(str(path), 100))
    assert error_key(caught.value) == read_whole(path).error


def test_only_uncompressed_capture_files_are_splittable(tmp_path: Path) -> None:
    built = build_pcap(tmp_path, "<", False)
    ng, _, _ = build_pcapng(tmp_path)
    data = built.path.read_bytes()
    (tmp_path / "t.pcap.gz").write_bytes(gzip.compress(data))
    (tmp_path / "t.pcap.zst").write_bytes(zstandard.ZstdCompressor().compress(data))
    (tmp_path / "short.pcap").write_bytes(data[:3])
    (tmp_path / "text.pcap").write_bytes(b"hello, not a capture\n")
    (tmp_path / "dir.pcap").mkdir()
    assert splittable(str(built.path)) and splittable(str(ng))
    assert splittable(str(build_pcap(tmp_path, ">", True).path))
    for name in ("t.pcap.gz", "t.pcap.zst", "short.pcap", "text.pcap", "dir.pcap", "missing.pcap"):
        assert not splittable(str(tmp_path / name)), name
    assert not splittable("-")


def test_a_piece_describes_its_byte_range(tmp_path: Path) -> None:
    built = build_pcap(tmp_path, "<", False)
    pieces = split(built.path, 1)
    assert pieces[1].describe() == (
        f"{built.path}: bytes {built.starts[1]} to byte {built.starts[2]} (from frame 2)")
    assert pieces[-1].describe() == f"{built.path}: bytes {built.starts[-1]} to the end (from frame 7)"
