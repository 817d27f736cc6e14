"""Transport headers: TCP, UDP, ICMP, ICMPv6 (with the address fields of neighbour discovery)."""

from __future__ import annotations

import struct
from collections.abc import Callable

from anontrace.packet.layers import Builder, Checksum

TCP, UDP, ICMP, ICMPV6 = 6, 17, 1, 58
ICMP_ERRORS = frozenset({3, 4, 5, 11, 12})  # their bodies quote another packet
ICMPV6_ERRORS = frozenset({1, 2, 3, 4})
# ICMPv6 neighbour discovery: type -> (offsets of addresses after the 4-byte header, where options start)
NEIGHBOUR_DISCOVERY = {133: ((), 8), 134: ((), 16), 135: ((8,), 24), 136: ((8,), 24), 137: ((8, 24), 40)}

Pseudo = tuple[int, ...]
TransportParser = Callable[[Builder, int, Pseudo, int], None]
# What a TCP or UDP port announces: parser(builder, first byte of its data, end of the datagram).
AppParser = Callable[[Builder, int, int], None]
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
    b.checksums.append(Checksum(offset + 6, offset, b.end, pseudo, size, zero_is_none=True))
    b.payload = min(offset + 8, b.end)
    if b.end - offset >= 8:
        _application(b, UDP_PORTS, offset)


def icmp(b: Builder, offset: int, pseudo: Pseudo, size: int) -> None:
    b.checksums.append(Checksum(offset + 2, offset, b.end))
    if b.end - offset < 8:
        b.payload = b.end
        return
    kind = b.data[offset]
    if kind == 5:
        b.ipv4.append(offset + 4)  # redirect: the gateway's address
    if kind in ICMP_ERRORS:
        b.stop(offset + 8, f"ICMP type {kind} quoted packet not dissected")
        return
    b.payload = offset + 8


def icmpv6(b: Builder, offset: int, pseudo: Pseudo, size: int) -> None:
    b.checksums.append(Checksum(offset + 2, offset, b.end, pseudo, size))
    if b.end - offset < 4:
        b.payload = b.end
        return
    kind = b.data[offset]
    if kind in ICMPV6_ERRORS:
        b.stop(min(offset + 8, b.end), f"ICMPv6 type {kind} quoted packet not dissected")
        return
    layout = NEIGHBOUR_DISCOVERY.get(kind)
    if layout is None:
        b.payload = min(offset + 8, b.end)
        return
    addresses, options = layout
    for field in addresses:
        if offset + field + 16 > b.end:
            b.stop(offset + field, f"ICMPv6 type {kind} cut inside an address")
            return
        b.ipv6.append(offset + field)
    b.stop(offset + options, f"ICMPv6 type {kind} options not dissected")


TRANSPORTS: dict[int, TransportParser] = {TCP: tcp, UDP: udp, ICMP: icmp}
TRANSPORTS_V6: dict[int, TransportParser] = {TCP: tcp, UDP: udp, ICMPV6: icmpv6}

