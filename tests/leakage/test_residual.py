"""Residual identifiers: a leak planted in each channel is found exactly where it was put; a
scrubbed trace has none; kept identifiers are counted apart; findings are capped."""

from __future__ import annotations

import gzip
import ipaddress
import json
import struct
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dns import DNS, DNSQR, DNSRROPT, EDNS0ClientSubnet
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from anontrace.crypto.macs import MacMapper
from anontrace.crypto.mapping import AddressMapper
from anontrace.io.capture import make_writer, open_reader, output_format
from anontrace.keys import Key
from anontrace.leakage.residual import (
    PUBLIC,
    IdentifierCollector,
    Sighting,
    file_metadata,
    identifying_part,
    kept_by_mappers,
    scan,
)
from anontrace.leakage.schema import SCHEMA
from anontrace.pipeline import run
from anontrace.rules.compile import read_rules
from anontrace.transforms.ip import Ip
from anontrace.transforms.mac import Mac
from anontrace.transforms.names import NamesConfig
from tests.helpers import make_batch, write_pcap

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
KEY = Key(bytes(range(32)))

MAC_A, MAC_B = "00:1a:2b:3c:4d:5e", "00:1a:2b:99:88:77"
MAC_C = "00:1a:2b:c0:ff:ee"  # only inside the EUI-64 interface id of LINK_LOCAL
LINK_LOCAL = "fe80::21a:2bff:fec0:ffee"
IP_A, IP_B, IPV6_B = "10.1.2.3", "10.9.8.7", "2001:db8:1::b"
HOST_NAME, DNS_NAME = "laptop-alice", "printer.corp.example"
BROADCAST = "ff:ff:ff:ff:ff:ff"
FRESH_MAC, OTHER_MAC = "02:99:99:10:20:30", "02:99:99:40:50:60"  # never in the original
FRESH_IP, OTHER_IP = "198.51.100.1", "198.51.100.2"
HEADERS = 14 + 20 + 8  # Ethernet, IPv4, UDP: where a UDP payload starts


def original_packets() -> list[Packet]:
    """The original trace: every identifier the planted leaks use, and some kept ones."""
    return [
        # 1: a frame whose only secret identifier is IP_A (the others are kept or all zero)
        Ether(src="00:00:00:00:00:00", dst=BROADCAST) / IP(src=IP_A, dst="255.255.255.255")
        / UDP(sport=5000, dport=5001),
        # 2: a DNS query
        Ether(src=MAC_A, dst=MAC_B) / IP(src=IP_A, dst=IP_B) / UDP(sport=3333, dport=53)
        / DNS(rd=1, qd=DNSQR(qname=DNS_NAME)),
        # 3: IPv6 from an EUI-64 address
        Ether(src=MAC_A, dst=MAC_B) / IPv6(src=LINK_LOCAL, dst=IPV6_B) / ICMPv6EchoRequest(),
        # 4: DHCP discover with a host name
        Ether(src=MAC_A, dst=BROADCAST) / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67)
        / BOOTP(chaddr=bytes.fromhex(MAC_A.replace(":", "")))
        / DHCP(options=[("message-type", "discover"), ("hostname", HOST_NAME), "end"]),
        # 5: mDNS: multicast addresses and a service name, all kept
        Ether(src=MAC_B, dst="01:00:5e:00:00:fb") / IP(src=IP_B, dst="224.0.0.251")
        / UDP(sport=5353, dport=5353) / DNS(qd=DNSQR(qname="_ipp._tcp.local", qtype="PTR")),
    ]


def collector_of(packets: list[Packet]) -> IdentifierCollector:
    collector = IdentifierCollector()
    collector.observe(make_batch([bytes(p) for p in packets]), [None] * len(packets))
    return collector


def fresh(payload: bytes) -> Packet:
    """A UDP frame between addresses the original never had, carrying `payload`."""
    return Ether(src=FRESH_MAC, dst=OTHER_MAC) / IP(src=FRESH_IP, dst=OTHER_IP) / UDP(sport=40000, dport=9) \
        / Raw(payload)


def eui64_of(mac: str) -> str:
    raw = bytes.fromhex(mac.replace(":", ""))
    iid = bytes([raw[0] ^ 2]) + raw[1:3] + b"\xff\xfe" + raw[3:]
    return ":".join(iid[i:i + 2].hex() for i in range(0, 8, 2))


