"""The generalize transform: each choice of each setting, judged by tshark on the pipeline's output
(values, relative TCP numbers, options, checksums), plus consistency, truncation and batching."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP, IPOption_RR, IPOption_Security, fragment
from scapy.layers.inet6 import (
    HBHOptUnknown,
    ICMPv6DestUnreach,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    RouterAlert,
    fragment6,
)
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet, Raw

import anontrace.pipeline as pipeline
from anontrace.io.capture import open_reader
from anontrace.io.pcap import PcapWriter
from anontrace.keys import Key
from anontrace.rules.compile import parse_rules
from anontrace.transforms.base import Context
from anontrace.transforms.generalize import Generalize, GeneralizeConfig
from tests.helpers import make_batch, write_pcap

KEY, OTHER_KEY = Key(bytes(range(32))), Key(bytes(range(1, 33)))
A4, B4, R4 = "10.1.2.3", "192.168.9.8", "10.1.2.254"
A6, B6 = "2001:db8:a::3", "2001:db8:b::8"
CHECKSUMS = ("ip.checksum.status", "tcp.checksum.status", "udp.checksum.status",
             "icmp.checksum.status", "icmpv6.checksum.status")
TSHARK_OPTIONS = ("-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
                  "-o", "udp.check_checksum:TRUE", "-o", "tcp.relative_sequence_numbers:TRUE")
RULES = "version: 1\nsteps:\n  - use: payload\n    keep: 65535\n"  # ip, mac, names run always
Row = dict[str, list[str]]


def link() -> Ether:
    """An Ethernet header with both addresses given (scapy would otherwise try to resolve them)."""
    return Ether(src="00:1b:21:3a:1b:2c", dst="3c:22:fb:10:20:30")


def scrub(folder: Path, packets: list[Packet], key: Key = KEY, **settings: object) -> Path:
    """ip, mac and names, all payload kept (so tshark can verify every checksum), then generalize
    with `settings`, through the pipeline into a pcap."""
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "in.pcap"
    if not source.exists():
        write_pcap(source, packets)
    rules = [t for t in parse_rules(RULES, "rules.yaml").build(key) if t.name != Generalize.name]
    step = Generalize(GeneralizeConfig(**settings), Context(key))  # type: ignore[arg-type]
    target = folder / f"out-{len(list(folder.iterdir()))}.pcap"
    with target.open("wb") as handle:
        pipeline.run(open_reader(str(source)), PcapWriter(handle, target.name), [*rules, step])
    return target


def tshark(path: Path, *fields: str) -> list[Row]:
    args = ["tshark", "-r", str(path), *TSHARK_OPTIONS, "-T", "fields", "-E", "occurrence=a",
            "-E", "aggregator=|", "-E", "separator=\t"]
    for name in fields:
        args += ["-e", name]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout
    return [{name: [v for v in value.split("|") if v] for name, value in
             zip(fields, line.split("\t"), strict=True)} for line in out.splitlines()]


def views(folder: Path, packets: list[Packet], *fields: str,
          **settings: object) -> tuple[list[Row], list[Row]]:
    """tshark's view of the input and of the output; every checksum must be as good as before."""
    target = scrub(folder, packets, **settings)
    before = tshark(folder / "in.pcap", *fields, *CHECKSUMS)
    after = tshark(target, *fields, *CHECKSUMS)
    assert len(before) == len(after) == len(packets)
    for old, new in zip(before, after, strict=True):
        for name in CHECKSUMS:
            assert new[name] == old[name] and "0" not in new[name], (name, old, new)
    return before, after


def column(rows: list[Row], field: str, index: int = 0) -> list[str]:
    return [row[field][index] for row in rows]


# --- TTL, IP id, traffic class, flow label -------------------------------------------------------

def ttl_packets() -> list[Packet]:
    ipv4 = [link() / IP(src=A4, dst=B4, ttl=t) / UDP(sport=9, dport=9) for t in (1, 33, 57, 100, 200, 255)]
    return ipv4 + [link() / IPv6(src=A6, dst=B6, hlim=hlim) / UDP(sport=9, dport=9) for hlim in (60, 64, 65)]


