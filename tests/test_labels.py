"""Labels from rule files and from ground-truth CSV: on the right frames and flows, in output terms,
whatever the batch size; every CSV mistake refused at its line and column."""

from __future__ import annotations

import contextlib
import csv
import io
import ipaddress
import os
import pickle
import signal
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet, Raw
from scapy.utils import EDecimal, rdpcap

import anontrace.pipeline as pipeline
from anontrace.errors import EngineError, UsageError
from anontrace.flows import FiveTuple
from anontrace.io.capture import open_reader
from anontrace.io.pcap import PcapWriter
from anontrace.io.pcapng import PcapngWriter
from anontrace.keys import Key
from anontrace.labels import GroundTruth, Labeling, LabelRecorder, LabelRules, seconds
from anontrace.packet.batch import Batch
from anontrace.packet.dissect import dissect
from anontrace.packet.frame import Frame
from anontrace.rules.compile import parse_rules, read_rules
from anontrace.transforms.base import Context, Transform
from tests.helpers import write_pcap

CLIENT, DNS, DB1, DB2, OUTSIDE = "192.168.1.10", "192.168.1.53", "10.1.0.5", "10.1.0.6", "203.0.113.9"
LAB, REMOTE = "2001:db8:1::7", "2001:db8:2::1"
T0 = 1704164645 * 10**9  # 2024-01-02T03:04:05Z, worked out by hand: 1704067200 (2024-01-01) + 86400 + 11045
EXAMPLE = Path(__file__).resolve().parents[1] / "rules" / "examples" / "labels.yaml"


def ether() -> Ether:
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def batch_of(packets: Sequence[Packet | tuple[Packet, int]], first: int = 0) -> Batch:
    """A batch as the pipeline builds it, each frame at T0 unless a time is given."""
    frames = []
    for index, item in enumerate(packets, start=first):
        packet, ts_ns = item if isinstance(item, tuple) else (item, T0)
        data = bytes(packet)
        frames.append(Frame(index, ts_ns, data, len(data), 1))
    return Batch(frames, [dissect(f.data, 1) for f in frames], [bytearray(f.data) for f in frames],
                 [f.ts_ns for f in frames])


def truth(tmp_path: Path, text: str | bytes, name: str = "truth.csv") -> GroundTruth:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return GroundTruth.read(path)


RULES = """version: 1
labels:
  - when: {network: 10.1.0.0/24, protocol: tcp, port: 5432}
    label: database
  - when: {protocol: udp, port: 53}
    label: dns
  - when: {network: "2001:db8:1::/48", direction: inbound}
    label: lab v6 inbound
  - when: {network: 10.0.0.0/8}
    label: internal
"""

RULE_CASES: list[tuple[Packet, str | None]] = [
    (ether() / IP(src=CLIENT, dst=DB1) / TCP(sport=40000, dport=5432), "database"),
    (ether() / IP(src=DB1, dst=CLIENT) / TCP(sport=5432, dport=40000), "database"),
    (ether() / IP(src=DB2, dst=DNS) / UDP(sport=5353, dport=53), "dns"),  # `internal` matches too, later
    (ether() / IP(src=DB1, dst=CLIENT) / TCP(sport=22, dport=50000), "internal"),
    (ether() / IPv6(src=REMOTE, dst=LAB) / UDP(sport=9999, dport=9999), "lab v6 inbound"),
    (ether() / IPv6(src=LAB, dst=REMOTE) / UDP(sport=9999, dport=9999), None),  # outbound
    (ether() / ARP(psrc=DB1, pdst=CLIENT), None),
    (ether() / IP(src=DB1, dst=OUTSIDE) / ICMP(), "internal"),
    (ether() / IP(src=CLIENT, dst=OUTSIDE) / TCP(sport=5432, dport=5432), None),  # port, not network
]


def test_rule_labels_land_on_the_frames_their_filters_match() -> None:
    labels = parse_rules(RULES, "r.yaml").labels
    batch = batch_of([packet for packet, _ in RULE_CASES])
    assert Labeling(labels, None).label(batch) == [label for _, label in RULE_CASES]


def test_the_default_labels_every_frame_no_rule_matches() -> None:
    labels = parse_rules(RULES + "  - default: other\n", "r.yaml").labels
    batch = batch_of([packet for packet, _ in RULE_CASES])
    assert Labeling(labels, None).label(batch) == [label or "other" for _, label in RULE_CASES]


