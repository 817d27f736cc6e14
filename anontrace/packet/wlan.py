"""IEEE 802.11 frames: bare (link type 105), behind a radiotap header (127) or a PPI header (192).

Every MAC address of the 802.11 header is noted; a data frame's LLC/SNAP header leads on to its
ethertype. The radio header is kept as it is (radio metadata); it is only read to learn whether the
frame ends with a 4-byte FCS, which is then cut as a trailer. Management bodies (SSIDs, vendor
elements), protected bodies and any layout not known here are cut.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from anontrace.packet.layers import Builder
from anontrace.packet.link import ethernet, ethertype
from anontrace.packet.transport import AppParser, TransportParser

MANAGEMENT, CONTROL, DATA = 0, 1, 2  # frame control type
TO_DS, FROM_DS, PROTECTED, ORDER = 0x01, 0x02, 0x40, 0x80  # frame control flags
QOS, NO_BODY = 0x08, 0x04  # data subtype bits
RESERVED_DATA_SUBTYPE = 13
A_MSDU = 0x80  # QoS control, first byte
SNAP = b"\xaa\xaa\x03\x00\x00\x00"
ADDRESS = 6  # header layouts below are field sizes; no 802.11 header field but an address has 6 bytes
# Control subtype -> MAC addresses after frame control and duration.
CONTROL_ADDRESSES = {2: 2, 4: 2, 5: 2, 7: 1, 8: 2, 9: 2, 10: 2, 11: 2, 12: 1, 13: 1, 14: 2, 15: 2}
CONTROL_WITHOUT_BODY = frozenset({10, 11, 12, 13, 14, 15})  # PS-Poll, RTS, CTS, ACK, CF-End (+CF-Ack)
BLOCK_ACK_REQUEST, BLOCK_ACK = 8, 9
# Variant (bits 1-4 of the BlockAckReq/BlockAck control field) -> (bytes, bytes per TID) of the
# information after the control field: basic, compressed and multi-TID have a fixed layout.
BLOCK_ACK_INFO = {
    BLOCK_ACK_REQUEST: {0: (2, 0), 2: (2, 0), 3: (0, 4)},
    BLOCK_ACK: {0: (2 + 128, 0), 2: (2 + 8, 0), 3: (0, 2 + 2 + 8)},
}
COMPRESSED = 2

# Radiotap presence bits, and bits of its Flags field.
TSFT, FLAGS, TLV, RADIOTAP_NAMESPACE, VENDOR_NAMESPACE, EXTENDED = 1, 2, 1 << 28, 1 << 29, 1 << 30, 1 << 31
HAS_FCS, PADDED = 0x10, 0x20

# PPI field types kept (802.11-Common, 802.11n MAC, 802.11n MAC+PHY, aggregation, 802.3 extension)
# -> the size of their data; others (process information, GPS, vendor fields) are cut. The sizes are
# multiples of 4, so the header's flag "fields aligned to 32 bits" changes nothing.
PPI_FIELDS = {2: 20, 3: 12, 4: 48, 8: 4, 9: 8}
PPI_FCS_FLAG = {2: 8, 9: 0}  # field type -> offset in its data of the byte whose bit 0 is "FCS present"


def ieee80211(b: Builder, offset: int = 0, padded: bool = False) -> None:
    """An 802.11 frame at `offset`; `padded`: radiotap says the header is padded to 4 bytes."""
    data = b.data
    if b.end - offset < 2:
        b.stop(offset, "802.11 header cut short")
        return
    control, flags = data[offset], data[offset + 1]
    version, kind, subtype = control & 0x03, control >> 2 & 0x03, control >> 4
    if version != 0:
        b.stop(offset, f"802.11 protocol version {version} not dissected")
    elif kind == MANAGEMENT:
        _management(b, offset, flags)
    elif kind == CONTROL:
        _control(b, offset, subtype)
    elif kind == DATA:
        _data(b, offset, flags, subtype, padded)
    else:
        b.stop(offset, "802.11 extension frame not dissected")


def _fields(b: Builder, position: int, sizes: tuple[int, ...], what: str = "802.11 header") -> int:
    """Step over fields of these sizes, noting each address; where they end, or -1 with the frame
    cut at the first field cut short."""
    for size in sizes:
        if position + size > b.end:
            b.stop(position, f"{what} cut short")
            return -1
        if size == ADDRESS:
            b.macs.append(position)
        position += size
    return position


def _finish(b: Builder, end: int) -> None:
    """The frame ends at `end`; whatever follows is a trailer."""
    b.payload = end
    b.end = min(b.end, end)


def _management(b: Builder, offset: int, flags: int) -> None:
    high_throughput = (4,) if flags & ORDER else ()
    body = _fields(b, offset, (4, ADDRESS, ADDRESS, ADDRESS, 2, *high_throughput))
    if body >= 0:
        b.stop(body, "802.11 management body not dissected")


def _control(b: Builder, offset: int, subtype: int) -> None:
    count = CONTROL_ADDRESSES.get(subtype)
    if count is None:
        b.stop(offset, f"802.11 control subtype {subtype} not dissected")
        return
    end = _fields(b, offset, (4,) + (ADDRESS,) * count)
    if end < 0:
        return
    if subtype in BLOCK_ACK_INFO:
        _block_ack(b, end, subtype)
    elif subtype in CONTROL_WITHOUT_BODY:
        _finish(b, end)
    else:
        b.stop(end, f"802.11 control subtype {subtype} body not dissected")


def _block_ack(b: Builder, position: int, subtype: int) -> None:
    """The control field and, when its layout is fixed, the information of a BlockAckReq or BlockAck."""
    info = _fields(b, position, (2,))
    if info < 0:
        return
    control = struct.unpack_from("<H", b.data, position)[0]
    variant, tids = control >> 1 & 0x0F, (control >> 12) + 1
    layout = BLOCK_ACK_INFO[subtype].get(variant)
    if subtype == BLOCK_ACK and variant == COMPRESSED and info < b.end and b.data[info] & 0x0F:
        layout = None  # 802.11ax: the fragment number sizes the bitmap
    name = "BlockAck" if subtype == BLOCK_ACK else "BlockAckReq"
    if layout is None:
        b.stop(info, f"802.11 {name} variant {variant} not dissected")
        return
    size, per_tid = layout
    end = info + size + per_tid * tids
    if end > b.end:
        b.stop(info, f"802.11 {name} cut short")
    else:
        _finish(b, end)


def _data(b: Builder, offset: int, flags: int, subtype: int, padded: bool) -> None:
    if subtype == RESERVED_DATA_SUBTYPE:
        b.stop(offset, f"802.11 data subtype {subtype} not dissected")
        return
    sizes: tuple[int, ...] = (4, ADDRESS, ADDRESS, ADDRESS, 2)
    if flags & TO_DS and flags & FROM_DS:
        sizes += (ADDRESS,)
    quality = -1  # offset of the QoS control field
    if subtype & QOS:
        quality = offset + sum(sizes)
        sizes += (2, 4) if flags & ORDER else (2,)
    body = _fields(b, offset, sizes)
    if body < 0:
        return
    if subtype & NO_BODY:
        _finish(b, body)
        return
    if padded:
        body = offset + (body - offset + 3) // 4 * 4
    if flags & PROTECTED:
        b.stop(body, "802.11 protected frame body not dissected")
    elif b.data[offset + 22] & 0x0F:  # the fragment number, in sequence control
        b.payload = body  # a later fragment: the data is opaque
    elif quality >= 0 and b.data[quality] & A_MSDU:
        _aggregate(b, body)
    else:
        _llc(b, body)


def _aggregate(b: Builder, offset: int) -> None:
    """The first subframe of an A-MSDU (destination, source, length, then LLC/SNAP); later ones are cut."""
    start = _fields(b, offset, (ADDRESS, ADDRESS, 2), "802.11 A-MSDU subframe header")
    if start < 0:
        return
    end = start + struct.unpack_from("!H", b.data, offset + 12)[0]
    if end < b.end:
        b.stop(end, "802.11 A-MSDU subframes after the first not dissected")
    _llc(b, start)


def _llc(b: Builder, offset: int) -> None:
    if b.end - offset < 8:
        b.stop(offset, "802.11 LLC header cut short")
    elif not b.data.startswith(SNAP, offset):
        b.stop(offset, "802.11 LLC not dissected")
    else:
        ethertype(b, offset + 8, struct.unpack_from("!H", b.data, offset + 6)[0])


def radiotap(b: Builder) -> None:
    """Link type 127: a radiotap header, kept as it is, then an 802.11 frame."""
    data = b.data
    if len(data) < 8:
        b.stop(0, "radiotap header cut short")
        return
    version, _, length = struct.unpack_from("<BBH", data)
    if version != 0:
        b.stop(0, f"radiotap version {version} not dissected")
        return
    if length > len(data):
        b.stop(0, "radiotap header cut short")
        return
    flags = _radiotap_flags(b, length)
    if flags is None:
        return
    if flags & HAS_FCS:
        b.end = max(length, len(data) - 4)
    ieee80211(b, length, bool(flags & PADDED))


def _radiotap_flags(b: Builder, length: int) -> int | None:
    """The radiotap Flags field (0 when absent), or None with the frame cut: at 0 if the header is
    malformed, after it if a Flags field may lie where it cannot be found (a later radiotap
    namespace, TLVs)."""
    data, words, starts_namespace, unknown = b.data, 0, True, False
    for position in range(4, length - 3, 4):
        word = struct.unpack_from("<I", data, position)[0]
        words += 1
        if starts_namespace and (word & TLV or (words > 1 and word & FLAGS)):
            unknown = True
        if word & RADIOTAP_NAMESPACE and word & VENDOR_NAMESPACE:
            unknown = True
        if not word & EXTENDED:
            break
        starts_namespace = bool(word & RADIOTAP_NAMESPACE)
    else:
        b.stop(0, "radiotap header malformed")
        return None
    if unknown:
        b.stop(length, "radiotap fields not dissected")
        return None
    first = struct.unpack_from("<I", data, 4)[0]
    if not first & FLAGS:
        return 0
    position = 4 + 4 * words
    if first & TSFT:
        position = (position + 7) // 8 * 8 + 8
    if position >= length:
        b.stop(0, "radiotap header malformed")
        return None
    return data[position]


def ppi(b: Builder) -> None:
    """Link type 192: a PPI header of radio fields, kept as it is, then an 802.11 or Ethernet frame."""
    data = b.data
    if len(data) < 8:
        b.stop(0, "PPI header cut short")
        return
    version, _, length, link = struct.unpack_from("<BBHI", data)
    if version != 0:
        b.stop(0, f"PPI version {version} not dissected")
        return
    if length > len(data):
        b.stop(0, "PPI header cut short")
        return
    if length < 8:
        b.stop(0, "PPI header malformed")
        return
    position, has_fcs = 8, False
    while position < length:  # each field takes at least 4 bytes
        if length - position < 4:
            b.stop(position, "PPI header malformed")
            return
        kind, size = struct.unpack_from("<HH", data, position)
        if kind not in PPI_FIELDS:
            b.stop(position, f"PPI field type {kind} not dissected")
            return
        if size != PPI_FIELDS[kind] or position + 4 + size > length:
            b.stop(position, "PPI header malformed")
            return
        if kind in PPI_FCS_FLAG:
            has_fcs |= bool(data[position + 4 + PPI_FCS_FLAG[kind]] & 0x01)
        position += 4 + size
    if has_fcs:
        b.end = max(length, len(data) - 4)
    if link == 105:
        ieee80211(b, length)
    elif link == 1:
        ethernet(b, length)
    else:
        b.stop(length, f"PPI link type {link} not dissected")


LINKS: dict[int, Callable[[Builder], None]] = {105: ieee80211, 127: radiotap, 192: ppi}
ETHERTYPES: dict[int, Callable[[Builder, int], None]] = {}
IP_PROTOCOLS: dict[int, TransportParser] = {}
UDP_PORTS: dict[int, AppParser] = {}
TCP_PORTS: dict[int, AppParser] = {}