@pytest.mark.parametrize(("mode", "ipv4", "ipv6"), [
    ("bucket", ["32", "64", "64", "128", "255", "255"], ["64", "64", "128"]),
    ("constant", ["99"] * 6, ["99"] * 3),
    ("keep", ["1", "33", "57", "100", "200", "255"], ["60", "64", "65"]),
])
def test_ttl_and_hop_limit(tmp_path: Path, mode: str, ipv4: list[str], ipv6: list[str]) -> None:
    _, after = views(tmp_path, ttl_packets(), "ip.ttl", "ipv6.hlim", ttl=mode, ttl_constant=99)
    assert column(after[:6], "ip.ttl") == ipv4
    assert column(after[6:], "ipv6.hlim") == ipv6


def id_packets() -> list[Packet]:
    datagram = IP(src=A4, dst=B4, id=4242) / UDP(sport=9, dport=9) / Raw(b"q" * 3000)
    datagram6 = IPv6(src=A6, dst=B6) / IPv6ExtHdrFragment(id=0x12345678) / UDP(sport=9, dport=9) \
        / Raw(b"q" * 3000)
    return [link() / IP(src=A4, dst=B4, id=value) / UDP(sport=9, dport=9) for value in (1, 2, 3, 0, 65535)] \
        + [link() / f for f in fragment(datagram, fragsize=1200)] \
        + [link() / f for f in fragment6(datagram6, 1280)]


def test_ip_ids_permuted_stay_distinct_and_fragments_keep_one_id(tmp_path: Path) -> None:
    before, after = views(tmp_path, id_packets(), "ip.id", "ipv6.fraghdr.ident", "ip.frag_offset")
    ipv4 = [r for r in after if r["ip.id"]]
    ids, originals = column(ipv4, "ip.id"), column([r for r in before if r["ip.id"]], "ip.id")
    assert len(ids) == 8 and len(set(ids)) == 6 == len(set(originals))  # 5 datagrams + 3 fragments of one
    assert ids != originals
    assert len(set(ids[5:])) == 1 and ids[5] not in ids[:5]
    assert [r["ip.frag_offset"] for r in ipv4] == [r["ip.frag_offset"] for r in before if r["ip.id"]]
    fragments6 = [r["ipv6.fraghdr.ident"][0] for r in after if r["ipv6.fraghdr.ident"]]
    assert len(fragments6) >= 3 and len(set(fragments6)) == 1 and fragments6[0] != "0x12345678"


def test_ip_id_zero_and_keep(tmp_path: Path) -> None:
    before, zero = views(tmp_path / "zero", id_packets(), "ip.id", "ipv6.fraghdr.ident", ip_id="zero")
    assert {v for r in zero for v in r["ip.id"] + r["ipv6.fraghdr.ident"]} == {"0x0000", "0x00000000"}
    _, kept = views(tmp_path / "keep", id_packets(), "ip.id", "ipv6.fraghdr.ident", ip_id="keep")
    assert kept == before


def tos_packets() -> list[Packet]:
    return [link() / IP(src=A4, dst=B4, tos=0xB9) / UDP(sport=9, dport=9),
            link() / IPv6(src=A6, dst=B6, tc=0xBA, fl=0x12345) / UDP(sport=9, dport=9)]


@pytest.mark.parametrize(("mode", "dscp", "ecn"), [("ecn", "0", ["1", "2"]), ("zero", "0", ["0", "0"]),
                                                   ("keep", "46", ["1", "2"])])
def test_tos_and_traffic_class(tmp_path: Path, mode: str, dscp: str, ecn: list[str]) -> None:
    fields = ("ip.dsfield.dscp", "ip.dsfield.ecn", "ipv6.tclass.dscp", "ipv6.tclass.ecn", "ipv6.flow")
    before, after = views(tmp_path, tos_packets(), *fields, tos=mode, flow_label="keep")
    assert after[0]["ip.dsfield.dscp"] == [dscp] and after[1]["ipv6.tclass.dscp"] == [dscp]
    assert [after[0]["ip.dsfield.ecn"][0], after[1]["ipv6.tclass.ecn"][0]] == ecn
    assert after[1]["ipv6.flow"] == before[1]["ipv6.flow"] == ["0x012345"]  # the shared byte's other half


def flow_packets() -> list[Packet]:
    return [link() / IPv6(src=src, dst=B6, fl=label, tc=tc) / UDP(sport=9, dport=9)
            for src, label, tc in ((A6, 0x12345, 0), (A6, 0x12345, 0x03), ("2001:db8:c::1", 0x12345, 0),
                                   (A6, 0, 0), (A6, 0x54321, 0))]


