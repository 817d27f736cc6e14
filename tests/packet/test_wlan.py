"""802.11 frames, bare (105), behind radiotap (127) and PPI (192): MAC offsets, what follows, what is cut."""

from __future__ import annotations

import random
import shutil
import socket
import struct
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from scapy.contrib.ppi_cace import PPI_Dot11Common
from scapy.layers.dot11 import (
    Dot11,
    Dot11Beacon,
    Dot11Elt,
    Dot11FCS,
    Dot11QoS,
    RadioTap,
)
from scapy.layers.eap import EAPOL
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import LLC, SNAP, STP, Ether
from scapy.layers.ppi import PPI, PPI_Hdr
from scapy.packet import Packet, Raw
from scapy.utils import mac2str

from anontrace.packet.dissect import dissect
from anontrace.packet.layers import Builder
from anontrace.packet.wlan import ieee80211, ppi, radiotap

BARE, RADIOTAP, PPI_LINK = 105, 127, 192
ADDRESSES = ("02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03", "02:00:00:00:00:04")
TO_DS, FROM_DS, MORE_FRAGMENTS, PROTECTED, ORDER = 0x01, 0x02, 0x04, 0x40, 0x80
NETWORKS = {
    "ipv4": IP(src="192.0.2.1", dst="198.51.100.2"),
    "ipv6": IPv6(src="2001:db8::1", dst="2001:db8::2"),
}


def udp() -> UDP:
    return UDP(sport=40000, dport=40001)  # ports no application parser claims


def dot11(kind: int, subtype: int, flags: int = 0, count: int = 4) -> Dot11:
    addresses = dict(zip(("addr1", "addr2", "addr3", "addr4"), ADDRESSES[:count], strict=False))
    return Dot11(type=kind, subtype=subtype, FCfield=flags, **addresses)


def data_frame(flags: int = 0, network: str = "ipv4") -> Packet:
    return dot11(2, 0, flags) / LLC() / SNAP() / NETWORKS[network] / udp() / Raw(b"data")


def at(data: bytes, offsets: tuple[int, ...], size: int) -> list[bytes]:
    return [data[offset : offset + size] for offset in offsets]


def mac_values(*addresses: str) -> list[bytes]:
    return [mac2str(address) for address in addresses]


def radiotap_header(words: list[int], fields: bytes) -> bytes:
    """A radiotap header with these presence words, then `fields` as they are (alignment is the caller's)."""
    length = 4 + 4 * len(words) + len(fields)
    return struct.pack(f"<BBH{len(words)}I", 0, 0, length, *words) + fields


# --- bare 802.11 data frames ------------------------------------------------------------------------------


@pytest.mark.parametrize("network", ["ipv4", "ipv6"])
@pytest.mark.parametrize(
    "flags", [0, TO_DS, FROM_DS, TO_DS | FROM_DS], ids=["ibss", "to-ds", "from-ds", "wds"]
)
def test_data_frame_addresses_and_network_layer(flags: int, network: str) -> None:
    packet = data_frame(flags, network)
    data = bytes(packet)
    header = len(packet[Dot11]) - len(packet[LLC])
    layers = dissect(data, BARE)
    count = 4 if flags == TO_DS | FROM_DS else 3
    assert header == (30 if count == 4 else 24)
    assert layers.macs == (4, 10, 16, 24)[:count]
    assert at(data, layers.macs, 6) == mac_values(*ADDRESSES[:count])
    assert layers.network == header + 8 and layers.cut is None and layers.parsed_to == len(data)
    inner = packet[NETWORKS[network].__class__]
    if network == "ipv4":
        assert at(data, layers.ipv4, 4) == [socket.inet_aton(inner.src), socket.inet_aton(inner.dst)]
    else:
        assert at(data, layers.ipv6, 16) == [
            socket.inet_pton(socket.AF_INET6, a) for a in (inner.src, inner.dst)
        ]


@pytest.mark.parametrize("flags", [0, ORDER], ids=["qos", "qos-htc"])
def test_qos_data_skips_qos_and_ht_control(flags: int) -> None:
    packet = dot11(2, 8, flags) / Dot11QoS(TID=5) / LLC() / SNAP() / NETWORKS["ipv4"] / udp()
    data = bytes(packet)
    if flags:  # scapy has no HT control field: insert one after QoS control
        data = data[:26] + b"\x11\x22\x33\x44" + data[26:]
    layers = dissect(data, BARE)
    header = 30 if flags else 26
    assert layers.macs == (4, 10, 16) and layers.network == header + 8
    assert at(data, layers.ipv4, 4) == [socket.inet_aton("192.0.2.1"), socket.inet_aton("198.51.100.2")]
    assert layers.cut is None


