"""The batch table (`packet.table`) against the frame-by-frame path: the same checksums after
random header edits, the same bytes when rows turn back into bytearrays, the right frames as
rows, and whole runs that write the same records and count the same either way."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet, Raw

import anontrace.pipeline
from anontrace.keys import Key
from anontrace.packet.batch import Batch
from anontrace.packet.fast import dissect_common
from anontrace.packet.frame import Frame
from anontrace.packet.transport import TCP_PORTS, UDP_PORTS
from anontrace.pipeline import RunStats, fix_batch_checksums, prepare, run
from anontrace.rules.compile import Rules, read_rules
from anontrace.transforms.generalize import KEEP_PORTS
from tests.packet import test_fast
from tests.packet.test_fast import CAPTURES, _Collect, _Frames, read_frames

bench_frames = test_fast.bench_frames  # the 20,000-frame benchmark trace, as a fixture here too
ETHERNET = 1
APP_PORTS = set(TCP_PORTS) | set(UDP_PORTS)  # ports the dissector reads an application behind
KINDS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}


def _link(vlan: int | None) -> Packet:
    ether = Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01")
    return ether / Dot1Q(vlan=vlan) if vlan is not None else ether


def _port(rng: random.Random) -> int:
    """A port below 1024, a kept one, a registered one or a dynamic one, never an application's."""
    while True:
        port = rng.choice([rng.randrange(1, 1024), rng.choice(KEEP_PORTS), rng.randrange(1024, 49152),
                           rng.randrange(49152, 65536)])
        if port not in APP_PORTS:
            return port


def _tcp_options(rng: random.Random) -> bytes:
    """0 to 40 bytes of TCP options in any kind and order, well-formed or not, padded to words."""
    stamp = [0, rng.randrange(1, 1 << 32)]
    pieces = [b"\x02\x04\x05\xb4", b"\x03\x03\x07", b"\x04\x02", b"\x01" * rng.randint(1, 6),
              bytes([5, 2 + 8 * (edges := rng.randint(1, 3))]) + rng.randbytes(8 * edges),
              b"\x08\x0a" + struct.pack("!II", rng.choice(stamp), rng.choice(stamp)),
              b"\x00" + rng.randbytes(rng.randint(0, 9)),  # EOL, then garbage
              bytes([rng.choice((30, 34, 254)), 4 + (size := rng.randint(0, 8))]) + rng.randbytes(size),
              bytes([rng.choice((2, 30, 8)), rng.choice((0, 1, 40, 255))]) + rng.randbytes(2)]
    options = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))[:40]
    return options + rng.choice((b"\x01", b"\x00", rng.randbytes(1))) * (-len(options) % 4)


@dataclass(frozen=True)
class Crafted:
    """A common frame as captured, the whole datagram it came from, and where its parts lie."""

    captured: bytes
    whole: bytes  # the frame with its whole payload and no padding
    network: int
    transport: int
    header: int  # where the payload starts
    protocol: int
    right: bool  # the input checksums are correct (UDP: or zero)
    zero: bool  # UDP without checksum


def _crafted(rng: random.Random) -> Crafted:
    """IPv4 or IPv6, TCP/UDP/ICMP, VLAN or not, right or wrong checksums, UDP checksum 0, payload
    of any length, cut short by the capture or followed by padding."""
    v4, vlan = rng.random() < 0.5, rng.choice((None, 7))
    kind = rng.choice(("tcp", "udp", "icmp" if v4 else "icmpv6"))
    wrong = rng.random() < 0.2
    zero = kind == "udp" and not wrong and rng.random() < 0.3
    ip_wrong = v4 and rng.random() < 0.1
    checksum: dict[str, Any] = {"chksum": rng.randrange(1, 1 << 16) if wrong else 0} if wrong or zero else {}
    body = rng.randbytes(rng.randint(0, 61))
    if v4:
        ip: Packet = IP(src="192.0.2.1", dst="198.51.100.2", ttl=rng.randrange(256),
                        id=rng.randrange(1 << 16), tos=rng.randrange(256),
                        **({"chksum": 0xBEEF} if ip_wrong else {}))  # type: ignore[arg-type]
    else:
        ip = IPv6(src="2001:db8::1", dst="2001:db8:7::2", hlim=rng.randrange(256), tc=rng.randrange(256),
                  fl=rng.choice((0, rng.randrange(1 << 20))))
    size = 8
    if kind == "tcp":
        options = _tcp_options(rng)
        size = 20 + len(options)
        segment: Packet = TCP(sport=_port(rng), dport=_port(rng), seq=rng.randrange(1 << 32),
                              ack=rng.randrange(1 << 32), flags=rng.randrange(256),
                              window=rng.randrange(1 << 16), dataofs=size // 4,
                              **checksum) / Raw(options + body)
    elif kind == "udp":
        segment = UDP(sport=_port(rng), dport=_port(rng), **checksum) / Raw(body)
    elif kind == "icmp":
        segment = ICMP(type=rng.choice((0, 8)), id=rng.randrange(1 << 16), **checksum) / Raw(body)
    else:
        segment = ICMPv6EchoRequest(data=body, **({"cksum": checksum["chksum"]} if wrong else {}))
    whole = bytes(_link(vlan) / ip / segment)
    network = 18 if vlan else 14
    transport = network + (20 if v4 else 40)
    captured = whole
    if rng.random() < 0.3:
        captured = whole[:rng.randint(transport + size, len(whole))]
    elif rng.random() < 0.3:
        captured = whole + rng.choice((bytes(rng.randint(1, 12)), rng.randbytes(rng.randint(1, 12))))
    return Crafted(captured, whole, network, transport, transport + size, KINDS[kind],
                   not (wrong or ip_wrong), zero)