def test_flow_label_keyed_by_label_and_source(tmp_path: Path) -> None:
    _, after = views(tmp_path, flow_packets(), "ipv6.flow")
    labels = column(after, "ipv6.flow")
    assert labels[0] == labels[1] and labels[0] != "0x012345"  # an ECN mark does not split a flow
    assert len({labels[0], labels[2], labels[4]}) == 3 and labels[3] == "0x000000"


def test_flow_label_zero_and_keep(tmp_path: Path) -> None:
    _, zero = views(tmp_path / "zero", flow_packets(), "ipv6.flow", flow_label="zero")
    assert set(column(zero, "ipv6.flow")) == {"0x000000"}
    before, kept = views(tmp_path / "keep", flow_packets(), "ipv6.flow", flow_label="keep")
    assert kept == before


# --- Ports -----------------------------------------------------------------------------------

def port_packets() -> list[Packet]:
    quoted4 = IP(src=A4, dst=B4) / UDP(sport=50000, dport=9999)
    quoted6 = IPv6(src=A6, dst=B6) / TCP(sport=40001, dport=8080, seq=77)
    return [
        link() / IP(src=A4, dst=B4) / TCP(sport=40000, dport=443),
        link() / IP(src=B4, dst=A4) / TCP(sport=443, dport=40000),
        link() / quoted4,
        link() / IP(src=R4, dst=A4) / ICMP(type=3, code=3) / quoted4,
        link() / IP(src=A4, dst=B4) / UDP(sport=5353, dport=3306),
        link() / IPv6(src=A6, dst=B6) / TCP(sport=40001, dport=8080, seq=77),
        link() / IPv6(src=B6, dst=A6) / ICMPv6DestUnreach(code=4) / quoted6,
        link() / IP(src=R4, dst=B4) / UDP(sport=50002, dport=4789) / VXLAN(vni=7)
        / link() / IP(src=A4, dst=B4) / TCP(sport=40000, dport=443),
    ]


def test_ports_map_within_their_range_the_same_everywhere(tmp_path: Path) -> None:
    fields = ("tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport")
    _, after = views(tmp_path, port_packets(), *fields)
    client = int(after[0]["tcp.srcport"][0])
    assert 1024 <= client <= 49151 and client not in (40000, *GeneralizeConfig().keep_ports)
    assert after[0]["tcp.dstport"] == after[1]["tcp.srcport"] == ["443"]
    assert after[1]["tcp.dstport"] == [str(client)]
    dynamic = int(after[2]["udp.srcport"][0])
    assert 49152 <= dynamic <= 65535 and dynamic != 50000
    assert after[3]["udp.srcport"] == after[2]["udp.srcport"]  # the ICMP quote maps like the flow
    assert after[3]["udp.dstport"] == after[2]["udp.dstport"] != ["9999"]
    assert after[4]["udp.srcport"] == ["5353"] and after[4]["udp.dstport"] == ["3306"]  # kept services
    assert after[6]["tcp.srcport"] == after[5]["tcp.srcport"] != ["40001"]
    assert after[6]["tcp.dstport"] == after[5]["tcp.dstport"] == ["8080"]
    assert after[7]["udp.dstport"] == ["4789"] and after[7]["tcp.srcport"] == [str(client)]  # tunnelled


def test_ports_bucket_and_keep(tmp_path: Path) -> None:
    fields = ("tcp.srcport", "udp.srcport", "udp.dstport")
    before, bucket = views(tmp_path / "bucket", port_packets(), *fields, ports="bucket")
    assert bucket[0]["tcp.srcport"] == ["1024"] and bucket[2]["udp.srcport"] == ["49152"]
    assert bucket[3]["udp.srcport"] == ["49152"] and bucket[2]["udp.dstport"] == ["1024"]
    assert bucket[4]["udp.srcport"] == ["5353"]
    _, kept = views(tmp_path / "keep", port_packets(), *fields, ports="keep")
    assert kept == before
    _, wide = views(tmp_path / "wide", port_packets(), *fields, ports="bucket", well_known=60000,
                    keep_ports=())
    assert wide == before  # every port here is below `well_known`


