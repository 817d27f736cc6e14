"""Network headers: IPv4 (with options), IPv6 (with extension headers), ARP; fragments."""

from __future__ import annotations

import struct
from collections.abc import Callable

from anontrace.packet.layers import Builder, Checksum
from anontrace.packet.transport import QUOTED, TRANSPORTS, TRANSPORTS_V6

IPV4, IPV6, ARP = 0x0800, 0x86DD, 0x0806
ROUTE_OPTIONS = frozenset({7, 131, 137})  # record route, loose and strict source route
SOURCE_ROUTES = frozenset({131, 137})
TIMESTAMP_OPTION = 68
EXTENSION_HEADERS = frozenset({0, 43, 60, 135, 139, 140})  # sized as (length + 1) * 8
HOP_BY_HOP, ROUTING, FRAGMENT, AUTHENTICATION, NO_NEXT, DESTINATION = 0, 43, 44, 51, 59, 60
HOME_ADDRESS_OPTION = 0xC9
MAX_EXTENSION_HEADERS = 16

_ipv4_fixed = struct.Struct("!BBHHHBBH").unpack_from
_ipv6_fixed = struct.Struct("!IHBB").unpack_from


def ipv4(b: Builder, offset: int) -> None:
    data = b.data
    b.network, b.ethertype = offset, IPV4
    if b.end - offset < 20:
        b.stop(offset, "IPv4 header cut short")
        return
    b.header("ipv4", offset)
    version_ihl, _, total, _, fragment, _, protocol, _ = _ipv4_fixed(data, offset)
    header = (version_ihl & 0x0F) * 4
    if version_ihl >> 4 != 4 or header < 20:
        b.stop(offset, f"bad IPv4 version/header length 0x{version_ihl:02x}")
        return
    if total == 0:
        total = len(data) - offset  # segmentation offload: the stack left the length unset
    if total < header:
        b.stop(offset, f"IPv4 total length {total} is shorter than its header")
        return
    b.end = min(offset + total, b.end)
    b.checksums.append(Checksum(offset + 10, offset, offset + header))
    b.ipv4 += (offset + 12, offset + 16)
    if b.end < offset + header:
        b.stop(offset + 20, "IPv4 options cut short")
        return
    destination = _ipv4_options(b, offset + 20, offset + header)
    if destination < 0:
        return
    start = offset + header
    b.payload = start
    if fragment & 0x1FFF:
        return  # a later fragment: no transport header, the data is opaque
    _transport(b, TRANSPORTS, protocol, start, (offset + 12, destination), 4)


def _ipv4_options(b: Builder, pos: int, end: int) -> int:
    """Note addresses held in options; return the pseudo-header destination's offset, or -1."""
    data = b.data
    destination = pos - 4
    while pos < end:
        kind = data[pos]
        if kind == 0:
            break
        if kind == 1:
            pos += 1
            continue
        length = data[pos + 1] if pos + 1 < end else 0
        if length < 2 or pos + length > end:
            b.stop(pos, f"malformed IPv4 option {kind}")
            return -1
        if kind in ROUTE_OPTIONS and length >= 3:
            slots = list(range(pos + 3, pos + length - 3, 4))
            b.ipv4 += slots
            if kind in SOURCE_ROUTES and slots:
                destination = slots[-1]  # TCP/UDP checksums use the route's final destination
        elif kind == TIMESTAMP_OPTION and length >= 4 and data[pos + 3] & 0x0F in (1, 3):
            b.ipv4 += range(pos + 4, pos + length - 7, 8)
        pos += length
    return destination


