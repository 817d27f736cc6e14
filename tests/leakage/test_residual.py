"""Residual identifiers: the collector and its first sightings, the keep predicates, and the
section `scan` builds: its shape, kept identifiers counted apart, findings capped; a scrubbed
trace has none."""

from __future__ import annotations

import gzip
import ipaddress
import json
import pickle
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRROPT, EDNS0ClientSubnet
from scapy.layers.inet import IP, UDP
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
    identifying_part,
    kept_by_mappers,
    merge_residual,
    scan,
    scan_texts,
)
from anontrace.leakage.schema import SCHEMA
from anontrace.packet.dissect import dissect
from anontrace.pipeline import run
from anontrace.rules.compile import read_rules
from anontrace.transforms.ip import Ip
from anontrace.transforms.mac import Mac
from anontrace.transforms.names import NamesConfig
from tests.helpers import write_pcap
from tests.leakage.residual_traces import (
    BROADCAST,
    DNS_NAME,
    FRESH_IP,
    FRESH_MAC,
    HEADERS,
    HOST_NAME,
    IP_A,
    IP_B,
    IPV6_B,
    LINK_LOCAL,
    MAC_A,
    MAC_B,
    MAC_C,
    OTHER_IP,
    OTHER_MAC,
    PLANTS,
    collector_of,
    fresh,
    original_packets,
)

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
KEY = Key(bytes(range(32)))


# ------------------------------------------------------------------------------------------
# The section of the planted trace (tests/leakage/residual_traces.py)


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
# What counts: kept identifiers, the cap


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
    labels_kept = collector_of(packets, NamesConfig(keep_labels=("corp",)))
    assert set(labels_kept.names) == {DNS_NAME.encode()}  # "corp" and the last label stay
    assert set(collector_of(packets).names) == {b"corp.example", DNS_NAME.encode()}
    path = write_pcap(tmp_path / "names.pcap", packets)
    keeping = collector_of(packets, NamesConfig(policy="keep"))
    everything = scan(str(path), keeping, kept=lambda raw: True)
    assert everything["total"] == 0
    assert everything["kept_by_rule"] == len(labels_kept.addresses) + 2


def test_findings_are_capped_but_all_counted(planted: tuple[Path, dict[str, Any]]) -> None:
    residual = scan(str(planted[0]), collector_of(original_packets()), limit=3)
    assert residual["total"] == len(PLANTS)
    assert len(residual["findings"]) == 3 and residual["findings_truncated"] is True
    assert [f["frame"] for f in residual["findings"]] == [1, 2, 3]


# ------------------------------------------------------------------------------------------
# Texts that travel with the capture: labels


def _finding(kind: str, value: str, encoding: str, file: str, offset: int, seen: tuple[int, str],
             ) -> dict[str, Any]:
    return {"kind": kind, "value": value, "encoding": encoding, "file": file, "frame": None,
            "offset": offset, "first_seen": {"frame": seen[0], "where": seen[1]}}


def test_identifiers_written_in_labels_are_found_in_every_text_form() -> None:
    labels = ["web", f"{DNS_NAME} {IP_A}", f"café {HOST_NAME}", "ptr 3.2.1.10.in-addr.arpa",
              "to [2001:DB8:1::B]", "mac 00-1A-2B-3C-4D-5E", "bcast 255.255.255.255"]
    flows = ["backup", f"db {IP_B}"]
    residual = scan_texts({"labels": labels, "flows": flows}, collector_of(original_packets()))
    assert residual["findings"] == [
        _finding("name", DNS_NAME, "text", "labels", 0, (2, "dns name")),
        _finding("ipv4", IP_A, "text", "labels", len(DNS_NAME) + 1, (1, "ipv4 header")),
        _finding("name", HOST_NAME, "text", "labels", 5, (4, "dhcp host name")),  # characters, not bytes
        _finding("ipv4", IP_A, "reverse-dns", "labels", 4, (1, "ipv4 header")),
        _finding("ipv6", IPV6_B, "text", "labels", 4, (3, "ipv6 header")),
        _finding("mac", MAC_A, "text", "labels", 4, (2, "mac in link header")),
        _finding("ipv4", IP_B, "text", "flows", 3, (2, "ipv4 header")),
    ]
    assert (residual["total"], residual["distinct"], residual["kept_by_rule"]) == (7, 6, 1)  # 255.255.255.255
    assert residual["by_kind"] == {"ipv4": 3, "ipv6": 1, "mac": 1, "name": 2}
    assert residual["by_encoding"] == {"binary": 0, "text": 6, "reverse-dns": 1, "eui64": 0, "dns-wire": 0,
                                       "metadata": 0}
    jsonschema.validate(json.loads(json.dumps(residual, allow_nan=False)),
                        {"$defs": SCHEMA["$defs"], "$ref": "#/$defs/residual"})