# Each planted frame of the anonymized trace, with the one finding it must give:
# (kind, value, encoding, offset in the frame).
PLANTS: list[tuple[str, Packet, tuple[str, str, str, int]]] = [
    ("ipv4 header (frame copied unmodified)", original_packets()[0], ("ipv4", IP_A, "binary", 26)),
    ("ipv4 dotted text", fresh(b"from " + IP_A.encode() + b";"), ("ipv4", IP_A, "text", HEADERS + 5)),
    ("ipv6 binary", fresh(b"xx" + ipaddress.IPv6Address(IPV6_B).packed),
     ("ipv6", IPV6_B, "binary", HEADERS + 2)),
    ("ipv6 compressed text", fresh(b"to [2001:DB8:1::B]"), ("ipv6", IPV6_B, "text", HEADERS + 4)),
    ("ipv6 exploded text", fresh(b"=" + ipaddress.IPv6Address(IPV6_B).exploded.upper().encode() + b"."),
     ("ipv6", IPV6_B, "text", HEADERS + 1)),
    ("ip6.arpa text", fresh(b"ptr " + ".".join(ipaddress.IPv6Address(IPV6_B).exploded.replace(":", "")[::-1])
                           .encode() + b".IP6.ARPA."), ("ipv6", IPV6_B, "reverse-dns", HEADERS + 4)),
    ("mac in ethernet header", Ether(src=MAC_A, dst=OTHER_MAC) / IP(src=FRESH_IP, dst=OTHER_IP)
     / UDP(sport=40000, dport=9), ("mac", MAC_A, "binary", 6)),
    ("mac text with dashes", fresh(b"mac=00-1A-2B-99-88-77."), ("mac", MAC_B, "text", HEADERS + 4)),
    ("mac text, cisco style", fresh(b"[001A.2B3C.4D5E]"), ("mac", MAC_A, "text", HEADERS + 1)),
    ("eui-64 interface id", Ether(src=FRESH_MAC, dst=OTHER_MAC)
     / IPv6(src="2001:db8:ffff::" + eui64_of(MAC_C), dst="2001:db8:ffff::2") / ICMPv6EchoRequest(),
     ("mac", MAC_C, "eui64", 14 + 8 + 8)),
    ("in-addr.arpa text", fresh(b"ptr 3.2.1.10.in-addr.arpa"), ("ipv4", IP_A, "reverse-dns", HEADERS + 4)),
    ("in-addr.arpa dns wire", Ether(src=FRESH_MAC, dst=OTHER_MAC) / IP(src=FRESH_IP, dst=OTHER_IP)
     / UDP(sport=40000, dport=53) / DNS(rd=1, qd=DNSQR(qname="7.8.9.10.in-addr.arpa", qtype="PTR")),
     ("ipv4", IP_B, "reverse-dns", HEADERS + 12)),
    ("dns name text", fresh(b"GET http://Printer.Corp.Example/"), ("name", DNS_NAME, "text", HEADERS + 11)),
    ("dns name wire", Ether(src=FRESH_MAC, dst=OTHER_MAC) / IP(src=FRESH_IP, dst=OTHER_IP)
     / UDP(sport=40000, dport=53) / DNS(rd=1, qd=DNSQR(qname=DNS_NAME)),
     ("name", DNS_NAME, "dns-wire", HEADERS + 12)),
    ("dhcp host name text", fresh(b"client " + HOST_NAME.upper().encode() + b"3"),
     ("name", HOST_NAME, "text", HEADERS + 7)),
    ("dhcp host name as dns wire (and text inside it, counted once)", Ether(src=FRESH_MAC, dst=OTHER_MAC)
     / IP(src=FRESH_IP, dst=OTHER_IP) / UDP(sport=40000, dport=53)
     / DNS(rd=1, qd=DNSQR(qname=HOST_NAME + ".lan")),
     ("name", HOST_NAME, "dns-wire", HEADERS + 12)),
]


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    path = write_pcap(tmp_path_factory.mktemp("residual") / "planted.pcap", [p for _, p, _ in PLANTS])
    return path, scan(str(path), collector_of(original_packets()))


@pytest.mark.parametrize("number", range(1, len(PLANTS) + 1), ids=[name for name, _, _ in PLANTS])
def test_a_leak_planted_in_each_channel_is_found_where_it_is(
        planted: tuple[Path, dict[str, Any]], number: int) -> None:
    path, residual = planted
    kind, value, encoding, offset = PLANTS[number - 1][2]
    found = [(f["kind"], f["value"], f["encoding"], f["offset"], f["file"])
             for f in residual["findings"] if f["frame"] == number]
    assert found == [(kind, value, encoding, offset, str(path))]