def _others(rng: random.Random) -> list[bytes]:
    """Frames that never become rows: applications, IP options, extension headers, ARP, TCP
    headers cut short or longer than their datagram, ICMP errors."""
    v4 = IP(src="192.0.2.1", dst="198.51.100.2")
    tcp = TCP(sport=40000, dport=8443, options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 2)])
    packets = [
        _link(None) / v4 / UDP(sport=33000, dport=53) / DNS(qd=DNSQR(qname="host.example.com")),
        _link(3) / IP(src="192.0.2.1", dst="198.51.100.2", options=[IPOption_RR(routers=["10.0.0.1"])])
        / TCP(sport=40000, dport=443),
        _link(None) / IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrHopByHop()
        / UDP(sport=1000, dport=2000),
        _link(None) / IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrDestOpt() / TCP(),
        _link(None) / ARP(psrc="192.0.2.1", pdst="192.0.2.9", hwsrc="02:00:00:00:00:01"),
        _link(None) / v4 / ICMP(type=3, code=3) / IP(src="198.51.100.2", dst="192.0.2.1") / UDP(),
        _link(None) / v4 / TCP(sport=40000, dport=8443, dataofs=10) / Raw(b"x" * 10),
        _link(None) / IP(src="192.0.2.1", dst="198.51.100.2", len=32) / TCP(sport=40000, dport=8443),
    ]
    frames = [bytes(packet) for packet in packets]
    cut = bytes(_link(7) / v4 / tcp)
    return [*frames, cut[:rng.randint(34, len(cut) - 1)]]


def _frames(captured: list[bytes]) -> list[Frame]:
    return [Frame(i, 1_000_000 * i + 7 * (i % 5), data, len(data), ETHERNET)
            for i, data in enumerate(captured)]