def test_port_map_is_one_to_one_and_never_lands_on_a_kept_port() -> None:
    template = bytearray(bytes(link() / IP(src=A4, dst=B4) / UDP(sport=1, dport=9)))
    frames = []
    for port in range(1024, 65536):
        template[34:36] = port.to_bytes(2, "big")
        frames.append(bytes(template))
    config = GeneralizeConfig(keep_ports=(1433, 3306, 50001, 65535))
    out = Generalize(config, Context(KEY)).apply(make_batch(frames)).data
    mapped = {port: int.from_bytes(o[34:36], "big") for port, o in zip(range(1024, 65536), out, strict=True)}
    assert len(set(mapped.values())) == len(mapped)
    for port in config.keep_ports:
        assert mapped[port] == port
    for port, new in mapped.items():
        if port not in config.keep_ports:
            assert new not in config.keep_ports and (port < 49152) == (new < 49152), port
    assert sum(port == new for port, new in mapped.items()) < 10


@pytest.mark.parametrize("keep_ports", [(), (1433, 3306, 50001, 65535)])
def test_the_whole_16_bit_tables_equal_the_cycle_walk_value_by_value(keep_ports: tuple[int, ...]) -> None:
    """`Permuted.full` walks cycles over numpy arrays; `Permuted.mapping` walks them value by
    value in Python with the scalar class test. Both must give every value the same mapping."""
    transform = Generalize(GeneralizeConfig(keep_ports=keep_ports, well_known=100), Context(KEY))
    every = set(range(1 << 16))
    for table, wanted in ((transform.ports, {p for p in every if p >= 100 and p not in keep_ports}),
                          (transform.ip_ids, every)):
        walked = table.mapping(wanted)
        full = table.full()
        assert all(int(full[value]) == walked[value] for value in wanted)
    assert sorted(transform.ip_ids.full().tolist()) == sorted(every)


# --- TCP ----------------------------------------------------------------------------------

def conversation(ip_a: Packet, ip_b: Packet) -> list[Packet]:
    """A TCP conversation with timestamps, data both ways, a SACK and a close."""
    a, b = link() / ip_a, link() / ip_b
    return [
        a / TCP(sport=40000, dport=443, flags="S", seq=1_000_000, window=29200,
                options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (100, 0)), ("WScale", 7)]),
        b / TCP(sport=443, dport=40000, flags="SA", seq=4_294_967_000, ack=1_000_001, window=65535,
                options=[("MSS", 1400), ("SAckOK", b""), ("Timestamp", (5000, 100)), ("WScale", 9)]),
        a / TCP(sport=40000, dport=443, flags="A", seq=1_000_001, ack=4_294_967_001, window=229,
                options=[("NOP", None), ("NOP", None), ("Timestamp", (110, 5000))]),
        a / TCP(sport=40000, dport=443, flags="PA", seq=1_000_001, ack=4_294_967_001, window=229,
                options=[("NOP", None), ("NOP", None), ("Timestamp", (111, 5000))]) / Raw(b"x" * 100),
        b / TCP(sport=443, dport=40000, flags="A", seq=4_294_967_001, ack=1_000_101, window=0,
                options=[("NOP", None), ("NOP", None), ("SAck", (1_000_201, 1_000_301))]),
        b / TCP(sport=443, dport=40000, flags="PA", seq=4_294_967_001, ack=1_000_101, window=1,
                options=[("NOP", None), ("NOP", None), ("Timestamp", (5007, 111))]) / Raw(b"y" * 400),
        a / TCP(sport=40000, dport=443, flags="FA", seq=1_000_101, ack=105, window=230),
    ]


FAMILIES = {"ipv4": (IP(src=A4, dst=B4), IP(src=B4, dst=A4)),
            "ipv6": (IPv6(src=A6, dst=B6), IPv6(src=B6, dst=A6))}
SEQUENCE = ("tcp.seq", "tcp.ack", "tcp.seq_raw", "tcp.ack_raw", "tcp.stream", "tcp.options.sack_le",
            "tcp.options.sack_re", "tcp.analysis.flags")


