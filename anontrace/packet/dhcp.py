"""DHCP and BOOTP (RFC 951, 2131, 2132) and DHCPv6 (RFC 8415): the addresses, MACs and names they carry.

Options are declared in tables by code: addresses, MACs (hardware addresses, client identifiers,
DUIDs) and names are recorded by offset, options that identify nothing are kept as they are, and
any other option ends the dissection there.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from anontrace.packet import link
from anontrace.packet.layers import Builder, Name, Prefix
from anontrace.packet.transport import AppParser, TransportParser

# (builder, first byte of the option, first byte of its value, end of its value) -> understood;
# an option that is not understood has stopped the dissection.
Handler = Callable[[Builder, int, int, int], bool]

# DHCPv4 fixed part (RFC 2131 figure 1), as offsets from the message's first byte.
ADDRESS_FIELDS = (12, 16, 20, 24)  # ciaddr, yiaddr, siaddr, giaddr
HARDWARE_ADDRESS, SERVER_NAME, BOOT_FILE, COOKIE, OPTIONS = 28, 44, 108, 236, 240
TEXT_FIELDS = ((SERVER_NAME, 64, "sname"), (BOOT_FILE, 128, "file"))
MAGIC_COOKIE = bytes((99, 130, 83, 99))
ETHERNET = 1  # hardware type, in BOOTP and in DUIDs
PAD, END, OVERLOAD = 0, 255, 52
MAX_NAME = 255  # bytes of a DNS name in wire format

# DHCPv6 messages (RFC 8415 section 7.3): 1-11 pass between client and server, 12-13 between relays.
CLIENT_SERVER_MESSAGES = frozenset(range(1, 12))
RELAY_MESSAGES = frozenset({12, 13})
DUID_ADDRESS = {1: 8, 3: 4}  # DUID-LLT, DUID-LL: where the link-layer address starts


def _refuse(b: Builder, option: int, reason: str) -> bool:
    b.stop(option, reason)
    return False


def _kept(b: Builder, option: int, start: int, end: int) -> bool:
    return True


def _sized(size: int, multiple: bool = False) -> Handler:
    """A kept option of a fixed length (or a multiple of it): any other length means the bytes
    are not what they claim, and keeping them could keep an identifier they swallowed (a damaged
    length byte turns the rest of the message into one "subnet mask")."""
    def handler(b: Builder, option: int, start: int, end: int) -> bool:
        length = end - start
        if length != size and not (multiple and length % size == 0):
            return _refuse(b, option, f"DHCP option {b.data[option]} of {length} bytes, not {size}"
                           + (" or a multiple" if multiple else ""))
        return True
    return handler


def _wire_name(data: bytes, pos: int, end: int) -> int:
    """Where the uncompressed DNS name at `pos` ends (after its 0 byte), or -1 when it is not one."""
    start = pos
    while pos < end:
        size = data[pos]
        if size == 0:
            return pos + 1 if pos + 1 - start <= MAX_NAME else -1
        if size > 63:
            return -1  # a compression pointer or a reserved label type
        pos += 1 + size
    return -1


def _one_name(b: Builder, start: int, end: int) -> bool:
    """Record the one wire-format name that fills [start, end), if any; False when it is malformed."""
    if start < end:
        if _wire_name(b.data, start, end) != end:
            return False
        b.names.append(Name(start, end, start))
    return True


# DHCPv4 options (RFC 2132 and later): each handler is given the option's code and length bytes.

def _malformed(b: Builder, option: int) -> bool:
    return _refuse(b, option, f"DHCP option {b.data[option]} malformed")


def _addresses(b: Builder, option: int, start: int, end: int) -> bool:
    if (end - start) % 4:
        return _malformed(b, option)
    b.ipv4 += range(start, end, 4)
    return True


def _text(b: Builder, option: int, start: int, end: int) -> bool:
    if start < end:
        b.names.append(Name(start, end, -1))
    return True


def _client_fqdn(b: Builder, option: int, start: int, end: int) -> bool:
    """RFC 4702: flags, two obsolete rcodes, then the name: wire format if flag E, else ASCII."""
    if end - start < 3:
        return _malformed(b, option)
    if b.data[start] & 0x04:
        return _one_name(b, start + 3, end) or _refuse(b, option, "DHCP client FQDN name not dissected")
    return _text(b, option, start + 3, end)


def _client_identifier(b: Builder, option: int, start: int, end: int) -> bool:
    if end - start < 2:
        return _malformed(b, option)
    if b.data[start] != ETHERNET or end - start != 7:
        return _refuse(b, option, f"DHCP client identifier type {b.data[start]} not dissected")
    b.macs.append(start + 1)
    return True


OPTIONS_V4: dict[int, Handler] = {
    **dict.fromkeys((3, 4, 5, 6, 7, 28, 32, 42, 44, 50, 54, 118), _addresses),
    **dict.fromkeys((12, 15), _text),  # host name, domain name
    81: _client_fqdn,
    61: _client_identifier,
    # subnet mask, time offset, boot size, IP forwarding, TTL, MTU, lease time, message type,
    # parameter request list, maximum message size, renewal (T1) and rebinding (T2) times
    **dict.fromkeys((1, 2, 51, 58, 59), _sized(4)),
    **dict.fromkeys((13, 26, 57), _sized(2)),
    **dict.fromkeys((19, 23, 53), _sized(1)),
    55: _kept,
}


def dhcp(b: Builder, offset: int, end: int) -> None:
    """A DHCP or BOOTP message at [offset, end)."""
    data = b.data
    for field in ADDRESS_FIELDS:
        if offset + field + 4 > end:
            b.stop(min(offset + field, end), "DHCP header cut short")
            return
        b.ipv4.append(offset + field)
    hardware, hardware_size = data[offset + 1], data[offset + 2]
    if hardware != ETHERNET or hardware_size != 6:
        b.stop(offset + HARDWARE_ADDRESS, f"DHCP hardware address type {hardware} not dissected")
        return
    if offset + HARDWARE_ADDRESS + 6 > end:
        b.stop(offset + HARDWARE_ADDRESS, "DHCP header cut short")
        return
    b.macs.append(offset + HARDWARE_ADDRESS)  # the 10 bytes of padding after it are kept
    found = len(b.ipv4), len(b.macs), len(b.names)
    for field, size, what in TEXT_FIELDS:
        if not _text_field(b, offset + field, min(offset + field + size, end), what):
            return
    if data[offset + COOKIE:min(offset + OPTIONS, end)] != MAGIC_COOKIE:
        b.payload = min(offset + COOKIE, end)  # plain BOOTP: the vendor area is payload
        return
    if _options_v4(b, offset + OPTIONS, end):
        del b.ipv4[found[0]:], b.macs[found[1]:], b.names[found[2]:]
        b.stop(offset + SERVER_NAME, "DHCP options overloading sname and file not dissected")


def _text_field(b: Builder, start: int, end: int, what: str) -> bool:
    """A NUL-terminated text field, zeros after the text; False (and the frame cut) otherwise."""
    field = b.data[start:end]
    size = field.find(0)
    if size < 0:
        size = len(field)
    if any(field[size:]):
        return _refuse(b, start, f"DHCP {what} field holds more than text")
    if size:
        b.names.append(Name(start, start + size, -1))
    return True


def _options_v4(b: Builder, pos: int, end: int) -> bool:
    """Dissect the options from `pos`; True when the overload option says sname and file hold more."""
    data = b.data
    while pos < end:
        code = data[pos]
        if code == PAD:
            pos += 1
            continue
        if code == END:
            junk = data[pos + 1:end].lstrip(b"\0")  # after the end option only zero padding is kept
            b.stop(end - len(junk), "DHCP data after the end option")
            return False
        if pos + 2 > end or pos + 2 + data[pos + 1] > end:
            b.stop(pos, "DHCP option cut short")
            return False
        if code == OVERLOAD:
            return True
        handler = OPTIONS_V4.get(code)
        if handler is None:
            b.stop(pos, f"DHCP option {code} not dissected")
            return False
        if not handler(b, pos, pos + 2, pos + 2 + data[pos + 1]):
            return False
        pos += 2 + data[pos + 1]
    b.payload = end
    return False


# DHCPv6 options (RFC 8415 section 21 and later): each handler is given the option's code and length.

def _malformed_v6(b: Builder, option: int) -> bool:
    code = struct.unpack_from("!H", b.data, option)[0]
    return _refuse(b, option, f"DHCPv6 option {code} malformed")


def _duid(b: Builder, option: int, start: int, end: int) -> bool:
    """A client or server DUID: only those holding an Ethernet address are understood."""
    if end - start < 4:
        return _malformed_v6(b, option)
    kind, hardware = struct.unpack_from("!HH", b.data, start)
    address = DUID_ADDRESS.get(kind)
    if address is None:
        return _refuse(b, option, f"DHCPv6 DUID type {kind} not dissected")
    if hardware != ETHERNET:
        return _refuse(b, option, f"DHCPv6 DUID hardware type {hardware} not dissected")
    if end - start != address + 6:
        return _malformed_v6(b, option)
    b.macs.append(start + address)
    return True


def _suboptions_after(fixed: int, table: dict[int, Handler]) -> Handler:
    """An option of `fixed` bytes (IAID, times) followed by sub-options from `table`."""
    def handler(b: Builder, option: int, start: int, end: int) -> bool:
        if end - start < fixed:
            return _malformed_v6(b, option)
        return _options_v6(b, start + fixed, end, table)
    return handler


def _ia_address(b: Builder, option: int, start: int, end: int) -> bool:
    """IAADDR: address, preferred and valid lifetimes, sub-options."""
    if end - start < 24:
        return _malformed_v6(b, option)
    b.ipv6.append(start)
    return _options_v6(b, start + 24, end, STATUS_OPTIONS)


def _ia_prefix(b: Builder, option: int, start: int, end: int) -> bool:
    """IAPREFIX: preferred and valid lifetimes, prefix length, prefix, sub-options."""
    if end - start < 25 or b.data[start + 8] > 128:
        return _malformed_v6(b, option)
    b.prefixes.append(Prefix(start + 9, 16, 16, b.data[start + 8]))
    return _options_v6(b, start + 25, end, STATUS_OPTIONS)


def _status(b: Builder, option: int, start: int, end: int) -> bool:
    """A status code, then a message for people: cut when there is one."""
    if end - start < 2:
        return _malformed_v6(b, option)
    return start + 2 == end or _refuse(b, start + 2, "DHCPv6 status message not dissected")


def _addresses_v6(b: Builder, option: int, start: int, end: int) -> bool:
    if (end - start) % 16:
        return _malformed_v6(b, option)
    b.ipv6 += range(start, end, 16)
    return True


def _domains(b: Builder, option: int, start: int, end: int) -> bool:
    """A list of uncompressed wire-format names, each its own `Name`."""
    pos = start
    while pos < end:
        after = _wire_name(b.data, pos, end)
        if after < 0:
            return _refuse(b, option, "DHCPv6 domain list not dissected")
        b.names.append(Name(pos, after, pos))
        pos = after
    return True


def _client_fqdn_v6(b: Builder, option: int, start: int, end: int) -> bool:
    """RFC 4704: flags, then one wire-format name."""
    if end - start < 1:
        return _malformed_v6(b, option)
    return _one_name(b, start + 1, end) or _refuse(b, option, "DHCPv6 client FQDN name not dissected")


def _link_layer(b: Builder, option: int, start: int, end: int) -> bool:
    """RFC 6939 client link-layer address: hardware type, then the address."""
    if end - start < 2:
        return _malformed_v6(b, option)
    hardware = struct.unpack_from("!H", b.data, start)[0]
    if hardware != ETHERNET or end - start != 8:
        return _refuse(b, option, f"DHCPv6 link-layer address type {hardware} not dissected")
    b.macs.append(start + 2)
    return True


def _relay_message(b: Builder, option: int, start: int, end: int) -> bool:
    if start == end:
        return _malformed_v6(b, option)
    return link.enter(b, start, "DHCPv6 relay message") and _message_v6(b, start, end)


STATUS_OPTIONS: dict[int, Handler] = {13: _status}
ADDRESS_OPTIONS: dict[int, Handler] = {5: _ia_address, 13: _status}
PREFIX_OPTIONS: dict[int, Handler] = {26: _ia_prefix, 13: _status}
OPTIONS_V6: dict[int, Handler] = {
    1: _duid, 2: _duid,  # client and server identifiers
    3: _suboptions_after(12, ADDRESS_OPTIONS),  # IA_NA: IAID, T1, T2
    4: _suboptions_after(4, ADDRESS_OPTIONS),  # IA_TA: IAID
    25: _suboptions_after(12, PREFIX_OPTIONS),  # IA_PD: IAID, T1, T2
    9: _relay_message,
    13: _status,
    **dict.fromkeys((22, 23, 31), _addresses_v6),  # SIP servers, DNS servers, SNTP servers
    **dict.fromkeys((21, 24), _domains),  # SIP domains, DNS search list
    39: _client_fqdn_v6,
    79: _link_layer,
    # option request, preference, elapsed time, rapid commit, reconfigure accept,
    # information refresh time, SOL_MAX_RT
    6: _sized(2, multiple=True), 7: _sized(1), 8: _sized(2), 14: _sized(0), 20: _sized(0),
    **dict.fromkeys((32, 82), _sized(4)),
}


def _options_v6(b: Builder, pos: int, end: int, table: dict[int, Handler]) -> bool:
    """Dissect the options in [pos, end) that `table` knows; False (and the frame cut) otherwise."""
    data = b.data
    while pos < end:
        if pos + 4 > end:
            return _refuse(b, pos, "DHCPv6 option cut short")
        code, size = struct.unpack_from("!HH", data, pos)
        if pos + 4 + size > end:
            return _refuse(b, pos, "DHCPv6 option cut short")
        handler = table.get(code)
        if handler is None:
            return _refuse(b, pos, f"DHCPv6 option {code} not dissected")
        if not handler(b, pos, pos + 4, pos + 4 + size):
            return False
        pos += 4 + size
    return True


def _message_v6(b: Builder, offset: int, end: int) -> bool:
    """A DHCPv6 message at [offset, end), `offset` < `end`; False when the frame was cut."""
    kind = b.data[offset]
    if kind in RELAY_MESSAGES:  # hop count, link address, peer address
        for field in (offset + 2, offset + 18):
            if field + 16 > end:
                return _refuse(b, min(field, end), "DHCPv6 relay header cut short")
            b.ipv6.append(field)
        return _options_v6(b, offset + 34, end, OPTIONS_V6)
    if kind not in CLIENT_SERVER_MESSAGES:
        return _refuse(b, offset, f"DHCPv6 message type {kind} not dissected")
    return _options_v6(b, min(offset + 4, end), end, OPTIONS_V6)  # after the transaction id


def dhcpv6(b: Builder, offset: int, end: int) -> None:
    """A DHCPv6 message at [offset, end)."""
    if offset >= end or _message_v6(b, offset, end):
        b.payload = end


LINKS: dict[int, Callable[[Builder], None]] = {}
ETHERTYPES: dict[int, Callable[[Builder, int], None]] = {}
IP_PROTOCOLS: dict[int, TransportParser] = {}
UDP_PORTS: dict[int, AppParser] = {67: dhcp, 68: dhcp, 546: dhcpv6, 547: dhcpv6}
TCP_PORTS: dict[int, AppParser] = {}