def test_bytes_equal_to_a_binary_or_wire_form_are_not_text_leaks() -> None:
    chance = ["\n\x01\x02\x03",  # IP_A's four bytes
              "\x07printer\x04corp\x07example\x00",  # DNS_NAME in DNS wire labels
              "\x013\x012\x011\x0210\x07in-addr\x04arpa\x00"]  # IP_A's reverse name in wire labels
    residual = scan_texts({"labels": chance}, collector_of(original_packets()))
    assert (residual["total"], residual["findings"], residual["kept_by_rule"]) == (0, [], 0)


def test_labels_keep_what_the_rules_keep() -> None:
    collector = collector_of(original_packets())
    texts = {"labels": [f"{IP_A} {IP_B} {DNS_NAME}"]}
    residual = scan_texts(texts, collector, kept=lambda raw: raw == bytes([10, 1, 2, 3]), keep_names=True)
    assert [f["value"] for f in residual["findings"]] == [IP_B]
    assert residual["kept_by_rule"] == 2  # IP_A and the name


def test_the_labels_section_merges_into_the_captures(tmp_path: Path) -> None:
    """The capture leaks IP_A and keeps 224.0.0.251; the labels leak IP_A again and LINK_LOCAL,
    and keep 224.0.0.251 again and 255.255.255.255: each identifier counts once."""
    collector = collector_of(original_packets())
    path = write_pcap(tmp_path / "one.pcap", [fresh(f"from {IP_A} to 224.0.0.251".encode())])
    frames = scan(str(path), collector)
    labels = scan_texts({"labels": [f"{IP_A} again", LINK_LOCAL, "224.0.0.251 255.255.255.255"]}, collector)
    merged = merge_residual(frames, labels)
    assert (merged["total"], merged["distinct"], merged["kept_by_rule"]) == (3, 2, 2)
    assert merged["by_kind"] == {"ipv4": 2, "ipv6": 1, "mac": 0, "name": 0}
    assert merged["by_encoding"]["text"] == 3 and sum(merged["by_encoding"].values()) == 3
    assert [(f["value"], f["file"], f["frame"], f["offset"]) for f in merged["findings"]] == [
        (IP_A, str(path), 1, HEADERS + 5), (IP_A, "labels", None, 0), (LINK_LOCAL, "labels", None, 0)]
    assert merged["findings_truncated"] is False
    assert merged["identifiers_checked"] == collector.counts()
    jsonschema.validate(json.loads(json.dumps(merged, allow_nan=False)),
                        {"$defs": SCHEMA["$defs"], "$ref": "#/$defs/residual"})
    capped = merge_residual(frames, labels, limit=2)
    assert [f["file"] for f in capped["findings"]] == [str(path), "labels"]
    assert capped["findings_truncated"] is True and capped["total"] == 3
    again = merge_residual(merged, labels)  # merging is counting: the same labels twice count twice
    assert (again["total"], again["distinct"], again["kept_by_rule"]) == (5, 2, 2)


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


def dns_answer(question: bytes, answer: bytes) -> Packet:
    """A DNS response: one question (at offset 12 of the message), one A record named `answer`."""
    message = (bytes.fromhex("0001 8180 0001 0001 0000 0000") + question + bytes.fromhex("0001 0001")
               + answer + bytes.fromhex("0001 0001 00000000 0004 c0000201"))
    return Ether(src=FRESH_MAC, dst=OTHER_MAC) / IP(src=OTHER_IP, dst=FRESH_IP) / UDP(sport=53, dport=1000) \
        / Raw(message)


def test_the_same_name_bytes_with_a_pointer_can_name_another_host() -> None:
    # "host" then a pointer to the question: the same bytes in both frames, two different names
    host_there = b"\x04host\xc0\x0c"
    packets = [dns_answer(b"\x07example\x03org\x00", host_there),
               dns_answer(b"\x05other\x03net\x00", host_there),
               dns_answer(b"\x04host\x07example\x03org\x00", b"\x05other\x03net\x00")]  # all seen before
    assert collector_of(packets).names == {
        b"example.org": Sighting(1, "dns name"), b"host.example.org": Sighting(1, "dns name"),
        b"other.net": Sighting(2, "dns name"), b"host.other.net": Sighting(2, "dns name")}


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


def test_collectors_of_consecutive_pieces_merge_into_one() -> None:
    frames = [bytes(p) for p in original_packets()]
    layers = [dissect(data, 1) for data in frames]
    one = IdentifierCollector()
    pieces = []
    for number, (data, found) in enumerate(zip(frames, layers, strict=True), start=1):
        one.add_frame(data, found, number)
        piece = IdentifierCollector()
        piece.add_frame(data, found, number)
        pieces.append(pickle.loads(pickle.dumps(piece)))
    for later in pieces[1:]:
        pieces[0].merge(later)
    merged = pieces[0]
    assert list(merged.addresses.items()) == list(one.addresses.items())
    assert list(merged.names.items()) == list(one.names.items())
    assert merged.sighting(("ipv4", ipaddress.ip_address(IP_A).packed)).frame == 1  # not 2, where it is again
    assert merged.counts() == one.counts() and sum(one.counts().values()) > 5
    assert merged._read == one._read