def test_order_bit_without_qos_adds_no_ht_control() -> None:
    data = bytes(data_frame(ORDER))
    assert dissect(data, BARE).network == 32


def test_protected_data_body_is_cut_after_the_header() -> None:
    data = bytes(dot11(2, 8, PROTECTED) / Dot11QoS() / Raw(bytes(range(40))))
    layers = dissect(data, BARE)
    assert layers.macs == (4, 10, 16)
    assert (layers.parsed_to, layers.cut) == (26, "802.11 protected frame body not dissected")


@pytest.mark.parametrize("subtype", [4, 12], ids=["null", "qos-null"])
def test_null_data_has_no_body(subtype: int) -> None:
    frame = dot11(2, subtype) / (Dot11QoS() if subtype == 12 else Raw(b""))
    data = bytes(frame)
    layers = dissect(data, BARE)
    assert layers.parsed_to == len(data) and layers.cut is None and layers.macs == (4, 10, 16)
    trailing = dissect(data + b"junk", BARE)
    assert (
        trailing.parsed_to == len(data) and trailing.cut == "link-layer padding or trailer after the datagram"
    )


def test_llc_other_than_snap_is_cut() -> None:
    data = bytes(dot11(2, 0) / LLC(dsap=0x42, ssap=0x42, ctrl=3) / STP())
    layers = dissect(data, BARE)
    assert (layers.parsed_to, layers.cut) == (24, "802.11 LLC not dissected")


def test_snap_ethertype_not_dissected_is_cut_after_snap() -> None:
    data = bytes(dot11(2, 0) / LLC() / SNAP() / EAPOL())
    layers = dissect(data, BARE)
    assert (layers.parsed_to, layers.cut) == (32, "ethertype 0x888e not dissected")


def test_short_llc_is_cut() -> None:
    data = bytes(dot11(2, 0)) + b"\xaa\xaa\x03"
    layers = dissect(data, BARE)
    assert (layers.parsed_to, layers.cut) == (24, "802.11 LLC header cut short")


def test_later_fragment_body_is_opaque_payload() -> None:
    frame = dot11(2, 0)
    frame.SC = 0x0011  # sequence 1, fragment 1
    data = bytes(frame / Raw(b"\xaa\xaa\x03\x00\x00\x00\x08\x00" + bytes(20)))
    layers = dissect(data, BARE)
    assert layers.payload == 24 and layers.network == -1 and layers.ipv4 == ()
    assert layers.parsed_to == len(data) and layers.cut is None


def test_first_fragment_is_dissected() -> None:
    data = bytes(data_frame(MORE_FRAGMENTS))
    assert dissect(data, BARE).network == 32


def amsdu_subframe(destination: str, source: str, network: Packet) -> bytes:
    body = bytes(LLC() / SNAP() / network)
    return mac2str(destination) + mac2str(source) + struct.pack("!H", len(body)) + body