def test_nothing_but_the_planted_leaks_is_found(planted: tuple[Path, dict[str, Any]]) -> None:
    residual = planted[1]
    assert residual["total"] == len(PLANTS) == len(residual["findings"])
    assert residual["findings_truncated"] is False
    assert residual["distinct"] == len({(k, v) for _, _, (k, v, _, _) in PLANTS})
    assert residual["by_encoding"] == {"binary": 3, "text": 7, "reverse-dns": 3, "eui64": 1, "dns-wire": 2,
                                       "metadata": 0}
    assert residual["by_kind"] == {"ipv4": 4, "ipv6": 4, "mac": 4, "name": 4}
    # broadcast MAC and 255.255.255.255 in the copied frame, "0.0.0.0" inside the ip6.arpa name;
    # the all-zero MAC is not looked for in binary (zero runs are everywhere)
    assert residual["kept_by_rule"] == 3


def test_the_section_has_the_report_schema_shape(planted: tuple[Path, dict[str, Any]]) -> None:
    jsonschema.validate(json.loads(json.dumps(planted[1], allow_nan=False)),
                        {"$defs": SCHEMA["$defs"], "$ref": "#/$defs/residual"})


def test_findings_say_where_the_identifier_was_first_seen(planted: tuple[Path, dict[str, Any]]) -> None:
    seen = {(f["kind"], f["value"]): f["first_seen"] for f in planted[1]["findings"]}
    assert seen[("ipv4", IP_A)] == {"frame": 1, "where": "ipv4 header"}
    assert seen[("ipv4", IP_B)] == {"frame": 2, "where": "ipv4 header"}
    assert seen[("mac", MAC_C)] == {"frame": 3, "where": "mac in the eui-64 interface id of ipv6 header"}
    assert seen[("name", DNS_NAME)] == {"frame": 2, "where": "dns name"}
    assert seen[("name", HOST_NAME)] == {"frame": 4, "where": "dhcp host name"}