@pytest.mark.parametrize("family", FAMILIES)
def test_sequence_offset_keeps_relative_numbers_exact(tmp_path: Path, family: str) -> None:
    before, after = views(tmp_path, conversation(*FAMILIES[family]), *SEQUENCE, tcp_sequence="offset")
    for field in ("tcp.seq", "tcp.ack", "tcp.options.sack_le", "tcp.options.sack_re", "tcp.analysis.flags"):
        assert [r[field] for r in after] == [r[field] for r in before], field
    assert set(column(after, "tcp.stream")) == {"0"}
    assert before[4]["tcp.options.sack_le"] == ["201"]
    for field, rows in (("tcp.seq_raw", slice(None)), ("tcp.ack_raw", slice(1, None))):  # SYN: no ACK
        assert all(new != old for new, old in zip(column(after[rows], field), column(before[rows], field),
                                                  strict=True))
    assert before[0]["tcp.ack_raw"] == after[0]["tcp.ack_raw"] == ["0"]
    seq_a = int(after[0]["tcp.seq_raw"][0])
    assert int(after[1]["tcp.ack_raw"][0]) == (seq_a + 1) % 2**32  # the reverse direction's offset
    _, kept = views(tmp_path / "keep", conversation(*FAMILIES[family]), *SEQUENCE)
    assert kept == before


def test_sequence_offset_reaches_the_icmp_quote(tmp_path: Path) -> None:
    flow = IP(src=A4, dst=B4) / TCP(sport=40000, dport=443, flags="PA", seq=123456, ack=99)
    packets = [link() / flow, link() / IP(src=R4, dst=A4) / ICMP(type=11) / flow]
    before, after = views(tmp_path, packets, "tcp.seq_raw", "tcp.seq", "tcp.srcport", tcp_sequence="offset")
    assert before[1]["tcp.seq"] == before[0]["tcp.seq_raw"] == ["123456"]  # tshark: quoted seq is absolute
    assert after[1]["tcp.seq"] == after[0]["tcp.seq_raw"] != before[0]["tcp.seq_raw"]
    assert after[1]["tcp.srcport"] == after[0]["tcp.srcport"]


@pytest.mark.parametrize("family", FAMILIES)
def test_window_bucket(tmp_path: Path, family: str) -> None:
    field = "tcp.window_size_value"
    before, after = views(tmp_path, conversation(*FAMILIES[family]), field, tcp_window="bucket")
    assert column(before, field) == ["29200", "65535", "229", "229", "0", "1", "230"]
    assert column(after, field) == ["16384", "32768", "128", "128", "0", "1", "128"]
    _, kept = views(tmp_path / "keep", conversation(*FAMILIES[family]), field)
    assert kept == before


TIMESTAMP = ("tcp.options.timestamp.tsval", "tcp.options.timestamp.tsecr")


@pytest.mark.parametrize("family", FAMILIES)
def test_timestamps_renumbered_per_host_and_echoes_match(tmp_path: Path, family: str) -> None:
    before, after = views(tmp_path, conversation(*FAMILIES[family]), *TIMESTAMP)
    stamped = [i for i, r in enumerate(before) if r[TIMESTAMP[0]]]
    assert stamped == [0, 1, 2, 3, 5]
    value = {i: int(after[i][TIMESTAMP[0]][0]) for i in stamped}
    echo = {i: int(after[i][TIMESTAMP[1]][0]) for i in stamped}
    assert echo[0] == 0  # "no echo" stays zero
    assert echo[1] == value[0] and echo[2] == value[1] == echo[3] and echo[5] == value[3]
    assert value[2] - value[0] == 10 and value[5] - value[1] == 7  # a host's clock keeps its rate
    assert value[0] != 100 and value[1] != 5000
    _, kept = views(tmp_path / "keep", conversation(*FAMILIES[family]), *TIMESTAMP, tcp_timestamps="keep")
    assert kept == before


def option_packets() -> list[Packet]:
    rare = [(30, b"\x00\x81" + bytes(range(8))), (34, b"cookie12")]  # MPTCP key, fast-open cookie
    options = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (100, 0)), ("WScale", 7), ("NOP", None)]
    return [link() / IP(src=A4, dst=B4) / TCP(sport=40000, dport=443, flags="S",
                                              options=options[:3] + rare[:1]),
            link() / IPv6(src=A6, dst=B6) / TCP(sport=40000, dport=443, flags="S",
                                                 options=options[3:] + rare + [("SAckOK", b"")])]