def ipv6(b: Builder, offset: int) -> None:
    data = b.data
    b.network, b.ethertype = offset, IPV6
    if b.end - offset < 40:
        b.stop(offset, "IPv6 header cut short")
        return
    b.header("ipv6", offset)
    first, length, next_header, _ = _ipv6_fixed(data, offset)
    if first >> 28 != 6:
        b.stop(offset, f"bad IPv6 version {first >> 28}")
        return
    b.ipv6 += (offset + 8, offset + 24)
    if length or next_header != HOP_BY_HOP:
        b.end = min(offset + 40 + length, b.end)  # length 0 with hop-by-hop: a jumbogram
    source, destination = offset + 8, offset + 24
    pos = offset + 40
    for _ in range(MAX_EXTENSION_HEADERS):
        if next_header not in EXTENSION_HEADERS and next_header not in (FRAGMENT, AUTHENTICATION):
            break
        if b.end - pos < 8:
            b.stop(pos, f"IPv6 extension header {next_header} cut short")
            return
        if next_header == FRAGMENT:
            size = 8
        elif next_header == AUTHENTICATION:
            size = (data[pos + 1] + 2) * 4
        else:
            size = (data[pos + 1] + 1) * 8
        if pos + size > b.end:
            b.stop(pos, f"IPv6 extension header {next_header} cut short")
            return
        if next_header == ROUTING:
            destination = _routing(b, pos, size, destination)
        elif next_header == DESTINATION:
            source = _home_address(b, pos, size, source)
        elif next_header == FRAGMENT and struct.unpack_from("!H", data, pos + 2)[0] & 0xFFF8:
            b.payload = pos + size
            return  # a later fragment: the data is opaque
        elif next_header in (135, 139, 140):
            b.stop(pos, f"IPv6 extension header {next_header} not dissected")
            return
        if destination < 0:
            return
        next_header = data[pos]
        pos += size
    else:
        b.stop(pos, "too many IPv6 extension headers")
        return
    b.payload = pos
    if next_header == NO_NEXT:
        b.stop(pos, "data after IPv6 no-next-header")
        return
    _transport(b, TRANSPORTS_V6, next_header, pos, (source, destination), 16)


def _routing(b: Builder, pos: int, size: int, destination: int) -> int:
    """Note a routing header's addresses; return the pseudo-header destination's offset, or -1."""
    kind, segments_left = b.data[pos + 2], b.data[pos + 3]
    if kind in (0, 2):
        slots = list(range(pos + 8, pos + size - 15, 16))
        final = slots[-1] if slots else destination
    elif kind == 4:
        count = b.data[pos + 4] + 1
        slots = list(range(pos + 8, min(pos + 8 + 16 * count, pos + size) - 15, 16))
        final = slots[0] if slots else destination
        if pos + 8 + 16 * count < pos + size:  # TLVs after the segments (HMAC, padding, ...)
            b.ipv6 += slots
            b.stop(pos + 8 + 16 * count, "IPv6 segment routing TLVs not dissected")
            return -1
    else:
        b.stop(pos, f"IPv6 routing header type {kind} not dissected")
        return -1
    b.ipv6 += slots
    return final if segments_left else destination


def _home_address(b: Builder, pos: int, size: int, source: int) -> int:
    """Note a Mobile IPv6 home address option; the checksum pseudo-header then uses it as source."""
    data, option, end = b.data, pos + 2, pos + size
    while option < end:
        kind = data[option]
        if kind == 0:
            option += 1
            continue
        if option + 1 >= end:
            break
        length = data[option + 1]
        if kind == HOME_ADDRESS_OPTION and length == 16 and option + 18 <= end:
            b.ipv6.append(option + 2)
            source = option + 2
        option += 2 + length
    return source


def _transport(b: Builder, table: dict[int, Callable[[Builder, int, tuple[int, ...], int], None]],
               protocol: int, offset: int, pseudo: tuple[int, ...], size: int) -> None:
    parser = table.get(protocol)
    b.protocol = protocol
    if parser is None:
        b.stop(offset, f"IP protocol {protocol} not dissected")
        return
    b.transport = offset
    parser(b, offset, pseudo, size)


def arp(b: Builder, offset: int) -> None:
    data = b.data
    b.network, b.ethertype = offset, ARP
    if b.end - offset < 8:
        b.stop(offset, "ARP header cut short")
        return
    _, protocol, hardware_size, protocol_size, _ = struct.unpack_from("!HHBBH", data, offset)
    end = offset + 8 + 2 * (hardware_size + protocol_size)
    if protocol != IPV4:
        b.stop(offset + 8, f"ARP for protocol 0x{protocol:04x} not dissected")
        return
    if protocol_size != 4:
        b.stop(offset + 8, f"ARP IPv4 address size {protocol_size} not dissected")
        return
    if hardware_size != 6:
        b.stop(offset + 8, f"ARP hardware address size {hardware_size} not dissected")
        return
    if end > b.end:
        b.stop(offset, "ARP message cut short")
        return
    b.ipv4 += (offset + 8 + hardware_size, offset + 8 + 2 * hardware_size + 4)
    b.macs += (offset + 8, offset + 8 + 6 + 4)  # sender and target hardware addresses
    b.end = min(end, b.end)
    b.payload = end


NETWORKS: dict[int, Callable[[Builder, int], None]] = {IPV4: ipv4, IPV6: ipv6, ARP: arp}
QUOTED.update({4: ipv4, 6: ipv6})