def test_amsdu_first_subframe_is_dissected_and_the_rest_cut() -> None:
    first = amsdu_subframe(
        "02:00:00:00:00:11", "02:00:00:00:00:22", IP(src="10.0.0.1", dst="10.0.0.2") / udp()
    )
    second = amsdu_subframe(
        "02:00:00:00:00:33", "02:00:00:00:00:44", IP(src="10.0.0.3", dst="10.0.0.4") / udp()
    )
    header = bytes(dot11(2, 8) / Dot11QoS(A_MSDU_Present=1))
    data = header + first + bytes(-len(first) % 4) + second
    layers = dissect(data, BARE)
    assert layers.macs == (4, 10, 16, 26, 32)
    assert at(data, layers.macs[3:], 6) == mac_values("02:00:00:00:00:11", "02:00:00:00:00:22")
    assert layers.network == 26 + 14 + 8
    assert at(data, layers.ipv4, 4) == [socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2")]
    assert (layers.parsed_to, layers.cut) == (
        26 + len(first),
        "802.11 A-MSDU subframes after the first not dissected",
    )
    alone = dissect(header + first, BARE)
    assert alone.parsed_to == len(header + first) and alone.cut is None


def test_amsdu_lying_subframe_length() -> None:
    header = bytes(dot11(2, 8) / Dot11QoS(A_MSDU_Present=1))
    subframe = bytearray(amsdu_subframe(ADDRESSES[0], ADDRESSES[1], IP() / udp()))
    subframe[12:14] = struct.pack("!H", 3)  # shorter than LLC/SNAP
    layers = dissect(header + bytes(subframe), BARE)
    assert (layers.parsed_to, layers.cut) == (26 + 14, "802.11 LLC header cut short")
    subframe[12:14] = struct.pack("!H", 0xFFFF)  # longer than the frame: dissected as far as captured
    layers = dissect(header + bytes(subframe), BARE)
    assert layers.network == 26 + 22 and layers.cut is None


def test_data_frame_at_an_offset() -> None:
    data = b"\xee" * 10 + bytes(data_frame())
    b = Builder(data)
    ieee80211(b, 10)
    layers = b.freeze()
    assert layers.macs == (14, 20, 26) and layers.network == 42 and layers.cut is None


def test_reserved_data_subtype_is_cut_at_its_start() -> None:
    layers = dissect(bytes(dot11(2, 13) / Raw(bytes(20))), BARE)
    assert (layers.parsed_to, layers.cut, layers.macs) == (0, "802.11 data subtype 13 not dissected", ())


# --- management, control, other frame types ---------------------------------------------------------------


def beacon(flags: int = 0) -> bytes:
    frame = dot11(0, 8, flags, 3) / Dot11Beacon() / Dot11Elt(ID=0, info=b"home network")
    data = bytes(frame)
    return data[:24] + b"\x01\x02\x03\x04" + data[24:] if flags & ORDER else data


@pytest.mark.parametrize("flags", [0, ORDER], ids=["plain", "htc"])
def test_beacon_body_is_cut(flags: int) -> None:
    data = beacon(flags)
    layers = dissect(data, BARE)
    assert at(data, layers.macs, 6) == mac_values(*ADDRESSES[:3]) and layers.macs == (4, 10, 16)
    assert (layers.parsed_to, layers.cut) == (28 if flags else 24, "802.11 management body not dissected")


def test_management_frame_without_body_is_kept_whole() -> None:
    data = bytes(dot11(0, 12, 0, 3))  # deauthentication, its reason code missing
    layers = dissect(data, BARE)
    assert layers.parsed_to == 24 and layers.cut is None


@pytest.mark.parametrize(
    ("subtype", "count"),
    [(13, 1), (12, 1), (11, 2), (10, 2), (14, 2), (15, 2)],
    ids=["ack", "cts", "rts", "ps-poll", "cf-end", "cf-end-ack"],
)
def test_control_frames_without_body(subtype: int, count: int) -> None:
    data = bytes(dot11(1, subtype))
    layers = dissect(data, BARE)
    assert len(data) == 4 + 6 * count
    assert layers.macs == (4, 10)[:count] and at(data, layers.macs, 6) == mac_values(*ADDRESSES[:count])
    assert layers.parsed_to == len(data) and layers.cut is None
    trailing = dissect(data + b"\x00" * 3, BARE)
    assert (
        trailing.parsed_to == len(data) and trailing.cut == "link-layer padding or trailer after the datagram"
    )


def block_ack(subtype: int, variant: int, info: bytes, tids: int = 1) -> bytes:
    control = variant << 1 | (tids - 1) << 12
    return bytes(dot11(1, subtype)) + struct.pack("<H", control) + info


@pytest.mark.parametrize(
    ("subtype", "variant", "info", "tids"),
    [
        (9, 0, b"\x10\x00" + bytes(range(128)), 1),
        (9, 2, b"\x10\x00" + bytes(range(8)), 1),
        (9, 3, bytes(12 * 3), 3),
        (8, 0, b"\x10\x00", 1),
        (8, 2, b"\x10\x00", 1),
        (8, 3, bytes(4 * 2), 2),
    ],
    ids=["ba-basic", "ba-compressed", "ba-multi-tid", "bar-basic", "bar-compressed", "bar-multi-tid"],
)
def test_block_ack_of_fixed_size_is_kept(subtype: int, variant: int, info: bytes, tids: int) -> None:
    data = block_ack(subtype, variant, info, tids)
    layers = dissect(data + b"\xff" * 4, BARE)
    assert layers.macs == (4, 10) and layers.parsed_to == len(data)
    assert layers.cut == "link-layer padding or trailer after the datagram"


@pytest.mark.parametrize(
    ("subtype", "variant", "ssc", "reason"),
    [
        (9, 2, 0x0012, "802.11 BlockAck variant 2 not dissected"),
        (9, 6, 0x0010, "802.11 BlockAck variant 6 not dissected"),
        (9, 11, 0x0010, "802.11 BlockAck variant 11 not dissected"),
        (8, 6, 0x0010, "802.11 BlockAckReq variant 6 not dissected"),
    ],
    ids=["compressed-with-fragment-number", "ba-gcr", "ba-multi-sta", "bar-gcr"],
)
def test_block_ack_of_other_layouts_is_cut_after_its_control(
    subtype: int, variant: int, ssc: int, reason: str
) -> None:
    data = block_ack(subtype, variant, struct.pack("<H", ssc) + bytes(32))
    layers = dissect(data, BARE)
    assert layers.macs == (4, 10) and (layers.parsed_to, layers.cut) == (18, reason)


def test_block_ack_cut_short_is_cut_at_its_information() -> None:
    data = block_ack(9, 0, b"\x10\x00" + bytes(100))
    layers = dissect(data, BARE)
    assert (layers.parsed_to, layers.cut) == (18, "802.11 BlockAck cut short")


@pytest.mark.parametrize(
    ("subtype", "count"), [(2, 2), (4, 2), (5, 2), (7, 1)], ids=["trigger", "bfrp", "ndpa", "wrapper"]
)
def test_control_frame_bodies_are_cut_after_the_addresses(subtype: int, count: int) -> None:
    data = bytes(dot11(1, subtype, 0, 2))[: 4 + 6 * count] + bytes(range(30))
    layers = dissect(data, BARE)
    assert layers.macs == (4, 10)[:count]
    assert (layers.parsed_to, layers.cut) == (
        4 + 6 * count,
        f"802.11 control subtype {subtype} body not dissected",
    )


@pytest.mark.parametrize(
    ("first", "reason"),
    [
        (0x34 | 1, "802.11 protocol version 1 not dissected"),
        (0x0C, "802.11 extension frame not dissected"),
        (0x64, "802.11 control subtype 6 not dissected"),
        (0x34, "802.11 control subtype 3 not dissected"),
    ],
)
def test_unknown_frames_are_cut_at_their_start(first: int, reason: str) -> None:
    data = bytes([first, 0]) + bytes(range(30))
    layers = dissect(data, BARE)
    assert (layers.parsed_to, layers.cut, layers.macs) == (0, reason, ())


# --- radiotap ---------------------------------------------------------------------------------------------


def test_radiotap_without_fcs() -> None:
    packet = RadioTap(present="Rate+Channel", Rate=2, ChannelFrequency=2437) / data_frame(FROM_DS)
    data = bytes(packet)
    start = RadioTap(data).len
    layers = dissect(data, RADIOTAP)
    assert layers.macs == (start + 4, start + 10, start + 16)
    assert at(data, layers.macs, 6) == mac_values(*ADDRESSES[:3])
    assert layers.network == start + 32 and layers.parsed_to == len(data) and layers.cut is None


@pytest.mark.parametrize("present", ["Flags", "TSFT+Flags"])
def test_radiotap_fcs_is_cut_as_a_trailer(present: str) -> None:
    packet = (
        RadioTap(present=present, Flags="FCS")
        / Dot11FCS(type=2, addr1=ADDRESSES[0], addr2=ADDRESSES[1], addr3=ADDRESSES[2])
        / LLC()
        / SNAP()
        / IP()
        / udp()
    )
    data = bytes(packet)
    layers = dissect(data, RADIOTAP)
    assert layers.macs[0] == RadioTap(data).len + 4 and at(data, layers.macs, 6) == mac_values(*ADDRESSES[:3])
    assert (
        layers.parsed_to == len(data) - 4 and layers.cut == "link-layer padding or trailer after the datagram"
    )
    b = Builder(data)
    radiotap(b)
    assert b.freeze() == layers


def test_radiotap_fcs_is_outside_an_ip_datagram_of_unset_length() -> None:
    packet = (
        RadioTap(present="Flags", Flags="FCS")
        / Dot11FCS(type=2, addr1=ADDRESSES[0])
        / LLC()
        / SNAP()
        / IP()
        / udp()
    )
    data = bytearray(bytes(packet / Raw(b"data")))
    network = RadioTap(data).len + 32
    data[network + 2 : network + 4] = b"\x00\x00"  # segmentation offload: total length left unset
    layers = dissect(bytes(data), RADIOTAP)
    assert layers.network == network and layers.parsed_to == len(data) - 4
    assert [checksum.end for checksum in layers.checksums] == [network + 20, len(data) - 4]


def test_radiotap_fcs_in_a_frame_shorter_than_one() -> None:
    header = bytes(RadioTap(present="Flags", Flags="FCS"))
    layers = dissect(header + b"\x08\x00", RADIOTAP)
    assert layers.parsed_to == len(header) and layers.macs == ()


def test_radiotap_padding_after_the_80211_header() -> None:
    header = bytes(RadioTap(present="Flags", Flags=0x20))
    frame = bytes(dot11(2, 8) / Dot11QoS())  # 26 bytes: padded to 28
    data = header + frame + b"\x00\x00" + bytes(LLC() / SNAP() / IP(src="10.0.0.1", dst="10.0.0.2") / udp())
    layers = dissect(data, RADIOTAP)
    assert layers.network == len(header) + 28 + 8
    assert at(data, layers.ipv4, 4) == [socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2")]


FCS_FRAME = bytes(
    Dot11FCS(type=2, addr1=ADDRESSES[0], addr2=ADDRESSES[1], addr3=ADDRESSES[2])
    / LLC()
    / SNAP()
    / IP()
    / udp()
)
# A later fragment: its body is opaque payload up to the end of the frame, or to the FCS if one is found.
FRAGMENT_FCS = bytes(
    Dot11FCS(type=2, addr1=ADDRESSES[0], addr2=ADDRESSES[1], addr3=ADDRESSES[2], SC=0x0011) / Raw(bytes(30))
)
EXTENDED, VENDOR, RADIOTAP_NS, TLV = 1 << 31, 1 << 30, 1 << 29, 1 << 28
# TSFT and Flags (FCS) over two presence words: bitmaps end at 12, TSFT is aligned to 16, Flags is at 24.
EXTENDED_WORDS, EXTENDED_FIELDS = [0x03 | EXTENDED, 0x01], bytes(4) + bytes(8) + b"\x10" + bytes(3)
EXTENDED_HEADER = radiotap_header(EXTENDED_WORDS, EXTENDED_FIELDS)


@pytest.mark.parametrize(
    ("words", "fields"),
    [
        (EXTENDED_WORDS, EXTENDED_FIELDS),
        # a vendor namespace after the radiotap one: Flags at 12, then the vendor namespace header (aligned
        # to 2) and 4 bytes of vendor data
        ([0x02 | VENDOR | EXTENDED, 0x01], b"\x10\x00" + b"\x00\x11\x22\x01\x04\x00" + bytes(4)),
        # a second radiotap namespace without Flags
        ([0x02 | RADIOTAP_NS | EXTENDED, 0x20], b"\x10\xd0"),
    ],
    ids=["extended", "vendor-namespace", "radiotap-namespace"],
)
def test_radiotap_flags_after_several_bitmaps(words: list[int], fields: bytes) -> None:
    header = radiotap_header(words, fields)
    data = header + FRAGMENT_FCS
    layers = dissect(data, RADIOTAP)
    assert layers.macs == (len(header) + 4, len(header) + 10, len(header) + 16)
    assert layers.payload == len(header) + 24 and layers.parsed_to == len(data) - 4


@pytest.mark.parametrize(
    "words",
    [
        [0x02 | RADIOTAP_NS | EXTENDED, 0x02],  # Flags in a later radiotap namespace
        [0x02 | VENDOR | EXTENDED, RADIOTAP_NS | EXTENDED, 0x02],  # ... after a vendor namespace
        [0x02 | TLV],  # TLVs may hold Flags
        [0x02 | RADIOTAP_NS | VENDOR | EXTENDED, 0x00],  # two namespaces at once
    ],
    ids=["radiotap-namespace", "after-vendor", "tlv", "both-namespaces"],
)
def test_radiotap_flags_that_cannot_be_found_cut_after_the_header(words: list[int]) -> None:
    header = radiotap_header(words, bytes(16))
    layers = dissect(header + FCS_FRAME, RADIOTAP)
    assert (layers.parsed_to, layers.cut, layers.macs) == (len(header), "radiotap fields not dissected", ())


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00\x00\x08", "radiotap header cut short"),
        (b"\x01\x00\x08\x00\x00\x00\x00\x00", "radiotap version 1 not dissected"),
        (b"\x00\x00\x40\x00\x00\x00\x00\x00" + bytes(20), "radiotap header cut short"),
        (b"\x00\x00\x04\x00\x00\x00\x00\x00" + bytes(20), "radiotap header malformed"),
        (radiotap_header([0x02], b"") + bytes(30), "radiotap header malformed"),
        (radiotap_header([0x03], bytes(8)) + bytes(30), "radiotap header malformed"),
        (radiotap_header([0xFFFFFFFF] * 300, b"") + bytes(30), "radiotap header malformed"),
        (struct.pack("<BBHI", 0, 0, 8, EXTENDED) + bytes(30), "radiotap header malformed"),
    ],
    ids=[
        "short",
        "version",
        "length-past-the-frame",
        "length-inside-the-bitmap",
        "flags-outside-the-header",
        "tsft-and-flags-outside-the-header",
        "bitmaps-never-end",
        "extended-bitmap-outside-the-header",
    ],
)
def test_radiotap_malformed_headers_are_cut_at_zero(data: bytes, reason: str) -> None:
    layers = dissect(data, RADIOTAP)
    assert (layers.parsed_to, layers.cut) == (0, reason)