def test_a_compressed_capture_is_scanned_alike(planted: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path, residual = planted
    packed = tmp_path / "planted.pcap.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    again = scan(str(packed), collector_of(original_packets()))
    strip = [{k: v for k, v in f.items() if k != "file"} for f in again["findings"]]
    assert strip == [{k: v for k, v in f.items() if k != "file"} for f in residual["findings"]]


# ------------------------------------------------------------------------------------------
# pcapng metadata


def option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def block(kind: int, body: bytes) -> bytes:
    return struct.pack("<II", kind, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def test_pcapng_comments_and_interface_options_are_scanned(tmp_path: Path) -> None:
    """A pcapng written by hand: an interface named and described with original identifiers,
    and a frame (clean itself) whose comment names a host."""
    description = b"uplink to " + IP_B.encode()
    mac = bytes.fromhex(MAC_A.replace(":", ""))
    comment = b"seen from " + HOST_NAME.encode()
    shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb_options = option(2, b"eth0") + option(3, description) + option(6, mac) + option(0, b"")
    idb = block(1, struct.pack("<HHI", 1, 0, 65535) + idb_options)
    frame = bytes(fresh(b"nothing"))
    data = frame + b"\0" * (-len(frame) % 4)
    epb = block(6, struct.pack("<IIIII", 0, 0, 1000, len(frame), len(frame)) + data
                + option(1, comment) + option(0, b""))
    path = tmp_path / "metadata.pcapng"
    path.write_bytes(shb + idb + epb)
    idb_values = len(shb) + 8 + 8  # the IDB's header and fixed fields
    description_at = idb_values + len(option(2, b"eth0")) + 4
    mac_at = description_at - 4 + len(option(3, description)) + 4
    comment_at = len(shb) + len(idb) + 8 + 20 + len(data) + 4

    residual = scan(str(path), collector_of(original_packets()))

    found = [(f["kind"], f["value"], f["encoding"], f["frame"], f["offset"]) for f in residual["findings"]]
    assert found == [
        ("ipv4", IP_B, "metadata", None, description_at + description.find(IP_B.encode())),
        ("mac", MAC_A, "metadata", None, mac_at),
        ("name", HOST_NAME, "metadata", None, comment_at + comment.find(HOST_NAME.encode())),
    ]
    assert residual["by_encoding"]["metadata"] == 3 and residual["total"] == 3


def test_file_metadata_is_what_lies_outside_frames(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "plain.pcap", [fresh(IP_A.encode())])
    assert list(file_metadata(str(path))) == [(8, bytes(8))]  # a pcap header's time zone and accuracy


# ------------------------------------------------------------------------------------------
# What counts: kept identifiers, chance matches, the cap


def test_kept_identifiers_count_apart(tmp_path: Path) -> None:
    mdns = (Ether(src=FRESH_MAC, dst=BROADCAST) / IP(src=FRESH_IP, dst="224.0.0.251")
            / UDP(sport=5353, dport=5353))
    path = write_pcap(tmp_path / "kept.pcap", [mdns, mdns])
    residual = scan(str(path), collector_of(original_packets()))
    assert residual["kept_by_rule"] == 2  # distinct: the broadcast MAC and 224.0.0.251
    assert residual["total"] == 0 and residual["findings"] == []


def test_a_keep_predicate_decides_what_is_kept(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "one.pcap", [fresh(IP_A.encode() + b" " + IP_B.encode())])
    residual = scan(str(path), collector_of(original_packets()), kept=lambda raw: raw == bytes([10, 1, 2, 3]))
    assert [f["value"] for f in residual["findings"]] == [IP_B]
    assert residual["kept_by_rule"] == 1


def test_names_kept_by_rule(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "name.pcap", [fresh(DNS_NAME.encode())])
    collector = collector_of(original_packets())
    assert scan(str(path), collector)["total"] == 1
    kept = scan(str(path), collector, keep_names=True)
    assert (kept["total"], kept["kept_by_rule"]) == (0, 1)


def test_names_kept_by_the_runs_names_settings(tmp_path: Path) -> None:
    packets: list[Packet] = [
        Ether(src=FRESH_MAC, dst=OTHER_MAC) / IP(src=FRESH_IP, dst=OTHER_IP) / UDP(sport=1000, dport=53)
        / DNS(qd=DNSQR(qname=name)) for name in ("corp.example", DNS_NAME)]
    labels_kept = collector_of_with(packets, NamesConfig(keep_labels=("corp",)))
    assert set(labels_kept.names) == {DNS_NAME.encode()}  # "corp" and the last label stay
    assert set(collector_of(packets).names) == {b"corp.example", DNS_NAME.encode()}
    path = write_pcap(tmp_path / "names.pcap", packets)
    keeping = collector_of_with(packets, NamesConfig(policy="keep"))
    everything = scan(str(path), keeping, kept=lambda raw: True)
    assert everything["total"] == 0
    assert everything["kept_by_rule"] == len(labels_kept.addresses) + 2


def collector_of_with(packets: list[Packet], names: NamesConfig) -> IdentifierCollector:
    collector = IdentifierCollector(names)
    collector.observe(make_batch([bytes(p) for p in packets]), [None] * len(packets))
    return collector


def test_numbers_that_equal_an_address_are_not_leaks(tmp_path: Path) -> None:
    """IP_A's 4 bytes as a TCP sequence number, and straddling two fresh addresses: chance."""
    sequence = int(ipaddress.IPv4Address(IP_A))
    tcp = (Ether(src=FRESH_MAC, dst=OTHER_MAC) / IP(src=FRESH_IP, dst=OTHER_IP)
           / TCP(sport=1, dport=2, seq=sequence))
    straddle = (Ether(src=FRESH_MAC, dst=OTHER_MAC) / IP(src="192.0.2.10", dst="1.2.3.4")
                / UDP(sport=1, dport=2))
    collector = collector_of(original_packets())
    # an identifier made of the last bytes of one address and the first of the next
    collector.addresses[bytes([2, 10, 1, 2])] = Sighting(1, "test")
    path = write_pcap(tmp_path / "numbers.pcap", [tcp, straddle])
    assert bytes([10, 1, 2, 3]) in bytes(tcp) and bytes([2, 10, 1, 2]) in bytes(straddle)
    assert scan(str(path), collector)["total"] == 0
    copied = write_pcap(tmp_path / "copied.pcap", [fresh(bytes([10, 1, 2, 3]))])
    assert scan(str(copied), collector)["total"] == 1  # the same bytes in a payload do count


def test_findings_are_capped_but_all_counted(planted: tuple[Path, dict[str, Any]]) -> None:
    residual = scan(str(planted[0]), collector_of(original_packets()), limit=3)
    assert residual["total"] == len(PLANTS)
    assert len(residual["findings"]) == 3 and residual["findings_truncated"] is True
    assert [f["frame"] for f in residual["findings"]] == [1, 2, 3]


# ------------------------------------------------------------------------------------------
# A scrubbed trace has none


SCRUBBED = ["dns_udp.pcap", "dns_tcp.pcap", "dhcp-option-108.pcapng", "dhcpv6-ia-na.pcap", "icmpv6.pcap",
            "icmpv6-ns-nonce.pcap", "vxlan.pcap", "various_gre.pcap", "pppoe.pcap",
            "OSPFv2_Capture_FINAL.pcapng", "arp-oobr.pcap", "ipv6-srh-ext-header.pcap"]


@pytest.mark.parametrize("name", SCRUBBED)
def test_a_scrubbed_trace_has_no_residual_identifiers(name: str, tmp_path: Path) -> None:
    source = CORPUS / name
    if not source.exists():
        pytest.fail(f"corpus capture {source} is missing")
    transforms = read_rules(None).build(KEY)
    collector = IdentifierCollector()
    output = tmp_path / name
    reader = open_reader(str(source))
    try:
        with output.open("wb") as out:
            writer = make_writer(out, str(output), output_format(str(output), reader.format)[0], reader)
            run(reader, writer, transforms, observers=[collector])
    finally:
        reader.stream.close()
    ip = next(t for t in transforms if isinstance(t, Ip)).mapper
    mac = next(t for t in transforms if isinstance(t, Mac)).mapper

    residual = scan(str(output), collector, kept_by_mappers(ip, mac))

    assert sum(residual["identifiers_checked"].values()) > 0
    assert residual["total"] == 0, residual["findings"][:5]
    unscrubbed = scan(str(source), collector, kept_by_mappers(ip, mac))
    assert unscrubbed["total"] > 0  # the same search finds them in the original


# ------------------------------------------------------------------------------------------
# The collector and the keep predicates


def test_the_collector_keeps_each_identifier_once_with_its_first_sighting() -> None:
    collector = collector_of(original_packets())
    address = {
        IP_A: (1, "ipv4 header"), "255.255.255.255": (1, "ipv4 header"), IP_B: (2, "ipv4 header"),
        "0.0.0.0": (4, "ipv4 header"), "224.0.0.251": (5, "ipv4 header"),
        LINK_LOCAL: (3, "ipv6 header"), IPV6_B: (3, "ipv6 header"),
        "00:00:00:00:00:00": (1, "mac in link header"), BROADCAST: (1, "mac in link header"),
        MAC_A: (2, "mac in link header"), MAC_B: (2, "mac in link header"),
        MAC_C: (3, "mac in the eui-64 interface id of ipv6 header"),
        "01:00:5e:00:00:fb": (5, "mac in link header"),
    }
    expected = {_raw(text): Sighting(frame, where) for text, (frame, where) in address.items()}
    for raw, sighting in collector.addresses.items():  # BOOTP fields beyond what is listed above
        if raw not in expected:
            assert sighting.frame == 4 and "dhcp" in sighting.where, (raw.hex(), sighting)
    assert {raw: collector.addresses[raw] for raw in expected} == expected
    assert collector.names == {DNS_NAME.encode(): Sighting(2, "dns name"),
                               HOST_NAME.encode(): Sighting(4, "dhcp host name")}
    assert collector.counts()["name"] == 2 and collector.counts()["ipv6"] == 2


def _raw(text: str) -> bytes:
    if text.count(":") == 5 and "::" not in text:
        return bytes.fromhex(text.replace(":", ""))
    return ipaddress.ip_address(text).packed


def test_reverse_names_give_addresses_and_short_or_kept_names_are_skipped() -> None:
    reverse6 = ".".join(ipaddress.IPv6Address(IPV6_B).exploded.replace(":", "")[::-1]) + ".ip6.arpa"
    names = ("4.3.2.1.in-addr.arpa", reverse6, "2.1.in-addr.arpa", "_http._tcp.local", "a.b", "ab.com",
             "Printer._ipp._tcp.local")
    packets: list[Packet] = [Ether(src=FRESH_MAC, dst=OTHER_MAC) / IP(src=FRESH_IP, dst=OTHER_IP)
                             / UDP(sport=1000, dport=53) / DNS(qd=DNSQR(qname=name, qtype="PTR"))
                             for name in names]
    collector = collector_of(packets)
    assert collector.addresses[bytes([1, 2, 3, 4])] == Sighting(1, "reverse dns name in dns")
    assert collector.addresses[_raw(IPV6_B)] == Sighting(2, "reverse dns name in dns")
    assert set(collector.names) == {b"ab.com", b"printer._ipp._tcp.local"}


def test_ipv4_addresses_inside_ipv6_addresses_are_identifiers() -> None:
    client = bytes(b ^ 0xFF for b in bytes([10, 7, 7, 7])).hex()
    teredo = f"2001:0:a05:505::{client[:4]}:{client[4:]}"
    packets: list[Packet] = [
        Ether(src=FRESH_MAC, dst=OTHER_MAC) / IPv6(src="2002:a01:203::1", dst="::ffff:10.4.4.4")
        / ICMPv6EchoRequest(),
        Ether(src=FRESH_MAC, dst=OTHER_MAC) / IPv6(src=teredo, dst="64:ff9b::10.6.6.6") / ICMPv6EchoRequest()]
    found = {raw: (s.frame, s.where.removesuffix(" address of ipv6 header"))
             for raw, s in collector_of(packets).addresses.items()}
    assert found[bytes([10, 1, 2, 3])] == (1, "ipv4 inside the 6to4")
    assert found[bytes([10, 4, 4, 4])] == (1, "ipv4 inside the ipv4-mapped")
    assert found[bytes([10, 5, 5, 5])] == (2, "ipv4 inside the teredo server")
    assert found[bytes([10, 7, 7, 7])] == (2, "ipv4 inside the teredo client")
    assert found[bytes([10, 6, 6, 6])] == (2, "ipv4 inside the nat64")


def test_only_whole_addresses_are_taken_from_prefixes() -> None:
    """EDNS client subnet: a /32 prefix is a host's address, a /24 only a network's."""
    packets: list[Packet] = [
        Ether(src=FRESH_MAC, dst=OTHER_MAC) / IP(src=FRESH_IP, dst=OTHER_IP) / UDP(sport=1000, dport=53)
        / DNS(qd=DNSQR(qname="example.com"),
              ar=DNSRROPT(rdata=[EDNS0ClientSubnet(source_plen=length, address=address)]))
        for length, address in ((32, "10.20.30.40"), (24, "10.50.60.0"))]
    collector = collector_of(packets)
    assert collector.addresses[bytes([10, 20, 30, 40])] == Sighting(1, "full-length prefix in dns")
    assert not [raw for raw in collector.addresses if raw[:3] == bytes([10, 50, 60])]


@pytest.mark.parametrize(("labels", "expected"), [
    ([b"www", b"example", b"com"], b"www.example.com"),
    ([b"_ldap", b"_tcp", b"dc1", b"corp"], b"dc1.corp"),
    ([b"_ipp", b"_tcp", b"local"], None),
    ([b"laptop"], b"laptop"),
    ([b"pc", b"lan"], b"pc.lan"),
    ([b"pc", b"local"], b"pc.local"),
    ([b"host", b"local", b"corp"], b"host.local.corp"),
    ([b"a", b"b"], None),  # too short to be evidence
    ([b"abc"], None),
])
def test_identifying_part(labels: list[bytes], expected: bytes | None) -> None:
    assert identifying_part(labels) == expected


@pytest.mark.parametrize(("text", "public"), [
    ("0.0.0.0", True), ("255.255.255.255", True), ("127.0.0.1", True), ("224.0.0.251", True),
    ("239.255.255.250", True), ("10.0.0.1", False), ("169.254.1.1", False),
    ("::", True), ("::1", True), ("ff02::1", True), ("ff02::1:ff00:1", False), ("fe80::1", False),
    ("00:00:00:00:00:00", True), (BROADCAST, True), ("01:00:5e:00:00:fb", True), ("33:33:00:00:00:01", True),
    ("33:33:ff:00:00:01", False), ("01:23:45:67:89:ab", False), (MAC_A, False),
])
def test_public_identifiers(text: str, public: bool) -> None:
    assert PUBLIC(_raw(text)) is public


def test_kept_by_mappers_keeps_what_the_mappings_leave_alone() -> None:
    ip = AddressMapper(KEY.secret, keep=[ipaddress.ip_network("224.0.0.0/4")])
    kept = kept_by_mappers(ip, MacMapper(KEY.secret))
    assert kept(_raw("224.0.0.251")) and kept(_raw(BROADCAST)) and kept(_raw("00:00:00:00:00:00"))
    assert not kept(_raw(IP_A)) and not kept(_raw(MAC_A)) and not kept(_raw(IPV6_B))