def _fold(data: bytes) -> int:
    """The folded one's-complement sum of big-endian 16-bit words (an odd tail padded): 0xFFFF
    over the bytes a right checksum covers."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _sums(data: bytes, c: Crafted) -> dict[str, int]:
    """The sums each checksum of a whole crafted frame (or one rewritten like it) covers, by
    scope; UDP without a checksum has none."""
    n, t, end = c.network, c.transport, len(c.whole)
    sums = {}
    if t == n + 20:
        sums["ip"] = _fold(data[n:n + 20])
        pseudo = data[n + 12:n + 20] + struct.pack("!BBH", 0, c.protocol, end - t)
    else:
        pseudo = data[n + 8:n + 40] + struct.pack("!I3xB", end - t, c.protocol)
    if not c.zero:
        sums["transport"] = _fold(data[t:end] if c.protocol == KINDS["icmp"] else pseudo + data[t:end])
    return sums


def _edit(rng: random.Random, batch: Batch, row: int, expected: bytearray, fields: set[int]) -> None:
    """Random new values for a few header bytes of a row (never a checksum field), in the table's
    output and in `expected` alike."""
    table = batch.table
    assert table is not None
    for _ in range(rng.choice((0, 1, 1, 2, 4))):
        offset = rng.randrange(int(table.header[row]))
        if offset not in fields:
            table.out[row, offset] = expected[offset] = rng.randrange(256)


def test_the_vectorized_checksums_equal_the_frame_by_frame_ones() -> None:
    rng = random.Random(6)
    for _ in range(6):
        crafted = [_crafted(rng) for _ in range(500)]
        frames = _frames([c.captured for c in crafted])
        fast, slow = prepare(frames, RunStats(), columns=True), prepare(frames, RunStats(), vectorized=False)
        table = fast.table
        assert table is not None and len(table) == len(frames)  # every one of them is a row
        for row, position in enumerate(table.positions.tolist()):
            expected, found = slow.data[position], slow.layers[position]
            _edit(rng, fast, row, expected, {f for c in found.checksums for f in (c.field, c.field + 1)})
            if rng.random() < 0.3:  # as payload keep 0 does
                table.length[row] = table.header[row]
                del expected[table.header[row]:]
            if rng.random() < 0.05:
                fast.drop(position, "test")
                slow.drop(position, "test")
        fix_batch_checksums(fast)
        fix_batch_checksums(slow)
        assert fast.data == slow.data
        for position, (c, out) in enumerate(zip(crafted, fast.data, strict=True)):
            if position in fast.dropped:
                continue
            rebuilt = bytes(out[:c.header]) + c.whole[c.header:]  # the datagram as sent, edits included
            after, before = _sums(rebuilt, c), _sums(c.whole, c)
            if c.zero:
                assert rebuilt[c.transport + 6:c.transport + 8] == b"\0\0"
            assert {k: s % 0xFFFF for k, s in after.items()} == {k: s % 0xFFFF for k, s in before.items()}
            if c.right:
                assert set(after.values()) <= {0xFFFF}


def _fixed_both_ways(packet: Packet, offset: int, word: int) -> list[bytes]:
    """The frame with the 16-bit word at `offset` set to `word`, checksums fixed by the table and
    frame by frame."""
    frames = _frames([bytes(packet)])
    found = []
    for columns in (True, False):
        batch = prepare(frames, RunStats(), vectorized=columns, columns=columns)
        if batch.table is not None:
            batch.table.put_number(np.zeros(1, np.int64), np.full(1, offset), 2, np.full(1, word))
        else:
            batch.data[0][offset:offset + 2] = word.to_bytes(2, "big")
        fix_batch_checksums(batch)
        found.append(bytes(batch.data[0]))
    return found


@pytest.mark.parametrize("v4", [True, False], ids=["ipv4", "ipv6"])
def test_checksums_at_the_edges_of_ones_complement(v4: bool) -> None:
    """A UDP checksum that comes out 0 is sent as 0xFFFF (RFC 768); a sum that carries twice
    (TCP checksum 0, covered sum m, then m + 1) folds twice: the new checksum is -1, 0xFFFE."""
    ip = IP(src="192.0.2.1", dst="198.51.100.2") if v4 else IPv6(src="2001:db8::1", dst="2001:db8::2")
    at = 14 + (20 if v4 else 40)
    udp = _link(None) / ip / UDP(sport=40000, dport=8443) / Raw(b"data")
    right = int.from_bytes(bytes(udp)[at + 6:at + 8], "big")
    sport = (40000 + right) % 0xFFFF  # the covered sum grows by the checksum: the new one is 0
    assert {out[at + 6:at + 8] for out in _fixed_both_ways(udp, at, sport)} == {b"\xff\xff"}
    tcp = _link(None) / ip / TCP(sport=40000, dport=8443, window=0x1000, chksum=0) / Raw(b"data")
    covered = _sums(bytes(tcp), Crafted(b"", bytes(tcp), 14, at, at + 20, 6, False, False))
    assert covered["transport"] % 0xFFFF <= 0xFFFD  # so the window's + 1 makes the sum carry twice
    assert {out[at + 16:at + 18] for out in _fixed_both_ways(tcp, at + 14, 0x1001)} == {b"\xff\xfe"}


def test_rows_turn_into_the_bytes_the_frame_by_frame_path_gives() -> None:
    rng = random.Random(7)
    captured = [_crafted(rng).captured for _ in range(300)] + _others(rng) * 3
    rng.shuffle(captured)
    frames = _frames(captured)
    batch, slow = prepare(frames, RunStats(), columns=True), prepare(frames, RunStats(), vectorized=False)
    expected = slow.data
    table = batch.table
    assert table is not None and 0 < len(table) < len(frames)
    for row, position in enumerate(table.positions.tolist()):
        header = int(table.header[row])
        assert table.original[row, :header].tobytes() == frames[position].data[:header]
        assert not table.original[row, header:].any()
        assert (table.out[row] == table.original[row]).all()
    rows = set(table.positions.tolist())
    assert [p for p, *_ in batch.others()] == [p for p in range(len(frames)) if p not in rows]
    assert all(out == expected[p] for p, _, _, out in batch.others())
    for row, position in enumerate(table.positions.tolist()):
        _edit(rng, batch, row, expected[position], set())
        if rng.random() < 0.3:
            table.length[row] = table.header[row]
            del expected[position][table.header[row]:]
    assert batch.data == expected
    assert batch.table is None


def _assert_rows_match_layers(batch: Batch) -> None:
    table = batch.table
    assert table is not None
    for row, position in enumerate(table.positions.tolist()):
        found = batch.layers[position]
        assert (table.header[row], table.network[row], table.protocol[row], table.length[row]) == (
            found.payload, found.network, found.protocol, found.parsed_to)
        assert table.is4[row] == (found.ethertype == 0x0800)


@pytest.mark.parametrize("kind", ["tcp", "udp", "icmp"])
@pytest.mark.parametrize("v4", [True, False], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("vlan", [None, 5], ids=["untagged", "vlan"])
def test_only_whole_transport_headers_become_rows(kind: str, v4: bool, vlan: int | None) -> None:
    """Every truncation of a frame: a row from the end of its transport header on, never before."""
    ip = IP(src="192.0.2.1", dst="198.51.100.2") if v4 else IPv6(src="2001:db8::1", dst="2001:db8::2")
    segment = {"tcp": TCP(sport=40000, dport=8443, options=[("MSS", 1460), ("NOP", None), ("WScale", 7),
                                                            ("Timestamp", (5, 0)), ("SAckOK", b"")]),
               "udp": UDP(sport=40000, dport=8443),
               "icmp": ICMP(type=8) if v4 else ICMPv6EchoRequest()}[kind]
    data = bytes(_link(vlan) / ip / segment / Raw(b"payload"))
    header = len(data) - len(b"payload")
    batch = prepare(_frames([data[:n] for n in range(len(data) + 1)]), RunStats(), columns=True)
    assert batch.table is not None
    assert batch.table.positions.tolist() == list(range(header, len(data) + 1))
    _assert_rows_match_layers(batch)


def test_tcp_headers_longer_than_their_datagram_are_not_rows() -> None:
    v4 = IP(src="192.0.2.1", dst="198.51.100.2")
    longer = [_link(None) / v4 / TCP(sport=40000, dport=8443, dataofs=10) / Raw(b"x" * 10),
              _link(None) / IP(src="192.0.2.1", dst="198.51.100.2", len=32) / TCP(sport=40000, dport=8443),
              _link(None) / IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(dataofs=15) / Raw(b"y" * 39)]
    fits = _link(None) / v4 / TCP(sport=40000, dport=8443, dataofs=15) / Raw(b"z" * 40)
    frames = _frames([bytes(p) for p in [*longer, fits]])
    _, common = dissect_common(frames)
    assert common is not None and common.positions.tolist() == [0, 1, 2, 3]  # common, yet not rows
    batch = prepare(frames, RunStats(), columns=True)
    assert batch.table is not None and batch.table.positions.tolist() == [3]
    assert batch.table.header.tolist() == [14 + 20 + 60]


def test_every_row_starts_its_payload_where_its_layers_do(bench_frames: list[Frame]) -> None:
    rng = random.Random(8)
    crafted = [_crafted(rng).captured for _ in range(200)] + _others(rng)
    for frames in (bench_frames[:5000], bench_frames[5000:], _frames(crafted)):
        batch = prepare(frames, RunStats(), columns=True)
        assert batch.table is not None and len(batch.table) > len(frames) // 2
        _assert_rows_match_layers(batch)


GENERALIZE = {  # rule files that extend a profile with other generalize settings
    "keep-everything": ("default", "ttl: keep, tos: keep, ip_id: keep, flow_label: keep, ports: keep, "
                        "tcp_timestamps: keep, keep_tcp_options: [0, 1, 2, 3, 4, 5, 30, 34, 254]"),
    "constant": ("default", "ttl: constant, ttl_constant: 7, tos: zero, ip_id: zero, flow_label: zero, "
                 "ports: bucket, keep_ports: [], tcp_window: bucket, tcp_sequence: offset, "
                 "tcp_timestamps: remove, keep_tcp_options: [1, 2, 3]"),
    "renumber": ("research", "well_known: 100, tcp_sequence: offset, tcp_timestamps: renumber, "
                 "keep_tcp_options: [0, 5, 34]"),
}
RULE_FILES = {"identifiers": "version: 1\nsteps: []\n"} | {  # identifiers: no generalize step
    name: f"version: 1\nextends: {base}\nsteps:\n  - {{use: generalize, {settings}}}\n"
    for name, (base, settings) in GENERALIZE.items()}


def _rules(name: str, directory: Path) -> Rules:
    if name not in RULE_FILES:
        return read_rules(name)
    path = directory / f"{name}.yaml"
    path.write_text(RULE_FILES[name], encoding="utf-8")
    return read_rules(str(path))


def _run(rules: Rules, frames: list[Frame], vectorized: bool) -> tuple[object, ...]:
    """Everything a run gives that could differ: records, counts, cuts, drops, transform stats."""
    sink = _Collect()
    transforms = rules.build(Key(bytes(range(32))))
    stats = run(_Frames(frames, [None] * (1 + max(f.iface for f in frames))), sink,  # type: ignore[arg-type]
                transforms, vectorized=vectorized)
    return (sink.records, stats.frames_out, stats.bytes_out, dict(stats.counts), dict(stats.cut),
            dict(stats.dropped), [t.stats() for t in transforms])


def _spy_on_tables(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record, batch by batch, whether the pipeline held rows in a table."""
    held: list[bool] = []
    original: Callable[..., Batch] = anontrace.pipeline.prepare

    def spy(frames: list[Frame], stats: RunStats, vectorized: bool = True, columns: bool = False) -> Batch:
        batch = original(frames, stats, vectorized, columns)
        held.append(batch.table is not None and len(batch.table) > 0)
        return batch

    monkeypatch.setattr(anontrace.pipeline, "prepare", spy)
    return held