# --- PPI --------------------------------------------------------------------------------------------------


def ppi_frame(flags: int = 0, inner: Packet | None = None, dlt: int = 105) -> Packet:
    """A PPI header with an 802.11-Common field (flags bit 0: FCS present) before `inner`, by default an
    802.11 data frame with an FCS."""
    if inner is None:
        inner = Dot11FCS(type=2, addr1=ADDRESSES[0], addr2=ADDRESSES[1], addr3=ADDRESSES[2]) / LLC() / SNAP()
        inner = inner / IP() / udp()
    return PPI(dlt=dlt, headers=[PPI_Hdr() / PPI_Dot11Common(Pkt_Flags=flags)]) / inner


def test_ppi_80211_with_fcs() -> None:
    data = bytes(ppi_frame(flags=1))
    layers = dissect(data, PPI_LINK)
    assert layers.macs == (36, 42, 48) and at(data, layers.macs, 6) == mac_values(*ADDRESSES[:3])
    assert layers.network == 64 and layers.parsed_to == len(data) - 4


def test_ppi_80211_without_fcs() -> None:
    data = bytes(ppi_frame(inner=data_frame()))
    layers = dissect(data, PPI_LINK)
    assert layers.network == 64 and layers.parsed_to == len(data) and layers.cut is None
    b = Builder(data)
    ppi(b)
    assert b.freeze() == layers


