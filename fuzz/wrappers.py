"""Frames built around fuzzed bytes so they land in one protocol parser, and the reverse for seeds.

Each `Wrapper` puts the bytes where its parser reads them: a UDP or TCP payload on the port that
selects it, an IP payload with its protocol number, an Ethernet payload with its ethertype, or a
whole frame of an 802.11 link type. Length fields of the wrapper headers are set from the bytes
given; checksums are left at 0 (the dissector never checks them). `payload_of` finds, in a real
frame, the bytes a wrapper would carry, so captured traffic can seed the protocol target.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass

from anontrace.packet.layers import Layers

MACS = bytes.fromhex("020000000002" "020000000001")  # destination, source: locally administered
IPV4_SOURCE = ipaddress.IPv4Address("192.168.1.7").packed
IPV4_DESTINATION = ipaddress.IPv4Address("10.1.2.3").packed
IPV6_SOURCE = ipaddress.IPv6Address("2001:db8:1::7").packed
IPV6_DESTINATION = ipaddress.IPv6Address("2001:db8::3").packed
EPHEMERAL = 40000  # the other port: above every port a parser is registered on


def ethernet(ethertype: int, body: bytes) -> bytes:
    return MACS + struct.pack("!H", ethertype) + body


def ipv4(protocol: int, body: bytes) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, (20 + len(body)) & 0xFFFF, 1, 0, 64, protocol, 0,
                         IPV4_SOURCE, IPV4_DESTINATION)
    return ethernet(0x0800, header + body)


def ipv6(next_header: int, body: bytes) -> bytes:
    header = struct.pack("!IHBB16s16s", 0x60000000, len(body) & 0xFFFF, next_header, 64,
                         IPV6_SOURCE, IPV6_DESTINATION)
    return ethernet(0x86DD, header + body)


def udp(port: int, body: bytes) -> bytes:
    return struct.pack("!HHHH", EPHEMERAL, port, (8 + len(body)) & 0xFFFF, 0) + body


def tcp(port: int, body: bytes) -> bytes:
    return struct.pack("!HHIIBBHHH", EPHEMERAL, port, 1, 0, 0x50, 0x18, 65535, 0, 0) + body


@dataclass(frozen=True, slots=True)
class Wrapper:
    """How fuzzed bytes become a frame reaching one parser; `linktype` is the frame's."""

    name: str
    build: Callable[[bytes], bytes]
    linktype: int = 1


def _udp4(port: int) -> Callable[[bytes], bytes]:
    return lambda body: ipv4(17, udp(port, body))


def _udp6(port: int) -> Callable[[bytes], bytes]:
    return lambda body: ipv6(17, udp(port, body))


def _ip4(protocol: int) -> Callable[[bytes], bytes]:
    return lambda body: ipv4(protocol, body)


def _ether(kind: int) -> Callable[[bytes], bytes]:
    return lambda body: ethernet(kind, body)


WRAPPERS: tuple[Wrapper, ...] = (
    Wrapper("dns-udp", _udp4(53)),
    Wrapper("dns-tcp", lambda body: ipv4(6, tcp(53, body))),
    Wrapper("mdns-ipv6", _udp6(5353)),
    Wrapper("llmnr", _udp4(5355)),
    Wrapper("dhcp", _udp4(67)),
    Wrapper("dhcpv6", _udp6(547)),
    Wrapper("icmp", _ip4(1)),
    Wrapper("icmpv6", lambda body: ipv6(58, body)),
    Wrapper("gre", _ip4(47)),
    Wrapper("ip-in-ip", _ip4(4)),
    Wrapper("ipv6-in-ip", _ip4(41)),
    Wrapper("gre-over-ipv6", lambda body: ipv6(47, body)),
    Wrapper("vxlan", _udp4(4789)),
    Wrapper("vxlan-gpe", _udp4(4790)),
    Wrapper("geneve", _udp6(6081)),
    Wrapper("mpls-in-udp", _udp4(6635)),
    Wrapper("mpls", _ether(0x8847)),
    Wrapper("pppoe-session", _ether(0x8864)),
    Wrapper("pppoe-discovery", _ether(0x8863)),
    Wrapper("802.11", lambda body: body, 105),
    Wrapper("radiotap", lambda body: body, 127),
    Wrapper("ppi", lambda body: body, 192),
)
BY_NAME = {w.name: w for w in WRAPPERS}
# What in a real frame selects each wrapper's parser: (header kind, port or protocol) -> wrapper.
UDP_PORTS = {53: "dns-udp", 5353: "mdns-ipv6", 5355: "llmnr", 67: "dhcp", 68: "dhcp", 546: "dhcpv6",
             547: "dhcpv6", 4789: "vxlan", 4790: "vxlan-gpe", 6081: "geneve", 6635: "mpls-in-udp"}
IP_PROTOCOLS = {1: "icmp", 58: "icmpv6", 47: "gre", 4: "ip-in-ip", 41: "ipv6-in-ip"}
ETHERTYPES = {0x8847: "mpls", 0x8848: "mpls", 0x8864: "pppoe-session", 0x8863: "pppoe-discovery"}
LINKTYPES = {105: "802.11", 127: "radiotap", 192: "ppi"}


def payloads_of(data: bytes, linktype: int, layers: Layers) -> list[tuple[str, bytes]]:
    """(wrapper name, the bytes it would carry) for every parser a real frame reaches."""
    if linktype in LINKTYPES:
        return [(LINKTYPES[linktype], data)]
    found: list[tuple[str, bytes]] = []
    if linktype == 1 and len(data) >= 14:
        kind = struct.unpack_from("!H", data, 12)[0]
        if kind in ETHERTYPES:
            found.append((ETHERTYPES[kind], data[14:]))
    for header in layers.headers:
        at = header.offset
        if header.kind == "ipv4" and len(data) >= at + 20:
            protocol, size = data[at + 9], (data[at] & 0x0F) * 4
            if protocol in IP_PROTOCOLS:
                found.append((IP_PROTOCOLS[protocol], data[at + size:]))
        elif header.kind == "ipv6" and len(data) >= at + 40 and data[at + 6] in IP_PROTOCOLS:
            found.append((IP_PROTOCOLS[data[at + 6]], data[at + 40:]))
        elif header.kind == "udp" and len(data) >= at + 8:
            ports = sorted(struct.unpack_from("!HH", data, at))
            name = next((UDP_PORTS[p] for p in ports if p in UDP_PORTS), None)
            if name is not None:
                found.append((name, data[at + 8:]))
        elif header.kind == "tcp" and len(data) >= at + 20 and 53 in struct.unpack_from("!HH", data, at):
            found.append(("dns-tcp", data[at + (data[at + 12] >> 4) * 4:]))
    return found
