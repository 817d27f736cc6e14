"""Tunnels: IP-in-IP, GRE (with ERSPAN and PPTP), VXLAN, VXLAN-GPE, Geneve, MPLS, PPPoE.

Each tunnel enters the frame it carries through `link.enter`, so the inner addresses and MACs are
found (and rewritten) like the outer ones, and nesting deeper than `link.MAX_DEPTH` is cut.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from anontrace.packet import link, network
from anontrace.packet.layers import Builder, Checksum
from anontrace.packet.transport import AppParser, Pseudo, TransportParser

BRIDGED_ETHERNET, ERSPAN_II, ERSPAN_III, PPP_IN_GRE = 0x6558, 0x88BE, 0x22EB, 0x880B
# GRE flags: checksum, routing, key, sequence, acknowledgement (PPTP); each present field is 4 bytes
GRE_CHECKSUM, GRE_ROUTING, GRE_KEY, GRE_SEQUENCE, GRE_ACK = 0x8000, 0x4000, 0x2000, 0x1000, 0x0080
GRE_FIELDS = (GRE_CHECKSUM, GRE_KEY, GRE_SEQUENCE, GRE_ACK)
GRE_VERSION = 0x0007
# flags each GRE version may set (RFC 2784/2890; RFC 2637 for PPTP, whose key field is mandatory)
GRE_ALLOWED = {0: GRE_CHECKSUM | GRE_KEY | GRE_SEQUENCE, 1: GRE_KEY | GRE_SEQUENCE | GRE_ACK}
PPP_ADDRESS_CONTROL = b"\xff\x03"
MPLS_BOTTOM_OF_STACK = 0x01  # in the third byte of a label stack entry
MAX_MPLS_LABELS = 16
PPPOE_VERSION_TYPE = 0x11
VXLAN_INSTANCE = 0x08
# VXLAN-GPE flags: reserved (0xC0) and version (0x30) must be clear, next protocol (0x04) set
GPE_CHECKED, GPE_NEXT_PROTOCOL = 0xF4, 0x04

_short = struct.Struct("!H").unpack_from
_two_shorts = struct.Struct("!HH").unpack_from


def ip_in_ip(b: Builder, offset: int, pseudo: Pseudo, size: int) -> None:
    if link.enter(b, offset, "IP-in-IP"):
        network.ipv4(b, offset)


def ipv6_in_ip(b: Builder, offset: int, pseudo: Pseudo, size: int) -> None:
    if link.enter(b, offset, "IPv6-in-IP"):
        network.ipv6(b, offset)


def gre(b: Builder, offset: int, pseudo: Pseudo, size: int) -> None:
    """A GRE header (version 0, or PPTP's version 1) and the frame it carries."""
    if b.end - offset < 4:
        b.stop(offset, "GRE header cut short")
        return
    flags, protocol = _two_shorts(b.data, offset)
    version = flags & GRE_VERSION
    allowed = GRE_ALLOWED.get(version)
    if allowed is None:
        b.stop(offset, f"GRE version {version} not dissected")
        return
    if flags & ~allowed & ~GRE_VERSION or (version == 1 and not flags & GRE_KEY):
        reason = "GRE version 1 flags not dissected" if version else "GRE routing or reserved flags set"
        b.stop(offset, reason)
        return
    pos = offset + 4 + 4 * sum(1 for field in GRE_FIELDS if flags & field)
    if b.end < pos:
        b.stop(offset, "GRE header cut short")
        return
    if flags & GRE_CHECKSUM:
        b.checksums.append(Checksum(offset + 4, offset, b.end))
    b.payload = pos
    if not link.enter(b, pos, "GRE"):
        return
    if version == 1:
        _pptp(b, offset, pos, protocol)
    elif protocol == ERSPAN_II and not flags & GRE_SEQUENCE:
        link.ethernet(b, pos)  # ERSPAN type I: no sequence number and no ERSPAN header
    else:
        parser = GRE_PROTOCOLS.get(protocol)
        if parser is None:
            link.ethertype(b, pos, protocol)
        else:
            parser(b, pos)


def _pptp(b: Builder, offset: int, pos: int, protocol: int) -> None:
    """PPTP's enhanced GRE: the key field holds the payload length (and the call id)."""
    if protocol != PPP_IN_GRE:
        b.stop(pos, f"GRE version 1 protocol 0x{protocol:04x} not dissected")
        return
    b.end = min(b.end, pos + _short(b.data, offset + 4)[0])
    if pos < b.end:
        ppp(b, pos)


def erspan_ii(b: Builder, offset: int) -> None:
    """An ERSPAN type II header (8 bytes, version 1) and the mirrored Ethernet frame."""
    if b.end - offset < 8:
        b.stop(offset, "ERSPAN header cut short")
        return
    version = b.data[offset] >> 4
    if version != 1:
        b.stop(offset, f"ERSPAN type II version {version} not dissected")
        return
    link.ethernet(b, offset + 8)


def erspan_iii(b: Builder, offset: int) -> None:
    """An ERSPAN type III header (12 bytes, version 2), its optional platform-specific subheader
    (8 bytes, when the O flag is set) and the mirrored Ethernet frame."""
    if b.end - offset < 12:
        b.stop(offset, "ERSPAN header cut short")
        return
    version = b.data[offset] >> 4
    if version != 2:
        b.stop(offset, f"ERSPAN type III version {version} not dissected")
        return
    last = _short(b.data, offset + 10)[0]  # P, frame type (5 bits), hardware id, D, Gra, O
    frame_type = (last >> 10) & 0x1F
    if frame_type:
        b.stop(offset, f"ERSPAN type III frame type {frame_type} not dissected")
        return
    start = offset + (20 if last & 1 else 12)
    if b.end < start:
        b.stop(offset, "ERSPAN header cut short")
        return
    link.ethernet(b, start)


def ppp(b: Builder, offset: int) -> None:
    """A PPP frame's protocol field, after the address and control bytes if they are there
    (1 byte when protocol-field compression made it odd), and the IP packet it announces."""
    data, pos = b.data, offset
    if data[pos:pos + 2] == PPP_ADDRESS_CONTROL and pos + 2 <= b.end:
        pos += 2
    size = 1 if pos < b.end and data[pos] & 1 else 2
    if b.end - pos < size:
        b.stop(offset, "PPP protocol field cut short")
        return
    protocol = data[pos] if size == 1 else _short(data, pos)[0]
    parser = PPP_PROTOCOLS.get(protocol)
    if parser is None:
        b.stop(pos + size, f"PPP protocol 0x{protocol:04x} not dissected")
        return
    parser(b, pos + size)


def vxlan(b: Builder, offset: int, end: int) -> None:
    """A VXLAN header (RFC 7348: 8 bytes, I flag set) and the Ethernet frame it carries."""
    if end - offset < 8:
        b.stop(offset, "VXLAN header cut short")
        return
    if not b.data[offset] & VXLAN_INSTANCE:
        b.stop(offset, "VXLAN I flag not set")
        return
    b.payload = offset + 8
    if link.enter(b, offset + 8, "VXLAN"):
        link.ethernet(b, offset + 8)


def vxlan_gpe(b: Builder, offset: int, end: int) -> None:
    """A VXLAN-GPE header (8 bytes, version 0, next protocol present) and what it announces."""
    if end - offset < 8:
        b.stop(offset, "VXLAN-GPE header cut short")
        return
    if b.data[offset] & GPE_CHECKED != GPE_NEXT_PROTOCOL:
        b.stop(offset, "VXLAN-GPE version or flags not dissected")
        return
    parser = GPE_PROTOCOLS.get(b.data[offset + 3])
    if parser is None:
        b.stop(offset + 8, f"VXLAN-GPE next protocol {b.data[offset + 3]} not dissected")
        return
    b.payload = offset + 8
    if link.enter(b, offset + 8, "VXLAN-GPE"):
        parser(b, offset + 8)


def geneve(b: Builder, offset: int, end: int) -> None:
    """A Geneve header (RFC 8926, version 0) without options, and the frame its protocol announces."""
    if end - offset < 8:
        b.stop(offset, "Geneve header cut short")
        return
    first, _, protocol = struct.unpack_from("!BBH", b.data, offset)
    if first >> 6:
        b.stop(offset, f"Geneve version {first >> 6} not dissected")
        return
    if first & 0x3F:
        b.stop(offset + 8, "Geneve options not dissected")
        return
    b.payload = offset + 8
    if not link.enter(b, offset + 8, "Geneve"):
        return
    if protocol == BRIDGED_ETHERNET:
        link.ethernet(b, offset + 8)
    else:
        link.ethertype(b, offset + 8, protocol)


def mpls_in_udp(b: Builder, offset: int, end: int) -> None:
    if link.enter(b, offset, "MPLS-in-UDP"):
        mpls(b, offset)


def mpls(b: Builder, offset: int) -> None:
    """An MPLS label stack and the IP packet under it, told apart by its version nibble."""
    pos = offset
    for _ in range(MAX_MPLS_LABELS):
        if b.end - pos < 4:
            b.stop(pos, "MPLS label stack cut short")
            return
        pos += 4
        if b.data[pos - 2] & MPLS_BOTTOM_OF_STACK:
            break
    else:
        b.stop(pos, f"MPLS label stack deeper than {MAX_MPLS_LABELS}")
        return
    b.payload = pos
    if pos >= b.end:
        return
    nibble = b.data[pos] >> 4
    if nibble == 4:
        network.ipv4(b, pos)
    elif nibble == 6:
        network.ipv6(b, pos)
    elif nibble == 0:
        b.stop(pos, "MPLS pseudowire not dissected")
    else:
        b.stop(pos, f"MPLS payload of version {nibble} not dissected")


def _pppoe(b: Builder, offset: int) -> bool:
    """Check a PPPoE header and bound the frame by its length; False (and cut) when it is bad."""
    if b.end - offset < 6:
        b.stop(offset, "PPPoE header cut short")
        return False
    if b.data[offset] != PPPOE_VERSION_TYPE:
        b.stop(offset, f"PPPoE version/type 0x{b.data[offset]:02x} not dissected")
        return False
    b.end = min(b.end, offset + 6 + _short(b.data, offset + 4)[0])
    b.payload = offset + 6
    return True


def pppoe_session(b: Builder, offset: int) -> None:
    """A PPPoE session header (RFC 2516) and the PPP frame it carries."""
    if not _pppoe(b, offset):
        return
    code = b.data[offset + 1]
    if code:
        b.stop(offset + 6, f"PPPoE session code 0x{code:02x} not dissected")
        return
    if offset + 6 < b.end:
        ppp(b, offset + 6)


def pppoe_discovery(b: Builder, offset: int) -> None:
    """A PPPoE discovery header; its tags (AC-Name, Host-Uniq, ...) identify hosts and are cut."""
    if _pppoe(b, offset):
        b.stop(offset + 6, "PPPoE discovery tags not dissected")


NetworkParser = Callable[[Builder, int], None]
GRE_PROTOCOLS: dict[int, NetworkParser] = {
    BRIDGED_ETHERNET: link.ethernet, ERSPAN_II: erspan_ii, ERSPAN_III: erspan_iii,
}
PPP_PROTOCOLS: dict[int, NetworkParser] = {0x0021: network.ipv4, 0x0057: network.ipv6}
GPE_PROTOCOLS: dict[int, NetworkParser] = {1: network.ipv4, 2: network.ipv6, 3: link.ethernet, 5: mpls}

LINKS: dict[int, Callable[[Builder], None]] = {}
ETHERTYPES: dict[int, NetworkParser] = {
    0x8847: mpls, 0x8848: mpls, 0x8863: pppoe_discovery, 0x8864: pppoe_session,
}
IP_PROTOCOLS: dict[int, TransportParser] = {4: ip_in_ip, 41: ipv6_in_ip, 47: gre}
UDP_PORTS: dict[int, AppParser] = {4789: vxlan, 4790: vxlan_gpe, 6081: geneve, 6635: mpls_in_udp}
TCP_PORTS: dict[int, AppParser] = {}