def test_ppi_ethernet() -> None:
    inner = Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b") / IP() / udp()
    data = bytes(ppi_frame(inner=inner, dlt=1))
    layers = dissect(data, PPI_LINK)
    assert layers.macs == (32, 38) and layers.network == 46 and layers.cut is None


def test_ppi_aligned_fields() -> None:
    fields = struct.pack("<HH", 2, 20) + bytes(20) + struct.pack("<HH", 8, 4) + bytes(4)
    data = struct.pack("<BBHI", 0, 1, 8 + len(fields), 105) + fields + bytes(data_frame())
    layers = dissect(data, PPI_LINK)
    assert layers.network == 8 + len(fields) + 32 and layers.cut is None


@pytest.mark.parametrize(
    ("data", "parsed_to", "reason"),
    [
        (b"\x00\x00\x08\x00", 0, "PPI header cut short"),
        (b"\x01\x00\x08\x00\x69\x00\x00\x00", 0, "PPI version 1 not dissected"),
        (struct.pack("<BBHI", 0, 0, 200, 105) + bytes(40), 0, "PPI header cut short"),
        (struct.pack("<BBHI", 0, 0, 4, 105) + bytes(40), 0, "PPI header malformed"),
        (struct.pack("<BBHI", 0, 0, 8, 127) + bytes(40), 8, "PPI link type 127 not dissected"),
        (
            struct.pack("<BBHIHH", 0, 0, 8 + 4 + 24, 105, 30002, 24) + bytes(60),
            8,
            "PPI field type 30002 not dissected",
        ),
        (struct.pack("<BBHIHH", 0, 0, 8 + 4 + 8, 105, 6, 8) + bytes(60), 8, "PPI field type 6 not dissected"),
        (struct.pack("<BBHIHH", 0, 0, 8 + 4 + 20, 105, 2, 200) + bytes(60), 8, "PPI header malformed"),
        (struct.pack("<BBHIHH", 0, 0, 8 + 4 + 19, 105, 2, 19) + bytes(60), 8, "PPI header malformed"),
        (struct.pack("<BBHIH", 0, 0, 8 + 2, 105, 2), 8, "PPI header malformed"),
    ],
    ids=[
        "short",
        "version",
        "long",
        "tiny",
        "link",
        "gps",
        "process",
        "field-long",
        "field-size",
        "field-cut",
    ],
)
def test_ppi_malformed_or_unknown(data: bytes, parsed_to: int, reason: str) -> None:
    layers = dissect(data, PPI_LINK)
    assert (layers.parsed_to, layers.cut) == (parsed_to, reason)


