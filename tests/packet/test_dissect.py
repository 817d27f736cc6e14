"""Dissection of link layers, checked against scapy's view of the same bytes."""

from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, CookedLinux, Dot1AD, Dot1Q, Ether, Loopback
from scapy.packet import Packet, Raw

from anontrace.packet.dissect import dissect


def offset_of(packet: Packet, layer: type[Packet]) -> int:
    """Where scapy says `layer` starts in the built packet."""
    return len(bytes(packet)) - len(bytes(packet[layer]))


IPV4_TCP = IP(src="192.0.2.1", dst="198.51.100.2") / TCP(sport=1234, dport=80) / Raw(b"x" * 30)
IPV6_UDP = IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=5353, dport=53) / Raw(b"y" * 20)


@pytest.mark.parametrize(
    "frame,linktype",
    [
        (Ether() / IPV4_TCP, 1),
        (Ether() / Dot1Q(vlan=10) / IPV4_TCP, 1),
        (Ether(type=0x88A8) / Dot1AD(vlan=100) / Dot1Q(vlan=10) / IPV4_TCP, 1),
        (CookedLinux(proto=0x0800) / IPV4_TCP, 113),
        (Loopback(type=2) / IPV4_TCP, 0),
    ],
    ids=["ethernet", "vlan", "qinq", "sll", "null"],
)
def test_link_layers_reach_ipv4_and_tcp(frame: Packet, linktype: int) -> None:
    data = bytes(frame)
    layers = dissect(data, linktype)
    ip, tcp = offset_of(frame, IP), offset_of(frame, TCP)
    assert (layers.network, layers.ethertype, layers.transport, layers.protocol) == (ip, 0x0800, tcp, 6)
    assert layers.ipv4 == (ip + 12, ip + 16)
    assert layers.payload == offset_of(frame, Raw)
    assert layers.parsed_to == len(data) and layers.cut is None


def test_linux_sll2_and_bsd_loop_big_endian_and_null_swapped() -> None:
    packet = bytes(IPV6_UDP)
    sll2 = struct.pack("!HHIHBB8s", 0x86DD, 0, 3, 1, 0, 6, b"\x02" * 8) + packet
    loop = struct.pack("!I", 24) + packet
    null_big_endian = struct.pack(">I", 30) + packet
    for data, linktype, network in ((sll2, 276, 20), (loop, 108, 4), (null_big_endian, 0, 4)):
        layers = dissect(data, linktype)
        assert layers.network == network and layers.ethertype == 0x86DD, linktype
        assert layers.ipv6 == (network + 8, network + 24)
        assert layers.transport == network + 40 and layers.protocol == 17


@pytest.mark.parametrize("linktype", [101, 12, 14, 228])
def test_raw_ipv4_link_types(linktype: int) -> None:
    layers = dissect(bytes(IPV4_TCP), linktype)
    assert layers.network == 0 and layers.transport == 20 and layers.cut is None


def test_linktype_229_is_ipv6_only() -> None:
    assert dissect(bytes(IPV6_UDP), 229).transport == 40
    layers = dissect(bytes(IPV4_TCP), 229)
    assert layers.parsed_to == 0 and layers.cut == "bad IPv6 version 4"


def test_unknown_link_type_keeps_nothing() -> None:
    layers = dissect(b"\x01\x02\x03\x04", 147)  # USER0: private use, never dissected
    assert layers.parsed_to == 0 and layers.cut == "link type USER0 not dissected"


def test_unknown_ethertype_is_cut_after_the_link_header() -> None:
    frame = bytes(Ether(type=0x88CC) / Raw(b"lldp-data"))
    layers = dissect(frame, 1)
    assert layers.parsed_to == 14 and layers.cut == "ethertype 0x88cc not dissected"


def test_llc_frame_is_cut_after_the_link_header() -> None:
    frame = bytes(Ether(dst="01:80:c2:00:00:00", type=38) / Raw(b"\x42\x42\x03" + bytes(35)))
    layers = dissect(frame, 1)
    assert layers.parsed_to == 14 and "802.3" in (layers.cut or "")


def test_ethernet_padding_is_cut_as_trailer() -> None:
    frame = bytes(Ether() / IP(src="192.0.2.1", dst="192.0.2.2") / TCP(flags="A")) + bytes(6)
    layers = dissect(frame, 1)
    assert layers.parsed_to == 54 and layers.cut == "link-layer padding or trailer after the datagram"


def test_arp_addresses() -> None:
    frame = Ether() / ARP(psrc="10.0.0.1", pdst="10.0.0.2")
    layers = dissect(bytes(frame), 1)
    arp = offset_of(frame, ARP)
    assert layers.ipv4 == (arp + 14, arp + 24)
    assert layers.parsed_to == arp + 28


def test_arp_cut_short_keeps_no_partial_address() -> None:
    frame = bytes(Ether() / ARP(psrc="10.0.0.1", pdst="10.0.0.2"))[: 14 + 20]
    layers = dissect(frame, 1)
    assert layers.parsed_to == 14 and layers.ipv4 == ()


def test_vlan_tag_cut_short() -> None:
    frame = bytes(Ether() / Dot1Q(vlan=10) / IPV4_TCP)[:16]
    layers = dissect(frame, 1)
    assert layers.parsed_to == 12 and layers.cut == "VLAN tag cut short"


@pytest.mark.parametrize("size", range(0, 80, 7))
def test_never_raises_on_cut_frames(size: int) -> None:
    for frame, linktype in (
        (Ether() / IPV4_TCP, 1),
        (Ether() / IPV6_UDP, 1),
        (CookedLinux() / IPV4_TCP, 113),
    ):
        data = bytes(frame)[:size]
        layers = dissect(data, linktype)
        assert 0 <= layers.payload <= layers.parsed_to <= len(data)
        assert all(offset + 4 <= len(data) for offset in layers.ipv4)
        assert all(offset + 16 <= len(data) for offset in layers.ipv6)


def test_sunatm_keeps_only_its_pseudo_header() -> None:
    layers = dissect(bytes([0x80, 1, 0, 32]) + b"\xaa\xaa\x03" + bytes(40), 123)
    assert layers.parsed_to == 4 and layers.cut == "link type SUNATM not dissected"


def test_cooked_headers_carry_the_source_mac() -> None:
    sll = bytes(CookedLinux(src=bytes.fromhex("001b213a1b2c") + b"\0\0", lladdrlen=6, proto=0x0800)
                / IP(src="10.0.0.1", dst="10.0.0.2"))
    layers = dissect(sll, 113)
    assert layers.macs == (6,) and sll[6:12] == bytes.fromhex("001b213a1b2c")
    odd = bytearray(sll)
    odd[5] = 8  # an 8-byte link-layer address (not a MAC) is not kept
    layers = dissect(bytes(odd), 113)
    assert layers.parsed_to == 0 and layers.cut == "Linux cooked link-layer address of 8 bytes not dissected"
