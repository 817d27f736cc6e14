"""Transport headers: TCP, UDP, ICMP, ICMPv6 (with the address fields of neighbour discovery)."""

from __future__ import annotations

import struct
from collections.abc import Callable

from anontrace.packet.layers import Builder, Checksum, Name, Prefix, enter

TCP, UDP, ICMP, ICMPV6 = 6, 17, 1, 58
ICMP_ERRORS = frozenset({3, 4, 5, 11, 12})  # their bodies quote another packet
ICMPV6_ERRORS = frozenset({1, 2, 3, 4})
ROUTER_ADVERTISEMENT = 9
MLD = frozenset({130, 131, 132})  # query, report, done: one multicast address
MLD2_REPORT = 143
# ICMPv6 neighbour discovery: type -> (offsets of addresses after the 4-byte header, where options start)
NEIGHBOUR_DISCOVERY = {133: ((), 8), 134: ((), 16), 135: ((8,), 24), 136: ((8,), 24), 137: ((8, 24), 40)}

Pseudo = tuple[int, ...]
TransportParser = Callable[[Builder, int, Pseudo, int], None]
# What a TCP or UDP port announces: parser(builder, first byte of its data, end of the datagram).
AppParser = Callable[[Builder, int, int], None]
# IP version -> network parser, for quoted packets; filled by `network` (which imports this module).
QUOTED: dict[int, Callable[[Builder, int], None]] = {}
UDP_PORTS: dict[int, AppParser] = {}  # filled by `dissect`, which knows every protocol module
TCP_PORTS: dict[int, AppParser] = {}


def _application(b: Builder, table: dict[int, AppParser], offset: int) -> None:
    """Dissect the data after a TCP or UDP header by its ports, the lower (well-known) one first."""
    if b.payload >= b.end:
        return
    ports = sorted(struct.unpack_from("!HH", b.data, offset))
    parser = table.get(ports[0]) or table.get(ports[1])
    if parser is not None:
        parser(b, b.payload, b.end)


def tcp(b: Builder, offset: int, pseudo: Pseudo, size: int) -> None:
    b.header("tcp", offset)
    data_end = b.end
    b.checksums.append(Checksum(offset + 16, offset, data_end, pseudo, size))
    if data_end - offset < 20:
        b.payload = data_end  # header cut short by the snap length: what is there is understood
        return
    header = (b.data[offset + 12] >> 4) * 4
    if header < 20:
        b.stop(offset, f"TCP data offset {header} is shorter than a TCP header")
        return
    b.payload = min(offset + header, data_end)
    _application(b, TCP_PORTS, offset)


def udp(b: Builder, offset: int, pseudo: Pseudo, size: int) -> None:
    b.header("udp", offset)
    b.checksums.append(Checksum(offset + 6, offset, b.end, pseudo, size, zero_is_none=True))
    b.payload = min(offset + 8, b.end)
    if b.end - offset >= 8:
        _application(b, UDP_PORTS, offset)


def icmp(b: Builder, offset: int, pseudo: Pseudo, size: int) -> None:
    b.header("icmp", offset)
    b.checksums.append(Checksum(offset + 2, offset, b.end))
    if b.end - offset < 8:
        b.payload = b.end
        return
    kind = b.data[offset]
    if kind == 5:
        b.ipv4.append(offset + 4)  # redirect: the gateway's address
    if kind in ICMP_ERRORS:
        _quoted(b, offset + 8, f"ICMP type {kind}")
        return
    if kind == ROUTER_ADVERTISEMENT:
        _router_advertisement(b, offset)
        return
    b.payload = offset + 8


def _quoted(b: Builder, offset: int, what: str) -> None:
    """The packet an ICMP error quotes: an IP header and the start of its data, dissected (and so
    rewritten) like any packet; its own checksums are updated before the ICMP one."""
    if offset >= b.end:
        b.payload = b.end
        return
    parser = QUOTED.get(b.data[offset] >> 4)
    if parser is None:
        b.stop(offset, f"{what} quoted packet not IP")
        return
    if enter(b, offset, f"{what} quoted packet"):
        b.quoted = True
        parser(b, offset)


def _router_advertisement(b: Builder, offset: int) -> None:
    """ICMP router advertisement (RFC 1256): a list of router addresses and preferences."""
    count, words = b.data[offset + 4], b.data[offset + 5]
    end = offset + 8 + count * words * 4
    if words < 2 or end > b.end:
        b.stop(offset + 8, "ICMP router advertisement malformed or cut short")
        return
    b.ipv4 += range(offset + 8, end, words * 4)
    b.payload = end