# --- truncation, lying lengths, noise ---------------------------------------------------------------------


def samples() -> list[tuple[str, bytes, int, int]]:
    """(name, frame, link type, where its 802.11 frame starts); link type 127/192 frames end with an FCS."""
    fcs = RadioTap(present="TSFT+Flags", Flags="FCS")
    qos = Dot11QoS(A_MSDU_Present=1)
    amsdu = bytes(dot11(2, 8) / qos) + amsdu_subframe(ADDRESSES[0], ADDRESSES[1], IP() / udp())
    return [
        ("wds-ipv6", bytes(data_frame(TO_DS | FROM_DS, "ipv6")), BARE, 0),
        ("qos", bytes(dot11(2, 8) / Dot11QoS() / LLC() / SNAP() / IP() / udp()), BARE, 0),
        ("amsdu", amsdu, BARE, 0),
        ("beacon", beacon(ORDER), BARE, 0),
        ("rts", bytes(dot11(1, 11)), BARE, 0),
        ("block-ack", block_ack(9, 2, bytes(10)), BARE, 0),
        ("radiotap-fcs", bytes(fcs / FCS_FRAME), RADIOTAP, 17),
        ("radiotap-extended", EXTENDED_HEADER + FRAGMENT_FCS, RADIOTAP, len(EXTENDED_HEADER)),
        ("ppi-fcs", bytes(ppi_frame(flags=1)), PPI_LINK, 32),
    ]