def test_nothing_to_label_with_gives_no_labels() -> None:
    assert Labeling(None, None).label(batch_of([p for p, _ in RULE_CASES])) == [None] * len(RULE_CASES)


TRUTH = """Label,SRC,Dst,sport,dport,Protocol,start,end
web,192.168.1.10,203.0.113.0/24,,443,tcp,,
dns,,192.168.1.53,,53,udp,,
morning,2001:db8:1::/48,,,,,2024-01-02T03:04:05Z,2024-01-02T04:04:06.5+01:00
icmp any,,,,,1,,
shadowed,192.168.1.10,203.0.113.9,,443,,,
nowhere,10.9.9.9,,,,,,
"""
WINDOW_END = T0 + 1_500_000_000
TRUTH_CASES: list[tuple[Packet, int, str | None]] = [
    (ether() / IP(src=CLIENT, dst=OUTSIDE) / TCP(sport=51000, dport=443), T0, "web"),
    (ether() / IP(src=OUTSIDE, dst=CLIENT) / TCP(sport=443, dport=51000), T0, "web"),  # the reply
    (ether() / IP(src=CLIENT, dst=OUTSIDE) / TCP(sport=51000, dport=80), T0, None),  # other port
    (ether() / IP(src=OUTSIDE, dst=CLIENT) / TCP(sport=51000, dport=443), T0, None),  # 443 on the wrong end
    (ether() / IP(src=CLIENT, dst=DNS) / UDP(sport=5353, dport=53), T0, "dns"),
    (ether() / IP(src=DNS, dst=CLIENT) / UDP(sport=53, dport=5353), T0, "dns"),
    (ether() / IP(src=CLIENT, dst=DNS) / TCP(sport=5353, dport=53), T0, None),  # tcp, not udp
    (ether() / IPv6(src=LAB, dst=REMOTE) / UDP(sport=1, dport=2), T0 - 1, None),  # before the window
    (ether() / IPv6(src=LAB, dst=REMOTE) / UDP(sport=1, dport=2), T0, "morning"),  # its first ns
    (ether() / IPv6(src=REMOTE, dst=LAB) / UDP(sport=2, dport=1), WINDOW_END, "morning"),  # its last
    (ether() / IPv6(src=REMOTE, dst=LAB) / UDP(sport=2, dport=1), WINDOW_END + 1, None),
    (ether() / IP(src=CLIENT, dst=OUTSIDE) / ICMP(), T0, "icmp any"),
    (ether() / ARP(psrc=CLIENT, pdst=OUTSIDE), T0, None),
    (ether() / IPv6(src=REMOTE, dst="2001:db8:3::1") / ICMPv6EchoRequest(), T0, None),  # 58, not 1
]


def truth_batch(first: int = 0, cases: Sequence[tuple[Packet, int, str | None]] = TRUTH_CASES) -> Batch:
    return batch_of([(packet, ts_ns) for packet, ts_ns, _ in cases], first)


def test_csv_labels_land_on_flows_both_ways_within_their_time_window(tmp_path: Path) -> None:
    ground = truth(tmp_path, TRUTH)
    assert Labeling(None, ground).label(truth_batch()) == [label for _, _, label in TRUTH_CASES]
    assert ground.counts == [2, 2, 2, 1, 0, 0]
    assert ground.unmatched() == [6, 7]  # shadowed by line 2, and a host never seen


