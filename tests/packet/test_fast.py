"""The batch (numpy-column) dissection against the frame-by-frame dissector: the same `Layers`,
field for field, for every frame of the corpus, of the benchmark trace, and for every truncation
and many corruptions of crafted frames; and the same pipeline output either way."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ND_NS, IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.packet import Packet, Raw

from anontrace.io.capture import open_reader
from anontrace.keys import Key
from anontrace.packet.dissect import dissect
from anontrace.packet.fast import common_layers, dissect_batch
from anontrace.packet.frame import Frame
from anontrace.pipeline import run
from anontrace.rules.compile import read_rules
from tests.scrubkit import make_trace

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus"
CAPTURES = sorted(p for p in [*CORPUS.rglob("*"), *(ROOT / "sample_pcaps").glob("*")]
                  if p.is_file() and ".pcap" in p.name)
BATCH = 4096


def read_frames(path: Path) -> list[Frame]:
    """Every frame a capture holds, or as many as come before damage."""
    reader = open_reader(str(path))
    frames: list[Frame] = []
    try:
        frames.extend(reader)
    except Exception:  # damaged corpus files: what was read before is still compared
        pass
    finally:
        reader.stream.close()
    return frames


def batches(frames: list[Frame]) -> Iterator[list[Frame]]:
    for start in range(0, len(frames), BATCH):
        yield frames[start:start + BATCH]


def assert_same(frames: list[Frame]) -> int:
    """Batch dissection equals frame-by-frame dissection; returns how many took the column path."""
    common = 0
    for part in batches(frames):
        fast, _ = common_layers(part)
        for frame, found, whole in zip(part, fast, dissect_batch(part), strict=True):
            expected = dissect(frame.data, frame.linktype)
            assert whole == expected, f"frame {frame.index + 1}"
            if found is not None:
                assert found == expected, f"frame {frame.index + 1}"
                common += 1
    return common


def test_the_corpus_dissects_the_same_both_ways() -> None:
    assert len(CAPTURES) > 100
    common = total = 0
    for path in CAPTURES:
        frames = read_frames(path)
        common += assert_same(frames)
        total += len(frames)
    assert total > 4000
    assert common > total // 10  # the corpus is mostly unusual protocols; still, a share of it


@pytest.fixture(scope="module")
def bench_frames(tmp_path_factory: pytest.TempPathFactory) -> list[Frame]:
    return read_frames(make_trace(tmp_path_factory.mktemp("fast") / "t.pcap", 20_000, seed=5))


def test_the_benchmark_trace_dissects_the_same_both_ways(bench_frames: list[Frame]) -> None:
    common = assert_same(bench_frames)
    assert common > 0.7 * len(bench_frames)  # by construction ~97% is Ethernet/VLAN IP TCP/UDP/ICMP


V4 = IP(src="192.0.2.1", dst="198.51.100.2", ttl=60)
V6 = IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=60)
CRAFTED: list[Packet] = [
    Ether() / V4 / TCP(sport=40000, dport=443, options=[("MSS", 1460)]) / Raw(b"a" * 40),
    Ether() / Dot1Q(vlan=7) / V4 / UDP(sport=40000, dport=4500) / Raw(b"b" * 30),
    Ether(type=0x88A8) / Dot1AD(vlan=100) / Dot1Q(vlan=10) / V4 / TCP(),  # two tags: full path
    Ether() / V4 / ICMP(type=8) / Raw(b"ping"),
    Ether() / V4 / ICMP(type=3, code=3) / IP(src="198.51.100.2", dst="192.0.2.1") / UDP(),
    Ether() / V4 / ICMP(type=5, gw="192.0.2.9") / IP() / TCP(),
    Ether() / IP(src="192.0.2.1", dst="198.51.100.2", options=[IPOption_RR(routers=["10.0.0.1"])]) / TCP(),
    Ether() / IP(src="192.0.2.1", dst="198.51.100.2", flags="MF", frag=0) / UDP(sport=1, dport=2)
    / Raw(b"c" * 20),
    Ether() / IP(src="192.0.2.1", dst="198.51.100.2", frag=10) / Raw(b"d" * 20),
    Ether() / V4 / UDP(sport=33000, dport=53) / DNS(qd=DNSQR(qname="host.example.com")),
    Ether() / V4 / TCP(sport=53, dport=33000) / Raw(b"\x00\x10" + b"e" * 16),
    Ether() / V6 / TCP(sport=40000, dport=22, flags="A") / Raw(b"f" * 10),
    Ether() / Dot1Q(vlan=3) / V6 / UDP(sport=5000, dport=6000) / Raw(b"g" * 12),
    Ether() / V6 / ICMPv6EchoRequest(data=b"hello"),
    Ether() / V6 / ICMPv6EchoReply(data=b"hello"),
    Ether() / V6 / ICMPv6ND_NS(tgt="2001:db8::9"),
    Ether() / V6 / IPv6ExtHdrHopByHop() / UDP(sport=1000, dport=2000),
    Ether() / V4 / TCP(sport=1, dport=2, dataofs=3),  # data offset below 5
    Ether(type=0x0801) / Raw(b"\x00" * 40),  # an ethertype not dissected
]


def frames_of(data: bytes) -> list[Frame]:
    return [Frame(0, 0, data, len(data), 1)]


@pytest.mark.parametrize("packet", CRAFTED, ids=[p.summary()[:60] for p in CRAFTED])
def test_every_truncation_of_a_crafted_frame_dissects_the_same(packet: Packet) -> None:
    data = bytes(packet)
    frames = [Frame(n, 0, data[:n], len(data), 1) for n in range(len(data) + 1)]
    frames += [Frame(len(data) + 1, 0, data + b"\0" * 6, len(data) + 6, 1)]  # Ethernet padding
    assert_same(frames)


@pytest.mark.parametrize("packet", CRAFTED[:2] + CRAFTED[11:13], ids=["v4tcp", "v4udp", "v6tcp", "v6udp"])
def test_corrupted_headers_dissect_the_same(packet: Packet) -> None:
    """Random values in the bytes the columns read (lengths, versions, protocols, ports, data
    offsets): every corruption gives the frame-by-frame dissector's answer."""
    data = bytes(packet)
    rng = random.Random(len(data))
    frames = []
    for index in range(3000):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(min(len(data), 70))] = rng.randrange(256)
        frames.append(Frame(index, 0, bytes(mutated[:rng.randint(10, len(data))]), len(data), 1))
    assert_same(frames)