@pytest.mark.parametrize(("name", "data", "linktype", "start"), samples(), ids=[s[0] for s in samples()])
def test_truncated_at_every_byte(name: str, data: bytes, linktype: int, start: int) -> None:
    full = dissect(data, linktype)
    has_fcs = linktype != BARE
    for size in range(len(data) + 1):
        layers = dissect(data[:size], linktype)
        end = max(start, size - 4) if has_fcs else size
        kept = tuple(offset for offset in full.macs if offset + 6 <= end)
        assert layers.macs == kept, size
        assert all(offset + 6 <= layers.parsed_to for offset in layers.macs), size
        for offset in full.macs:
            if offset < end < offset + 6:
                assert layers.parsed_to <= offset, size  # no part of a MAC address is kept
        assert layers.parsed_to <= size
        assert layers.cut is not None or layers.parsed_to == size, size


def test_noise_never_raises() -> None:
    generator = random.Random(80211)
    seeds = [data for _, data, _, _ in samples()]
    for _ in range(3000):
        data = bytearray(generator.choice(seeds))
        for _ in range(generator.randint(1, 6)):
            data[generator.randrange(len(data))] = generator.randrange(256)
        for linktype in (BARE, RADIOTAP, PPI_LINK):
            layers = dissect(bytes(data), linktype)
            assert layers.parsed_to <= len(data)
            assert all(offset + 6 <= layers.parsed_to for offset in layers.macs)


# --- agreement with tshark --------------------------------------------------------------------------------


def write_pcap(path: Path, frames: list[bytes], linktype: int) -> Path:
    records = b"".join(struct.pack("<IIII", 0, 0, len(frame), len(frame)) + frame for frame in frames)
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype) + records)
    return path


MAC_FIELDS = frozenset(
    {"wlan.ra", "wlan.ta", "wlan.da", "wlan.sa", "wlan.bssid", "wlan.staa", "wlan.addr", "eth.dst", "eth.src"}
)