PROFILES = ["default", "strict", "research", *RULE_FILES]


@cache
def _stress() -> list[Frame]:
    """Crafted frames, each TTL, TOS, hop limit and traffic class value, and frames that take
    the frame-by-frame path, shuffled."""
    rng = random.Random(9)
    captured = [_crafted(rng).captured for _ in range(500)] + _others(rng) * 4
    for value in range(256):
        udp = UDP(sport=_port(rng), dport=_port(rng), chksum=rng.choice((0, None))) / Raw(b"u")
        captured += [bytes(_link(None) / IP(src="192.0.2.1", dst="198.51.100.2", ttl=value, tos=value)
                           / TCP(sport=_port(rng), dport=_port(rng))),
                     bytes(_link(7) / IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=value, tc=value,
                                           fl=value * 4097) / udp)]
    rng.shuffle(captured)
    return _frames(captured)


@pytest.mark.parametrize("name", PROFILES)
def test_runs_stressing_generalize_are_the_same_either_way(name: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    frames = _stress()
    monkeypatch.setattr(anontrace.pipeline, "BATCH_FRAMES", 7)
    held = _spy_on_tables(monkeypatch)
    rules = _rules(name, tmp_path)
    with_table = _run(rules, frames, vectorized=True)
    tabled, held[:] = list(held), []
    assert with_table == _run(rules, frames, vectorized=False)
    if name != "identifiers":  # the frames reach generalize's option rewriting
        assert with_table[3]["options replaced with padding"] > 0  # type: ignore[index]
    assert len(tabled) == -(-len(frames) // 7) and not any(held)
    columnar = all(t.columnar for t in rules.build(Key(bytes(32))))
    assert all(tabled) == any(tabled) == columnar
    assert columnar  # every rule set here keeps no payload: all its transforms rewrite columns


@pytest.mark.parametrize("name", ["default", "strict", "research", "identifiers"])
def test_the_corpus_and_the_benchmark_trace_are_the_same_either_way(name: str, tmp_path: Path,
                                                                    bench_frames: list[Frame]) -> None:
    rules = _rules(name, tmp_path)
    sources = [bench_frames, *(read_frames(p) for p in CAPTURES)]
    for frames in (frames for frames in sources if frames):
        assert _run(rules, frames, vectorized=True) == _run(rules, frames, vectorized=False)
