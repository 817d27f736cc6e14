"""The traces the residual, search and metadata tests share: an original trace holding every
identifier the planted leaks use (and some kept ones), and an anonymized trace with one leak
planted per frame, each with the one finding it must give."""

from __future__ import annotations

import ipaddress

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from anontrace.leakage.residual import IdentifierCollector
from anontrace.transforms.names import NamesConfig
from tests.helpers import make_batch

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


def collector_of(packets: list[Packet], names: NamesConfig | None = None) -> IdentifierCollector:
    collector = IdentifierCollector(names)
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