def tshark_positions(path: Path) -> list[dict[str, set[int]]]:
    """For each frame, the offsets where tshark sees MAC, IPv4 and IPv6 addresses and an FCS."""
    pdml = subprocess.run(
        ["tshark", "-r", str(path), "-T", "pdml"], capture_output=True, check=True, timeout=120
    ).stdout
    frames = []
    for packet in ElementTree.fromstring(pdml).iter("packet"):
        found: dict[str, set[int]] = {"mac": set(), "ipv4": set(), "ipv6": set(), "fcs": set()}
        for field in packet.iter("field"):
            name, position = field.get("name", ""), int(field.get("pos", "-1"))
            if name in MAC_FIELDS:
                found["mac"].add(position)
            elif name in ("ip.src", "ip.dst"):
                found["ipv4"].add(position)
            elif name in ("ipv6.src", "ipv6.dst"):
                found["ipv6"].add(position)
            elif name == "wlan.fcs":
                found["fcs"].add(position)
        frames.append(found)
    return frames


def tshark_frames() -> dict[int, tuple[list[bytes], int]]:
    """Frames of each link type, and from which one on they end with an FCS."""
    fcs = RadioTap(present="TSFT+Flags", Flags="FCS")
    qos_htc = bytes(dot11(2, 8, ORDER) / Dot11QoS())
    first = amsdu_subframe(
        "02:00:00:00:00:11", "02:00:00:00:00:22", IP(src="10.0.0.1", dst="10.0.0.2") / udp()
    )
    second = amsdu_subframe(
        "02:00:00:00:00:33", "02:00:00:00:00:44", IP(src="10.0.0.3", dst="10.0.0.4") / udp()
    )
    bare = [
        bytes(data_frame(flags, network))
        for flags in (0, TO_DS, FROM_DS, TO_DS | FROM_DS)
        for network in NETWORKS
    ]
    bare += [
        qos_htc[:26] + b"\x00\x00\x00\x00" + bytes(LLC() / SNAP() / IPv6() / udp()),
        bytes(dot11(2, 8) / Dot11QoS(A_MSDU_Present=1)) + first + bytes(-len(first) % 4) + second,
        bytes(dot11(2, 8, PROTECTED) / Dot11QoS() / Raw(bytes(40))),
        bytes(dot11(2, 4)),
        beacon(),
        beacon(ORDER),
        bytes(dot11(1, 13)),
        bytes(dot11(1, 12)),
        bytes(dot11(1, 11)),
        bytes(dot11(1, 10)),
        block_ack(9, 2, bytes(10)),
        block_ack(9, 0, bytes(130)),
        block_ack(8, 2, bytes(2)),
    ]
    radiotaps = [
        bytes(RadioTap(present="Flags") / data_frame(FROM_DS, "ipv6")),
        bytes(RadioTap(present="Flags", Flags=0x20))
        + bytes(dot11(2, 8) / Dot11QoS())
        + b"\x00\x00"
        + bytes(LLC() / SNAP() / IP() / udp()),
        bytes(fcs / FCS_FRAME),
        EXTENDED_HEADER + FCS_FRAME,
        EXTENDED_HEADER + FRAGMENT_FCS,
        radiotap_header([0x02 | VENDOR | EXTENDED, 0x01], b"\x10\x00\x00\x11\x22\x01\x04\x00" + bytes(4))
        + FRAGMENT_FCS,
    ]
    ppis = [bytes(ppi_frame(inner=data_frame(TO_DS, "ipv6"))), bytes(ppi_frame(flags=1))]
    return {BARE: (bare, len(bare)), RADIOTAP: (radiotaps, 2), PPI_LINK: (ppis, 1)}


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.parametrize("linktype", [BARE, RADIOTAP, PPI_LINK])
def test_offsets_agree_with_tshark(tmp_path: Path, linktype: int) -> None:
    frames, with_fcs = tshark_frames()[linktype]
    seen = tshark_positions(write_pcap(tmp_path / "wlan.pcap", frames, linktype))
    assert len(seen) == len(frames)
    for index, (frame, found) in enumerate(zip(frames, seen, strict=True)):
        layers = dissect(frame, linktype)
        kept = layers.parsed_to
        assert found["mac"], index
        assert set(layers.macs) == {p for p in found["mac"] if p + 6 <= kept}, index
        assert set(layers.ipv4) == {p for p in found["ipv4"] if p + 4 <= kept}, index
        assert set(layers.ipv6) == {p for p in found["ipv6"] if p + 16 <= kept}, index
        if index >= with_fcs:
            assert found["fcs"] == {len(frame) - 4} and kept <= len(frame) - 4, index
        else:
            assert not found["fcs"], index
