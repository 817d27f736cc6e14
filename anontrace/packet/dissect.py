"""Dissection: from a frame's bytes and link type to `Layers`, never copying the bytes.

Dispatch is by tables: link type -> link parser, ethertype -> network parser (`network.NETWORKS`),
IP protocol -> transport parser (`transport.TRANSPORTS`). Whatever no table knows ends the
dissection there, with the reason recorded, and is never kept.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from anontrace.packet import dhcp, dns, tunnel, wlan
from anontrace.packet.layers import Builder, Layers
from anontrace.packet.link import ethernet, ethertype
from anontrace.packet.linktypes import linktype_name
from anontrace.packet.network import IPV4, IPV6, NETWORKS, ipv4, ipv6
from anontrace.packet.transport import TCP_PORTS, TRANSPORTS, TRANSPORTS_V6, UDP_PORTS

# Link types not dissected whose readers refuse a record shorter than their fixed pseudo-header;
# the pseudo-header (direction, circuit numbers) is kept so the frame stays readable.
PSEUDO_HEADERS = {123: 4}  # SunATM: flags/direction, VPI, VCI
# BSD loopback address families: 2 is IPv4 everywhere; IPv6 differs between the BSDs.
LOOPBACK_FAMILIES = {2: IPV4, 24: IPV6, 28: IPV6, 30: IPV6}


def linux_sll(b: Builder) -> None:
    if len(b.data) < 16:
        b.stop(0, "Linux cooked header cut short")
        return
    if _cooked_address(b, struct.unpack_from("!H", b.data, 4)[0], 6):
        _cooked(b, 16, struct.unpack_from("!H", b.data, 14)[0])


def linux_sll2(b: Builder) -> None:
    if len(b.data) < 20:
        b.stop(0, "Linux cooked v2 header cut short")
        return
    if _cooked_address(b, b.data[11], 12):
        _cooked(b, 20, struct.unpack_from("!H", b.data, 0)[0])


def _cooked_address(b: Builder, length: int, offset: int) -> bool:
    """The cooked header's link-layer address: a MAC, or nothing; any other kind is not kept."""
    if length == 6:
        b.macs.append(offset)
    elif length:
        b.stop(0, f"Linux cooked link-layer address of {length} bytes not dissected")
        return False
    return True


def _cooked(b: Builder, offset: int, protocol: int) -> None:
    if protocol < 0x0600:
        b.stop(offset, f"Linux cooked protocol 0x{protocol:04x} not dissected")
        return
    ethertype(b, offset, protocol)


def raw_ip(b: Builder) -> None:
    if not b.data:
        return
    version = b.data[0] >> 4
    if version == 4:
        ipv4(b, 0)
    elif version == 6:
        ipv6(b, 0)
    else:
        b.stop(0, f"raw packet of IP version {version}")


def _family(b: Builder, family: int) -> None:
    kind = LOOPBACK_FAMILIES.get(family)
    if kind is None:
        b.stop(4, f"loopback address family {family} not dissected")
        return
    NETWORKS[kind](b, 4)


def bsd_null(b: Builder) -> None:
    if len(b.data) < 4:
        b.stop(0, "loopback header cut short")
        return
    family = struct.unpack_from("<I", b.data)[0]
    if family > 0xFFFF:  # written by a big-endian host
        family = struct.unpack_from(">I", b.data)[0]
    _family(b, family)


def bsd_loop(b: Builder) -> None:
    if len(b.data) < 4:
        b.stop(0, "loopback header cut short")
        return
    _family(b, struct.unpack_from(">I", b.data)[0])


LINKS: dict[int, Callable[[Builder], None]] = {
    0: bsd_null, 1: ethernet, 12: raw_ip, 14: raw_ip, 101: raw_ip, 108: bsd_loop,
    113: linux_sll, 228: lambda b: ipv4(b, 0), 229: lambda b: ipv6(b, 0), 276: linux_sll2,
}

# Protocol modules declare what they parse in tables of the same shapes; they are joined here,
# the one module that knows them all, so none of them imports another's tables.
for _module in (tunnel, dns, dhcp, wlan):
    LINKS.update(_module.LINKS)
    NETWORKS.update(_module.ETHERTYPES)
    TRANSPORTS.update(_module.IP_PROTOCOLS)
    TRANSPORTS_V6.update(_module.IP_PROTOCOLS)
    UDP_PORTS.update(_module.UDP_PORTS)
    TCP_PORTS.update(_module.TCP_PORTS)


def dissect(data: bytes, linktype: int) -> Layers:
    """Find the layers of one frame; never raises, whatever the bytes."""
    b = Builder(data)
    parser = LINKS.get(linktype)
    if parser is None:
        b.stop(min(PSEUDO_HEADERS.get(linktype, 0), len(data)),
               f"link type {linktype_name(linktype)} not dissected")
    else:
        parser(b)
    return b.freeze()