def icmpv6(b: Builder, offset: int, pseudo: Pseudo, size: int) -> None:
    b.header("icmpv6", offset)
    b.checksums.append(Checksum(offset + 2, offset, b.end, pseudo, size))
    if b.end - offset < 4:
        b.payload = b.end
        return
    kind = b.data[offset]
    if kind in ICMPV6_ERRORS:
        if b.end - offset < 8:
            b.payload = b.end
            return
        _quoted(b, offset + 8, f"ICMPv6 type {kind}")
        return
    if kind in MLD:
        _fixed_addresses(b, offset, kind, (8,), 24)
        return
    if kind == MLD2_REPORT:
        _mld2_report(b, offset)
        return
    layout = NEIGHBOUR_DISCOVERY.get(kind)
    if layout is None:
        b.payload = min(offset + 8, b.end)
        return
    addresses, options = layout
    if _fixed_addresses(b, offset, kind, addresses, options):
        _nd_options(b, offset + options, kind)


def _fixed_addresses(b: Builder, offset: int, kind: int, fields: tuple[int, ...], end: int) -> bool:
    for field in fields:
        if offset + field + 16 > b.end:
            b.stop(offset + field, f"ICMPv6 type {kind} cut inside an address")
            return False
        b.ipv6.append(offset + field)
    b.payload = min(offset + end, b.end)
    return True


def _mld2_report(b: Builder, offset: int) -> None:
    """MLDv2 report: multicast address records, each with the unicast sources it names."""
    data, end = b.data, b.end
    if end - offset < 8:
        b.payload = end
        return
    position = offset + 8
    for _ in range(int.from_bytes(data[offset + 6:offset + 8], "big")):
        if end - position < 20:
            b.stop(position, "MLDv2 record cut short")
            return
        aux, sources = data[position + 1], int.from_bytes(data[position + 2:position + 4], "big")
        record_end = position + 20 + 16 * sources
        if record_end > end:
            b.stop(position, "MLDv2 record cut short")
            return
        if aux:
            b.stop(position, "MLDv2 auxiliary data not dissected")
            return
        b.ipv6 += range(position + 4, record_end, 16)
        position = record_end
    b.payload = position


def _nd_options(b: Builder, position: int, kind: int) -> None:
    """Neighbour-discovery options: link-layer addresses, prefixes, DNS servers and search lists,
    the redirected packet; any other option ends what is kept."""
    data, end = b.data, b.end
    while position < end:
        if end - position < 8:
            b.stop(position, "ICMPv6 option cut short")
            return
        option, units = data[position], data[position + 1]
        size = units * 8
        if not size or position + size > end:
            b.stop(position, "ICMPv6 option length bad or cut short")
            return
        if option in (1, 2) and units == 1:  # source/target link-layer address (Ethernet)
            b.macs.append(position + 2)
        elif option == 3 and units == 4 and data[position + 2] <= 128:  # prefix information
            b.prefixes.append(Prefix(position + 16, 16, 16, data[position + 2]))
        elif option == 24 and 1 <= units <= 3 and data[position + 2] <= 128:  # route information
            b.prefixes.append(Prefix(position + 8, size - 8, 16, data[position + 2]))
        elif option == 25 and units % 2 == 1 and units >= 3:  # recursive DNS servers
            b.ipv6 += range(position + 8, position + size, 16)
        elif option == 31 and units >= 2:  # DNS search list
            if not _search_list(b, position + 8, position + size):
                return
        elif option == 4:  # redirected header: the packet that caused the redirect
            _quoted(b, position + 8, f"ICMPv6 type {kind} redirected")
            return
        elif option not in (5, 14):  # MTU and nonce carry nothing identifying
            b.stop(position, f"ICMPv6 option {option} not dissected")
            return
        position += size
    b.payload = position


def _search_list(b: Builder, position: int, end: int) -> bool:
    """Uncompressed DNS names padded with zeros; False (and the frame cut) when malformed."""
    data = b.data
    while position < end and data[position]:
        start = position
        while position < end and data[position]:
            length = data[position]
            if length > 63:
                b.stop(start, "ICMPv6 DNS search list malformed")
                return False
            position += 1 + length
        if position >= end:
            b.stop(start, "ICMPv6 DNS search list malformed")
            return False
        position += 1
        b.names.append(Name(start, position, start))
    if any(data[position:end]):
        b.stop(position, "ICMPv6 DNS search list padding not zero")
        return False
    return True


TRANSPORTS: dict[int, TransportParser] = {TCP: tcp, UDP: udp, ICMP: icmp}
TRANSPORTS_V6: dict[int, TransportParser] = {TCP: tcp, UDP: udp, ICMPV6: icmpv6}