def test_labels_do_not_depend_on_how_frames_are_batched(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    whole = truth(tmp_path, TRUTH)
    expected = Labeling(None, whole).label(truth_batch())
    monkeypatch.setattr("anontrace.labels.CACHE_FLOWS", 1)  # and however many flows are remembered
    split = truth(tmp_path, TRUTH)
    labeling = Labeling(parse_rules(RULES, "r.yaml").labels, split)
    found: list[str | None] = []
    for start, end in ((0, 1), (1, 5), (5, 9), (9, len(TRUTH_CASES))):
        found += labeling.label(truth_batch(start, TRUTH_CASES[start:end]))
    rules_only = Labeling(parse_rules(RULES, "r.yaml").labels, None).label(truth_batch())
    assert found == [csv_label or rule for csv_label, rule in zip(expected, rules_only, strict=True)]
    assert split.counts == whole.counts


def test_csv_comes_before_rules_and_rules_before_the_default(tmp_path: Path) -> None:
    ground = truth(tmp_path, "label,dst,dport,protocol\nbulk transfer,10.1.0.5,5432,tcp\n")
    rules = parse_rules(RULES + "  - default: other\n", "r.yaml").labels
    batch = batch_of([
        ether() / IP(src=CLIENT, dst=DB1) / TCP(sport=40000, dport=5432),  # CSV and rule 1
        ether() / IP(src=DB2, dst=CLIENT) / TCP(sport=5432, dport=40000),  # rule 1 only
        ether() / IP(src=CLIENT, dst=OUTSIDE) / TCP(sport=1, dport=2),  # nothing but the default
    ])
    assert Labeling(rules, ground).label(batch) == ["bulk transfer", "database", "other"]


def test_frames_without_a_whole_ip_header_are_left_to_the_rules(tmp_path: Path) -> None:
    ground = truth(tmp_path, "label,src\nany,0.0.0.0/0\n")
    short = bytes(ether() / IP(src=CLIENT, dst=DB1) / TCP())[:14 + 16]  # addresses cut off
    frame = Frame(0, T0, short, 60, 1)
    batch = Batch([frame], [dissect(short, 1)], [bytearray(short)], [T0])
    assert Labeling(LabelRules((), "fallback"), ground).label(batch) == ["fallback"]
    assert ground.unmatched() == [2]


def test_dropped_frames_get_no_label_and_match_no_row(tmp_path: Path) -> None:
    """One of the two `web` frames and the only `icmp any` frame are dropped: the icmp row then
    labelled nothing in the trace, and the rules' default does not label dropped frames either."""
    ground = truth(tmp_path, TRUTH)
    batch = truth_batch()
    for position in (0, 11):
        batch.drop(position, "not wanted")
    expected = [None if position in (0, 11) else label or "other"
                for position, (_, _, label) in enumerate(TRUTH_CASES)]
    assert Labeling(LabelRules((), "other"), ground).label(batch) == expected
    assert ground.counts == [1, 2, 2, 0, 0, 0]
    assert ground.unmatched() == [5, 6, 7]


@pytest.mark.parametrize(("text", "expected"), [
    ("1704164645.123456789", T0 + 123456789),  # a float would round this
    ("1704164645", T0),
    ("0.5", 500_000_000),
    ("2024-01-02T03:04:05.123456789Z", T0 + 123456789),
    ("2024-01-02t03:04:05.1z", T0 + 100_000_000),
    ("2024-01-02 04:04:05+01:00", T0),
    ("2024-01-01T21:34:05.000000001-05:30", T0 + 1),
])
def test_times_become_exact_nanoseconds(tmp_path: Path, text: str, expected: int) -> None:
    row = truth(tmp_path, f"label,start\nx,{text}\n").rows[0]
    assert row.start == expected and row.line == 2


def test_header_is_case_insensitive_and_a_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    ground = truth(tmp_path, "\ufeff Label ,SPORT\r\nx , 80\r\n\r\ny,81\r\n")
    assert [(r.line, r.label, r.sport) for r in ground.rows] == [(2, "x", 80), (4, "y", 81)]


@pytest.mark.parametrize(("text", "where", "what"), [
    ("", "1:1", "the file is empty"),
    ("src,dst\n10.0.0.1,10.0.0.2\n", "1:1", "no `label` column"),
    ("label\nx\n", "1:1", "no column to match frames on"),
    ("src,lable\n", "1:2", "did you mean 'label'?"),
    ("src,label,colour\n", "1:3", "unknown column 'colour'"),
    ("src,label,SRC\n", "1:3", "appears twice"),
    ("src,label\n10.0.0.300,x\n", "2:1", "not an IPv4/IPv6 address or CIDR network"),
    ("label,dst\nx,10.0.0.1/8\n", "2:2", "has host bits set"),
    ("label,dst\nx,10.0.0.0/8\n\n,\nx,fe80::/10\ny,2001:db8::zz\n", "6:2", "'2001:db8::zz' is not"),
    ('label,src\nx,"10.0.0.1\n"\ny,10.0.0.999\n', "4:2", "is not an IPv4/IPv6"),  # after a 2-line row
    ("label,sport\nx,70000\n", "2:2", "'70000' is not a port"),
    ("label,dport\nx,-1\n", "2:2", "'-1' is not a port"),
    ("label,dport\nx,80.0\n", "2:2", "'80.0' is not a port"),
    ("label,dport\nx,٨٠\n", "2:2", "is not a port"),  # Arabic-Indic digits are not a port
    ("label,protocol\nx,sctpx\n", "2:2", "unknown protocol 'sctpx'"),
    ("label,protocol\nx,256\n", "2:2", "unknown protocol '256'"),
    ("label,protocol,src,dport\nx,icmp,10.0.0.1,80\n", "2:4", "dport given for protocol icmp"),
    ("label,start\nx,2024-01-02\n", "2:2", "is not a time"),
    ("label,start\nx,2024-01-02T03:04:05\n", "2:2", "is not a time"),  # no offset: which zone?
    ("label,start\nx,2024-13-02T03:04:05Z\n", "2:2", "is not a valid time"),
    ("label,start\nx,2024-01-02T03:04:05+01:75\n", "2:2", "is not a valid time"),
    ("label,start\nx,2024-01-02T03:04:60Z\n", "2:2", "is not a valid time"),
    ("label,end\nx,1.1234567891\n", "2:2", "more than 9 fractional digits"),
    ("label,start,end\nx,2024-01-02T03:04:05Z,1704164644.999999999\n", "2:3", "end is before start"),
    ("label,src\n,10.0.0.1\n", "2:1", "empty label"),
    ("src,label\n10.0.0.1\n", "2:2", "empty label"),
    ('src,label\n10.0.0.1,"a\nb"\n', "2:2", "one line"),
    ("src,label\n10.0.0.1," + "x" * 201 + "\n", "2:2", "at most 200 characters"),
    ("label,src,dst\nx,,\n", "2:1", "nothing to match frames on"),
    ("label,src\nx,10.0.0.1,extra\n", "2:3", "3 fields, but the header names 2 columns"),
    ('label,src\n"x"y,10.0.0.1\n', "2:1", "not valid CSV"),
    (b"label,src\nx,10.0.0.1\ncaf\xe9,10.0.0.2\n", "3:1", "not UTF-8"),
    (b'label,src\n"a,b",10.0.0.\xff\n', "2:2", "not UTF-8"),
])
def test_every_csv_mistake_is_located(tmp_path: Path, text: str | bytes, where: str, what: str) -> None:
    with pytest.raises(UsageError) as caught:
        truth(tmp_path, text)
    assert caught.value.where == f"{tmp_path / 'truth.csv'}:{where}"
    assert what in f"{caught.value.what} {caught.value.hint}"


def test_an_unreadable_labels_file_names_the_file(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.csv", tmp_path):
        with pytest.raises(UsageError) as caught:
            GroundTruth.read(path)
        assert caught.value.where == str(path) and "cannot read the labels file" in caught.value.what


@contextlib.contextmanager
def no_blocking(seconds: int = 5) -> Iterator[None]:
    """Fail, rather than hang, if the body blocks (opening a pipe for reading waits for a writer)."""

    def stop(signum: int, frame: object) -> None:
        raise AssertionError("blocked")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_devices_and_pipes_are_refused_unread(tmp_path: Path) -> None:
    fifo = tmp_path / "truth.csv"
    os.mkfifo(fifo)
    for path in (Path("/dev/zero"), fifo):
        with no_blocking(), pytest.raises(UsageError) as caught:
            GroundTruth.read(path)
        assert caught.value.where == str(path) and "not a regular file" in caught.value.what


def test_a_labels_file_over_64_mib_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    with path.open("wb") as stream:
        stream.truncate((64 << 20) + 1)  # sparse: nothing is written, and nothing must be read
    with pytest.raises(UsageError) as caught:
        GroundTruth.read(path)
    assert caught.value.where == str(path) and "larger than 64 MiB" in caught.value.what


class DropFrames(Transform):
    """Test transform: leaves out the frames with the given indexes."""

    name = "drop_frames"
    indexes = frozenset({3, 6})

    def apply(self, batch: Batch) -> Batch:
        for position, frame in enumerate(batch.frames):
            if frame.index in self.indexes:
                batch.drop(position, "not wanted")
        return batch


# (packet, seconds after T0 as text, expected label: CSV > rules > default)
FLOW_CASES: list[tuple[Packet, str, str]] = [
    (ether() / IP(src=CLIENT, dst=DB1) / TCP(sport=40000, dport=5432, flags="S"), "0.000000001", "bulk"),
    (ether() / IP(src=DB1, dst=CLIENT) / TCP(sport=5432, dport=40000, flags="SA"), "0.1", "bulk"),
    (ether() / IP(src=CLIENT, dst=DB1) / TCP(sport=40000, dport=5432) / Raw(b"q" * 100), "0.2", "bulk"),
    (ether() / IP(src=CLIENT, dst=DNS) / UDP(sport=5353, dport=53), "0.3", "dns"),  # dropped
    (ether() / IP(src=DNS, dst=CLIENT) / UDP(sport=53, dport=5353) / Raw(b"a" * 40), "0.4", "dns"),
    (ether() / IP(src=CLIENT, dst=OUTSIDE) / ICMP(), "0.5", "ping"),
    (ether() / ARP(psrc=CLIENT, pdst=DNS), "0.6", "other"),  # dropped
    (ether() / IPv6(src=REMOTE, dst=LAB) / UDP(sport=1000, dport=2000), "0.7", "lab v6 inbound"),
    (ether() / IP(src=DB2, dst=CLIENT) / TCP(sport=22, dport=50000), "0.8", "internal"),
    (ether() / IPv6(src=REMOTE, dst=LAB) / UDP(sport=1000, dport=2000) / Raw(b"z" * 7), "0.9",
     "lab v6 inbound"),
    (ether() / IP(src=CLIENT, dst=DB1) / TCP(sport=40000, dport=5432, flags="F"), "1.5", "bulk"),
]
FLOW_TRUTH = ("label,src,dst,protocol,dport\nbulk,192.168.1.10,10.1.0.5,tcp,5432\nping,,,icmp,\n"
              "never,10.9.9.9,,,\n")
FLOW_RULES = RULES + "  - default: other\nsteps:\n  - use: timing\n    shift: keyed\n"


@dataclass
class Scrubbed:
    recorder: LabelRecorder
    truth: GroundTruth
    labels_csv: str
    capture: bytes

    def flows_csv(self) -> str:
        flows = io.StringIO()
        self.recorder.write_flows(flows)
        return flows.getvalue()


def scrub(tmp_path: Path, capture_format: str = "pcap") -> Scrubbed:
    """Run the real pipeline over FLOW_CASES with label rules, ground truth and two frames dropped."""
    packets = []
    for packet, offset, _ in FLOW_CASES:
        packet.time = EDecimal(Decimal(T0) / 10**9 + Decimal(offset))
        packets.append(packet)
    source = write_pcap(tmp_path / "in.pcap", packets, nano=True)
    rules = parse_rules(FLOW_RULES, "r.yaml")
    ground = truth(tmp_path, FLOW_TRUTH)
    out = io.BytesIO()
    labels = io.StringIO()
    recorder = LabelRecorder(labels)
    reader = open_reader(str(source))
    writer = PcapngWriter(out, "mem") if capture_format == "pcapng" else PcapWriter(out, "mem")
    transforms = [*rules.build(Key(bytes(32))), DropFrames(None, Context(Key(bytes(32))))]
    pipeline.run(reader, writer, transforms, labeler=Labeling(rules.labels, ground), observers=[recorder])
    reader.stream.close()
    return Scrubbed(recorder, ground, labels.getvalue(), out.getvalue())


def written() -> list[tuple[Packet, str]]:
    return [(packet, label) for index, (packet, _, label) in enumerate(FLOW_CASES)
            if index not in DropFrames.indexes]


def output_packets(tmp_path: Path, data: bytes) -> list[Packet]:
    path = tmp_path / "out.pcap"
    path.write_bytes(data)
    return list(rdpcap(str(path)))


def test_labels_csv_numbers_written_frames_with_their_output_times(tmp_path: Path) -> None:
    run = scrub(tmp_path)
    outputs = output_packets(tmp_path, run.capture)
    assert len(outputs) == len(written())
    shifted = Decimal(T0) / 10**9 + Decimal("0.000000001")
    assert outputs[0].time != shifted  # the timing step moved the times: the CSV must follow them
    expected = ["frame,timestamp,label"] + [
        f"{number},{Decimal(out.time):.9f},{label}"
        for number, (out, (_, label)) in enumerate(zip(outputs, written(), strict=True), start=1)]
    assert run.labels_csv.splitlines() == expected
    assert run.recorder.counts == Counter(label for _, label in written())
    assert run.recorder.frames == len(written())
    assert run.truth.unmatched() == [4]


def test_labelled_pcapng_frames_carry_their_label_as_a_comment(tmp_path: Path) -> None:
    path = tmp_path / "out.pcapng"
    path.write_bytes(scrub(tmp_path, "pcapng").capture)
    comments = [packet.comments for packet in rdpcap(str(path))]
    assert comments == [[label.encode()] for _, label in written()]


PROTOCOL_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6"}


def wire(packets: list[Packet]) -> int:
    """Total original length, as recorded in the output capture's records."""
    total = 0
    for packet in packets:
        assert packet.wirelen is not None
        total += packet.wirelen
    return total


def expected_flows(outputs: list[Packet]) -> list[dict[str, str]]:
    """Flows counted from the output capture as scapy reads it, oriented by their first frame."""
    Ends = tuple[tuple[str, int], tuple[str, int]]
    members: dict[tuple[int, tuple[str, int], tuple[str, int]], list[tuple[Packet, str, Ends]]] = {}
    for out, (_, label) in zip(outputs, written(), strict=True):
        ip = out.getlayer(IP) or out.getlayer(IPv6)
        if ip is None:
            continue
        transport = out.getlayer(TCP) or out.getlayer(UDP)
        protocol = ip.proto if IP in out else ip.nh
        ends = ((ip.src, transport.sport if transport else 0), (ip.dst, transport.dport if transport else 0))
        low, high = sorted(ends)
        members.setdefault((protocol, low, high), []).append((out, label, ends))
    rows = []
    for (protocol, _, _), frames in members.items():
        first = frames[0][2]
        forward = [out for out, _, ends in frames if ends == first]
        back = [out for out, _, ends in frames if ends != first]
        times = [Decimal(out.time) for out, _, _ in frames]
        rows.append({"protocol": PROTOCOL_NAMES[protocol], "src": first[0][0], "sport": str(first[0][1]),
                     "dst": first[1][0], "dport": str(first[1][1]),
                     "first": f"{min(times):.9f}", "last": f"{max(times):.9f}",
                     "packets_fwd": str(len(forward)), "bytes_fwd": str(wire(forward)),
                     "packets_back": str(len(back)), "bytes_back": str(wire(back)),
                     "label": frames[0][1]})
    return rows


def test_flows_csv_matches_the_flows_counted_from_the_output(tmp_path: Path) -> None:
    run = scrub(tmp_path)
    text = run.flows_csv()
    lines = text.splitlines()
    assert lines[0] == ("protocol,src,sport,dst,dport,first,last,packets_fwd,bytes_fwd,packets_back,"
                        "bytes_back,label")
    rows = list(csv.DictReader(io.StringIO(text)))
    expected = expected_flows(output_packets(tmp_path, run.capture))
    assert [{k: row[k] for k in expected[0]} for row in rows] == expected
    assert len(rows) == 5  # database, DNS reply, ping, lab v6, ssh: ARP has no flow
    database = rows[0]
    assert database["label"] == "bulk" and database["packets_fwd"] == "3" and database["packets_back"] == "1"
    sizes = [len(bytes(FLOW_CASES[i][0])) for i in (0, 2, 10)]
    assert int(database["bytes_fwd"]) == sum(sizes)  # original wire lengths, payload cut or not
    assert database["src"] != CLIENT and database["dst"] != DB1  # anonymized 5-tuples
    assert not {CLIENT, DB1, DB2, DNS, OUTSIDE, LAB, REMOTE} & set(text.replace(",", " ").split())


def test_pipeline_output_does_not_depend_on_batch_size(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    results = []
    for size in (4096, 1, 3):
        monkeypatch.setattr(pipeline, "BATCH_FRAMES", size)
        run = scrub(tmp_path)
        results.append((run.labels_csv, run.flows_csv(), run.recorder.counts, run.truth.counts, run.capture))
    assert results[0] == results[1] == results[2]


def test_seconds_are_exact() -> None:
    assert seconds(T0 + 1) == "1704164645.000000001"
    assert seconds(0) == "0.000000000"
    assert seconds(-1_500_000_000) == "-1.500000000"
    assert seconds(2**64 + 7) == "18446744073.709551623"


def test_the_example_rule_file_labels_by_role() -> None:
    labels = read_rules(str(EXAMPLE)).labels
    batch = batch_of([
        ether() / IP(src=CLIENT, dst="10.20.0.9") / TCP(sport=40000, dport=5432),
        ether() / IPv6(src="2001:db8:20::9", dst=REMOTE) / TCP(sport=5432, dport=40000),
        ether() / IP(src=CLIENT, dst=DNS) / UDP(sport=5353, dport=53),
        ether() / IP(src=CLIENT, dst="192.0.2.80") / TCP(sport=40000, dport=80),
        ether() / IP(src="192.0.2.80", dst=CLIENT) / TCP(sport=80, dport=40000),
    ])
    assert Labeling(labels, None).label(batch) == ["database", "database", "dns", "to the DMZ", "other"]


def test_recorders_of_later_pieces_number_their_rows_on(tmp_path: Path) -> None:
    web = ether() / IP(src=CLIENT, dst=DB1) / TCP(sport=40000, dport=5432)
    back = ether() / IP(src=DB1, dst=CLIENT) / TCP(sport=5432, dport=40000)
    first = batch_of([(web, T0), (back, T0 + 1)])
    second = batch_of([(back, T0 + 2), (web, T0 + 3), (back, T0 + 4)], first=2)
    second.drop(1, "test")
    third = batch_of([(web, T0 + 5)], first=5)
    labels = io.StringIO()
    main = LabelRecorder(labels)
    main.observe(first, [None, "db"])
    workers = [LabelRecorder(None), LabelRecorder(None)]
    workers[0].observe(second, ["reply", "never written", "db"])
    workers[1].observe(third, ["db"])
    for worker in workers:
        main.merge(pickle.loads(pickle.dumps(worker)))
    assert labels.getvalue().splitlines() == [
        "frame,timestamp,label", f"2,{seconds(T0 + 1)},db", f"3,{seconds(T0 + 2)},reply",
        f"4,{seconds(T0 + 4)},db", f"5,{seconds(T0 + 5)},db"]
    assert main.frames == 5 and list(main.counts.items()) == [("db", 3), ("reply", 1)]
    flows = io.StringIO()
    main.write_flows(flows)
    (row,) = list(csv.DictReader(io.StringIO(flows.getvalue())))
    assert (row["src"], row["packets_fwd"], row["packets_back"], row["label"]) == (CLIENT, "2", "3", "db")
    with pytest.raises(EngineError, match="cannot follow another"):
        main.merge(LabelRecorder(io.StringIO()))


def test_in_memory_recorders_merge_among_themselves() -> None:
    udp = ether() / IP(src=CLIENT, dst=DNS) / UDP(sport=5353, dport=53)
    earlier, later = LabelRecorder(None), LabelRecorder(None)
    earlier.observe(batch_of([udp, udp]), ["a", None])
    later.observe(batch_of([udp], first=2), ["b"])
    earlier.merge(later)
    assert earlier.rows == [(1, seconds(T0), "a"), (3, seconds(T0), "b")]


def test_ground_truth_counts_what_every_copy_matched(tmp_path: Path) -> None:
    ground = truth(tmp_path, "label,protocol,dport\nweb,tcp,443\ndns,udp,53\nnone,udp,1\n")
    web = FiveTuple(6, ipaddress.ip_address(CLIENT).packed, 40000, ipaddress.ip_address(DB1).packed, 443)
    dns = FiveTuple(17, ipaddress.ip_address(CLIENT).packed, 5353, ipaddress.ip_address(DNS).packed, 53)
    assert ground.match(web, T0) == "web"
    copy = pickle.loads(pickle.dumps(ground)).fresh()
    assert copy.counts == [0, 0, 0] and copy.rows == ground.rows
    assert copy.match(dns, T0) == "dns" and copy.match(dns.reversed(), T0) == "dns"
    assert ground.unmatched() == [3, 4]
    ground.merge(copy)
    assert ground.counts == [1, 2, 0]
    assert ground.unmatched() == [4]