def test_frames_of_another_link_type_take_the_full_path() -> None:
    data = bytes(V4 / TCP())
    frame = Frame(0, 0, data, len(data), 101)  # raw IP
    assert common_layers([frame])[0] == [None]
    assert dissect_batch([frame]) == [dissect(data, 101)]


class _Frames:
    """A reader over frames in memory."""

    def __init__(self, frames: list[Frame], interfaces: list[object]) -> None:
        self.frames, self.interfaces = frames, interfaces
        self.notices: dict[str, int] = {}
        self.stream = self

    def raw_position(self) -> int:
        return 0

    def __iter__(self) -> Iterator[Frame]:
        return iter(self.frames)


class _Collect:
    def __init__(self) -> None:
        self.records: list[tuple[int, int, bytes, int]] = []

    def write(self, index: int, interface: object, ts_ns: int, data: bytes | bytearray, wirelen: int,
              comment: str | None = None) -> None:
        self.records.append((index, ts_ns, bytes(data), wirelen))

    def finish(self, interfaces: list[object]) -> None:
        pass


@pytest.mark.parametrize("profile", ["default", "strict", "research"])
def test_the_pipeline_writes_the_same_bytes_either_way(profile: str, bench_frames: list[Frame]) -> None:
    """Whole runs, column path on and off: identical records (the trace, byte for byte)."""
    rules = read_rules(profile)
    sources = [bench_frames, *(read_frames(p) for p in CAPTURES[::7])]
    for frames in sources:
        if not frames:
            continue
        outputs = []
        for vectorized in (True, False):
            sink = _Collect()
            reader = _Frames(frames, [None] * (1 + max(f.iface for f in frames)))
            stats = run(reader, sink, rules.build(Key(bytes(range(32)))), vectorized=vectorized)  # type: ignore[arg-type]
            outputs.append((sink.records, stats.frames_out, dict(stats.cut), dict(stats.dropped)))
        assert outputs[0] == outputs[1]
        assert outputs[0][1] == len(outputs[0][0]) > 0