def kinds(row: Row) -> list[int]:
    return [int(k) for k in row["tcp.option_kind"]]


def test_rare_tcp_options_become_nops(tmp_path: Path) -> None:
    before, after = views(tmp_path, option_packets(), "tcp.option_kind", "tcp.hdr_len")
    assert kinds(before[0]) == [2, 4, 8, 30] and kinds(after[0]) == [2, 4, 8] + [1] * 12
    assert kinds(before[1]) == [3, 1, 30, 34, 4] and kinds(after[1]) == [3, 1] + [1] * 22 + [4]
    assert column(after, "tcp.hdr_len") == column(before, "tcp.hdr_len")


def test_timestamps_removed_and_option_list_chosen(tmp_path: Path) -> None:
    _, removed = views(tmp_path / "remove", option_packets(), "tcp.option_kind", tcp_timestamps="remove")
    assert kinds(removed[0]) == [2, 4] + [1] * 10 + [1] * 12
    _, chosen = views(tmp_path / "chosen", option_packets(), "tcp.option_kind", keep_tcp_options=(1, 30))
    assert kinds(chosen[0]) == [1] * 6 + [8, 30]
    assert kinds(chosen[1]) == [1] * 4 + [30] + [1] * 10 + [1] * 2


def test_malformed_tcp_option_list_is_nopped_to_its_end() -> None:
    tcp = bytearray(bytes(TCP(sport=443, dport=443, flags="S", options=[("MSS", 1460), (30, b"abcdef")])))
    tcp[24 + 1] = 40  # the rare option now claims more than the header holds
    frame = bytes(link() / IP(src=A4, dst=B4, proto=6) / Raw(bytes(tcp)))
    generalize = Generalize(GeneralizeConfig(keep_tcp_options=(2, 30)), Context(KEY))
    out = generalize.apply(make_batch([frame])).data[0]
    options = 34 + 20
    assert out[options:options + 4] == frame[options:options + 4]  # MSS kept
    assert out[options + 4:options + 12] == b"\x01" * 8


# --- IP options --------------------------------------------------------------------------------

def ip_option_packets() -> list[Packet]:
    return [
        link() / IP(src=A4, dst=B4, options=[IPOption_RR(routers=["1.2.3.4"]), IPOption_Security(security=5),
                                              IPOption_NOP()]) / UDP(sport=9, dport=9),
        link() / IPv6(src=A6, dst=B6)
        / IPv6ExtHdrHopByHop(options=[RouterAlert(), HBHOptUnknown(otype=0x3E, optdata=b"xyz")])
        / IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=0x1E, optdata=b"abcd")]) / UDP(sport=9, dport=9),
    ]


def test_ip_options_replaced_by_padding(tmp_path: Path) -> None:
    fields = ("ip.opt.type", "ipv6.opt.type", "ipv6.opt.length", "ip.hdr_len", "ipv6.plen")
    before, after = views(tmp_path, ip_option_packets(), *fields)
    assert before[0]["ip.opt.type"] == ["7", "130", "1", "0"]
    assert after[0]["ip.opt.type"] == ["7"] + ["1"] * 11 + ["1", "0"]
    assert before[1]["ipv6.opt.type"] == ["0x05", "0x3e", "0x01", "0x1e"]
    assert after[1]["ipv6.opt.type"] == ["0x05", "0x01", "0x01", "0x01"]
    assert after[1]["ipv6.opt.length"] == before[1]["ipv6.opt.length"]
    assert after[0]["ip.hdr_len"] == before[0]["ip.hdr_len"]
    assert after[1]["ipv6.plen"] == before[1]["ipv6.plen"]
    _, none_kept = views(tmp_path / "none", ip_option_packets(), *fields, keep_ip_options=(),
                         keep_ipv6_options=(0, 1, 0x1E))
    assert none_kept[0]["ip.opt.type"] == ["1"] * 20  # EOL too
    assert none_kept[1]["ipv6.opt.type"] == ["0x01", "0x01", "0x01", "0x1e"]


