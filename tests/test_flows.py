"""Flow keys read from frames at dissection offsets, and per-flow totals in both directions."""

from __future__ import annotations

import ipaddress

from scapy.layers.inet import ICMP, IP, TCP, UDP, UDPerror
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet

from anontrace.flows import FiveTuple, FlowTable, five_tuple
from anontrace.packet.dissect import dissect

ETHERNET = 1
A, B = ipaddress.ip_address("192.0.2.1").packed, ipaddress.ip_address("198.51.100.7").packed


def key(packet: Packet) -> FiveTuple | None:
    data = bytes(packet)
    return five_tuple(data, dissect(data, ETHERNET))


def test_tcp_and_udp_keys_read_addresses_and_ports() -> None:
    assert key(Ether() / IP(src="192.0.2.1", dst="198.51.100.7") / TCP(sport=1234, dport=80)) == \
        FiveTuple(6, A, 1234, B, 80)
    assert key(Ether() / IP(src="198.51.100.7", dst="192.0.2.1") / UDP(sport=53, dport=5353)) == \
        FiveTuple(17, B, 53, A, 5353)


def test_ipv6_and_icmp_keys() -> None:
    v6 = key(Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=1, dport=2))
    assert v6 == FiveTuple(17, ipaddress.ip_address("2001:db8::1").packed, 1,
                           ipaddress.ip_address("2001:db8::2").packed, 2)
    assert key(Ether() / IP(src="192.0.2.1", dst="198.51.100.7") / ICMP()) == FiveTuple(1, A, 0, B, 0)


def test_icmp_error_is_keyed_by_its_own_header_not_the_quoted_one() -> None:
    error = Ether() / IP(src="198.51.100.7", dst="192.0.2.1") / ICMP(type=3, code=3) / \
        IP(src="192.0.2.1", dst="198.51.100.7") / UDPerror(sport=999, dport=53)
    assert key(error) == FiveTuple(1, B, 0, A, 0)


def test_frames_without_ip_have_no_key() -> None:
    assert key(Ether() / ARP(psrc="192.0.2.1", pdst="198.51.100.7")) is None
    truncated = bytes(Ether() / IP(src="192.0.2.1", dst="198.51.100.7") / TCP())[:14 + 16]
    assert five_tuple(truncated, dissect(bytes(Ether() / IP() / TCP()), ETHERNET)) is None


def test_both_directions_are_one_flow_oriented_by_the_first_frame() -> None:
    table = FlowTable()
    there = FiveTuple(6, A, 40000, B, 443)
    table.add(there, 10, 60, None)
    table.add(there.reversed(), 25, 1500, "web")
    table.add(there, 17, 40, "other")
    (flow,) = table
    assert flow.key == there
    assert (flow.first_ns, flow.last_ns) == (10, 25)
    assert (flow.forward_packets, flow.forward_bytes) == (2, 100)
    assert (flow.backward_packets, flow.backward_bytes) == (1, 1500)
    assert (flow.packets, flow.bytes) == (3, 1600)
    assert flow.label == "web"  # the first labelled frame names the flow


def test_distinct_ports_are_distinct_flows() -> None:
    table = FlowTable()
    table.add(FiveTuple(17, A, 1, B, 53), 0, 10)
    table.add(FiveTuple(17, A, 2, B, 53), 0, 10)
    table.add(FiveTuple(6, A, 1, B, 53), 0, 10)
    assert len(table) == 3
    assert FiveTuple(17, A, 1, B, 53).canonical() == FiveTuple(17, B, 53, A, 1).canonical()
    assert FiveTuple(6, A, 1, B, 53).text() == ("6", "192.0.2.1", "1", "198.51.100.7", "53")
