"""`when:` filters match on the ORIGINAL frame: protocol, port, network and direction."""

from __future__ import annotations

import ipaddress

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether

from anontrace.packet.dissect import dissect
from anontrace.rules.filters import Filter

N = ipaddress.ip_network
TCP_OUT = bytes(Ether() / IP(src="10.1.2.3", dst="192.0.2.9") / TCP(sport=40000, dport=443))
UDP_IN = bytes(Ether() / IP(src="192.0.2.9", dst="10.1.2.3") / UDP(sport=53, dport=40001))
V6 = bytes(Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=1, dport=22))
ARP_FRAME = bytes(Ether() / ARP(psrc="10.1.2.3"))
QUOTE = bytes(Ether() / IP(src="192.0.2.1", dst="10.1.2.3") / ICMP(type=3)
              / IP(src="10.1.2.3", dst="192.0.2.9") / UDP(sport=40002, dport=53))


def matches(condition: Filter, frame: bytes) -> bool:
    return condition.matches(frame, dissect(frame, 1))


def test_protocols() -> None:
    assert matches(Filter(protocols=("tcp",)), TCP_OUT) and not matches(Filter(protocols=("tcp",)), UDP_IN)
    assert matches(Filter(protocols=("udp", "tcp")), UDP_IN)
    assert matches(Filter(protocols=("ipv6",)), V6) and not matches(Filter(protocols=("ipv6",)), TCP_OUT)
    assert matches(Filter(protocols=("arp",)), ARP_FRAME)


def test_ports_either_end_but_not_inside_an_icmp_quote() -> None:
    assert matches(Filter(ports=(443,)), TCP_OUT) and matches(Filter(ports=(40000,)), TCP_OUT)
    assert matches(Filter(ports=(53,)), UDP_IN) and not matches(Filter(ports=(80,)), TCP_OUT)
    assert not matches(Filter(ports=(53,)), QUOTE)


def test_networks_and_direction() -> None:
    inside = (N("10.0.0.0/8"),)
    assert matches(Filter(networks=inside), TCP_OUT) and matches(Filter(networks=inside), UDP_IN)
    assert matches(Filter(networks=inside, direction="outbound"), TCP_OUT)
    assert not matches(Filter(networks=inside, direction="outbound"), UDP_IN)
    assert matches(Filter(networks=inside, direction="inbound"), UDP_IN)
    assert not matches(Filter(networks=inside), V6) and not matches(Filter(networks=inside), ARP_FRAME)


def test_all_conditions_must_hold() -> None:
    assert matches(Filter(protocols=("udp",), ports=(53,), networks=(N("10.0.0.0/8"),)), UDP_IN)
    assert not matches(Filter(protocols=("tcp",), ports=(53,)), UDP_IN)
