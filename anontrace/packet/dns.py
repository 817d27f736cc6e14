"""DNS messages (RFC 1035; mDNS and LLMNR share the format): every name, address and client subnet.

Questions and resource records are walked in order; names are recorded wherever they occur
(question, owner, inside record data). A compression pointer may only point back to the start of
a label already parsed in the same message, so following one is a table lookup: no loops, no
recursion, bounded work per byte. Record data is understood per type (`RDATA`, the layouts as
data); any other type, or any EDNS option not in `OPTIONS`, ends the dissection there.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from anontrace.packet.layers import Builder, Name, Prefix
from anontrace.packet.transport import AppParser, TransportParser

HEADER = 12
MAX_NAME = 255  # octets of a name in wire form, its labels as reached through pointers included
POINTER = 0xC0
FAMILIES = {1: 4, 2: 16}  # EDNS client subnet address family -> address octets

_record = struct.Struct("!HHIH").unpack_from  # type, class, TTL, data length
_option = struct.Struct("!HH").unpack_from  # EDNS option code, length
_client_subnet = struct.Struct("!HBB").unpack_from  # family, source and scope prefix lengths


class _Message:
    """One DNS message being dissected: where it lies, and the labels parsed so far.

    `labels` maps the offset of each label already parsed to the wire length of the name from that
    label on; a compression pointer must land on one of them.
    """

    __slots__ = ("b", "base", "end", "labels")

    def __init__(self, b: Builder, base: int, end: int) -> None:
        self.b, self.base, self.end = b, base, end
        self.labels: dict[int, int] = {}

    def name(self, pos: int, limit: int) -> int:
        """Record the name at `pos`; return its end, a position past `limit` if it runs past it,
        or -1 once the frame is stopped at the name (pointer anywhere but back to a label, label
        type 0x40 or 0x80, more than 255 octets)."""
        data, start, length = self.b.data, pos, 0
        starts: list[tuple[int, int]] = []  # each label's offset, and the octets before it
        while pos < limit and data[pos] < 0x40 and length < MAX_NAME:
            size = data[pos]
            starts.append((pos, length))
            length, pos = length + size + 1, pos + size + 1
            if size == 0:
                break
        else:
            if pos >= limit:
                return limit + 1
            if length >= MAX_NAME or data[pos] < POINTER:
                return self.malformed(start)
            if pos + 2 > limit:
                return pos + 2
            tail = self.labels.get(self.base + ((data[pos] & 0x3F) << 8 | data[pos + 1]))
            if tail is None:
                return self.malformed(start)
            length, pos = length + tail, pos + 2
        if length > MAX_NAME:
            return self.malformed(start)
        for label, before in starts:
            self.labels[label] = length - before
        self.b.names.append(Name(start, pos, self.base))
        return pos

    def malformed(self, start: int) -> int:
        """Stop at the name that starts at `start`; -1."""
        self.b.stop(start, "DNS name malformed")
        return -1

    def question(self, pos: int) -> int:
        """A question: name, type, class. Return its end, or -1 once stopped."""
        pos = self.entry_name(pos)
        if pos < 0:
            return -1
        if pos + 4 > self.end:
            self.b.stop(pos, "DNS question cut short")
            return -1
        return pos + 4

    def record(self, pos: int) -> int:
        """A resource record: owner name, type, class, TTL, data. Return its end, or -1 once stopped."""
        b = self.b
        pos = self.entry_name(pos)
        if pos < 0:
            return -1
        if pos + 10 > self.end:
            b.stop(pos, "DNS record cut short")
            return -1
        kind, _, _, size = _record(b.data, pos)
        start = pos + 10
        end: int = start + size
        layout = RDATA.get(kind)
        if layout is None:
            b.stop(start, f"DNS record type {kind} data not dissected")
            return -1
        if end > self.end:
            b.stop(start, f"DNS record type {kind} data cut short")
            return -1
        marks = len(b.ipv4), len(b.ipv6), len(b.names), len(b.prefixes)
        pos = start
        for field in layout:
            pos = pos + field if isinstance(field, int) else field(self, pos, end)
            if pos < 0:
                return -1
            if pos > end:
                break
        if pos != end:  # the data length disagrees with the data: keep nothing found in it
            del b.ipv4[marks[0]:], b.ipv6[marks[1]:], b.names[marks[2]:], b.prefixes[marks[3]:]
            b.stop(start, f"DNS record type {kind} data malformed")
            return -1
        return end

    def entry_name(self, pos: int) -> int:
        """The name a question or record starts with; its end, or -1 once stopped."""
        end = self.name(pos, self.end)
        if end > self.end:
            self.b.stop(pos, "DNS name cut short")
            return -1
        return end


Field = Callable[[_Message, int, int], int]  # record data field at pos, data end -> its end, or -1


def _ipv4(message: _Message, pos: int, end: int) -> int:
    if pos + 4 <= end:
        message.b.ipv4.append(pos)
    return pos + 4


def _ipv6(message: _Message, pos: int, end: int) -> int:
    if pos + 16 <= end:
        message.b.ipv6.append(pos)
    return pos + 16


def _type_bitmap(message: _Message, pos: int, end: int) -> int:
    """NSEC type bitmap windows: window number, length 1..32, bits. Return where they end."""
    data = message.b.data
    while pos + 2 <= end and 1 <= data[pos + 1] <= 32:
        pos += 2 + data[pos + 1]
    return pos if pos >= end else end + 1


def _options(message: _Message, pos: int, end: int) -> int:
    """EDNS options (code, length, data) up to `end`; -1 once stopped at one not understood."""
    b = message.b
    while pos + 4 <= end:
        code, size = _option(b.data, pos)
        check = OPTIONS.get(code)
        if check is None:
            b.stop(pos, f"DNS EDNS option {code} not dissected")
            return -1
        if pos + 4 + size > end:
            break
        if not check(b, pos + 4, size):
            b.stop(pos, f"DNS EDNS option {code} malformed")
            return -1
        pos += 4 + size
    return pos if pos == end else end + 1


def _client_subnet_option(b: Builder, pos: int, size: int) -> bool:
    """EDNS client subnet (RFC 7871): the address holds exactly the source prefix's octets, and the
    bits past the prefix are zero."""
    if size < 4:
        return False
    family, source, scope = _client_subnet(b.data, pos)
    width = FAMILIES.get(family, 0)
    octets = (source + 7) // 8
    if not width or max(source, scope) > width * 8 or size - 4 != octets:
        return False
    if source % 8 and b.data[pos + 3 + octets] & (0xFF >> (source % 8)):
        return False
    if octets:
        b.prefixes.append(Prefix(pos + 4, octets, width, source))
    return True


def _keepalive_option(b: Builder, pos: int, size: int) -> bool:
    return size in (0, 2)


def _padding_option(b: Builder, pos: int, size: int) -> bool:
    return True


# Record data layouts by type: octets to keep as they are, or a field parser.
RDATA: dict[int, tuple[int | Field, ...]] = {
    1: (_ipv4,),  # A
    2: (_Message.name,),  # NS
    5: (_Message.name,),  # CNAME
    6: (_Message.name, _Message.name, 20),  # SOA: primary server, mailbox, serial and four timers
    12: (_Message.name,),  # PTR
    15: (2, _Message.name),  # MX: preference, exchange
    28: (_ipv6,),  # AAAA
    33: (6, _Message.name),  # SRV: priority, weight, port, target
    39: (_Message.name,),  # DNAME
    41: (_options,),  # OPT (EDNS)
    47: (_Message.name, _type_bitmap),  # NSEC: next owner name, types present
}
# EDNS options understood, by code: whether the option's data is well formed (recording what it holds).
OPTIONS: dict[int, Callable[[Builder, int, int], bool]] = {
    8: _client_subnet_option, 11: _keepalive_option, 12: _padding_option,
}


def message(b: Builder, offset: int, end: int) -> None:
    """The DNS message at [offset, end): header, questions, then answer, authority and additional
    records. Counts larger than the data end it where the data ends."""
    data, end = b.data, min(end, b.end)
    if end - offset < HEADER:
        b.stop(offset, "DNS header cut short")
        return
    if data[offset + 2] & 0x78:  # opcode: only standard queries and their responses
        b.stop(offset, "DNS header not dissected")
        return
    questions, answers, authorities, additionals = struct.unpack_from("!4H", data, offset + 4)
    parsed = _Message(b, offset, end)
    pos = offset + HEADER
    for step, count in ((parsed.question, questions), (parsed.record, answers + authorities + additionals)):
        for _ in range(count):  # a count larger than the data: the first entry missing stops it
            pos = step(pos)
            if pos < 0:
                return
    b.stop(pos, "data after the DNS message")


def dns_udp(b: Builder, offset: int, end: int) -> None:
    """A DNS message filling a UDP datagram."""
    message(b, offset, end)


def dns_tcp(b: Builder, offset: int, end: int) -> None:
    """A TCP segment holding one length-prefixed DNS message (or its start, cut by the snap length)."""
    if end - offset < 2 or offset + 2 + struct.unpack_from("!H", b.data, offset)[0] < end:
        b.stop(offset, "DNS over TCP segment is not one message")
        return
    message(b, offset + 2, end)


LINKS: dict[int, Callable[[Builder], None]] = {}
ETHERTYPES: dict[int, Callable[[Builder, int], None]] = {}
IP_PROTOCOLS: dict[int, TransportParser] = {}
UDP_PORTS: dict[int, AppParser] = {53: dns_udp, 5353: dns_udp, 5355: dns_udp}
TCP_PORTS: dict[int, AppParser] = {53: dns_tcp, 5355: dns_tcp}