def test_malformed_ipv6_options_become_pad1_and_padn() -> None:
    header = IPv6(src=A6, dst=B6, nh=0, plen=16)
    hop_by_hop = bytes([60, 0, 0x3E, 10]) + b"abcd"  # the option claims 12 bytes, 6 are left
    destination = bytes([17, 0, 1, 3, 7, 7, 7, 0x3E])  # PadN with data, then a lone option type
    frame = bytes(link() / header) + hop_by_hop + destination
    out = Generalize(GeneralizeConfig(), Context(KEY)).apply(make_batch([frame])).data[0]
    assert out[54:62] == bytes([60, 0, 1, 4, 0, 0, 0, 0])
    assert out[62:70] == bytes([17, 0, 1, 3, 0, 0, 0, 0])


# --- Whole-trace properties ---------------------------------------------------------------------

def everything() -> list[Packet]:
    return (ttl_packets() + id_packets() + tos_packets() + flow_packets() + port_packets()
            + conversation(*FAMILIES["ipv4"]) + conversation(*FAMILIES["ipv6"]) + option_packets()
            + ip_option_packets())


ALL_ON = {"tcp_sequence": "offset", "tcp_window": "bucket"}


def test_batch_size_does_not_change_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = scrub(tmp_path, everything(), **ALL_ON).read_bytes()
    monkeypatch.setattr(pipeline, "BATCH_FRAMES", 1)
    single = scrub(tmp_path, everything(), **ALL_ON).read_bytes()
    assert single == whole


def test_deterministic_and_key_dependent(tmp_path: Path) -> None:
    fields = ("ip.id", "tcp.srcport", "tcp.seq_raw", "tcp.options.timestamp.tsval", "ipv6.flow")
    first, second = (scrub(tmp_path, everything(), **ALL_ON) for _ in range(2))
    assert first.read_bytes() == second.read_bytes()
    other = scrub(tmp_path, everything(), key=OTHER_KEY, **ALL_ON)
    mine, theirs = tshark(first, *fields), tshark(other, *fields)
    for field in fields:
        assert [r[field] for r in mine] != [r[field] for r in theirs], field


def test_truncated_frames_untouched_past_their_end() -> None:
    """Cut anywhere, a frame comes out no longer than it went in, and each byte is either the
    original one or what the whole frame's output has there (never something else)."""
    config = GeneralizeConfig(**ALL_ON)  # type: ignore[arg-type]
    packets = [bytes(p) for p in conversation(*FAMILIES["ipv4"]) + port_packets() + ip_option_packets()]
    for data in packets:
        whole = Generalize(config, Context(KEY)).apply(make_batch([data])).data[0]
        for length in range(len(data)):
            out = Generalize(config, Context(KEY)).apply(make_batch([data[:length]])).data[0]
            assert len(out) <= length
            assert all(b in (data[i], whole[i]) for i, b in enumerate(out)), (data.hex(), length)


def test_corrupted_frames_never_raise_nor_change_length() -> None:
    """Every byte of frames full of options set to values that break lengths and kinds."""
    config = GeneralizeConfig(**ALL_ON)  # type: ignore[arg-type]
    packets = [bytes(p) for p in option_packets() + ip_option_packets() + conversation(*FAMILIES["ipv6"])[:2]]
    for data in packets:
        frames = [data[:i] + bytes([value]) + data[i + 1:] for i in range(14, len(data))
                  for value in (0x00, 0x01, 0x02, 0x05, 0x08, 0x0A, 0xFF)]
        batch = make_batch(frames)
        lengths = [len(out) for out in batch.data]
        Generalize(config, Context(KEY)).apply(batch)
        assert [len(out) for out in batch.data] == lengths


def test_settings_are_declared_and_timestamps_refused_in_the_option_list() -> None:
    fields = {f.name: f for f in dataclasses.fields(GeneralizeConfig)}
    assert set(fields) == {"ttl", "ttl_constant", "ip_id", "tos", "flow_label", "ports", "keep_ports",
                           "well_known", "tcp_window", "tcp_sequence", "keep_tcp_options", "tcp_timestamps",
                           "keep_ip_options", "keep_ipv6_options"}
    assert all(f.metadata["help"] for f in fields.values())
    check = fields["keep_tcp_options"].metadata["check"]
    assert check((2, 8)) is not None and check((2, 3)) is None


def test_counts() -> None:
    batch = make_batch([bytes(p) for p in option_packets()])
    Generalize(GeneralizeConfig(), Context(KEY)).apply(batch)
    assert batch.counts == {"IP headers generalized": 2, "TCP/UDP headers generalized": 2,
                            "options replaced with padding": 3}
