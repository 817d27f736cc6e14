"""IPv4 options and fragments, IPv6 extension headers, ARP: offsets checked against scapy."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP, UDP, IPOption_LSRR, IPOption_RR
from scapy.layers.inet6 import (
    HAO,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    IPv6ExtHdrSegmentRouting,
    IPv6ExtHdrSegmentRoutingTLVPadN,
)
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet, Raw

from anontrace.packet.dissect import dissect


def at(packet: Packet, layer: type[Packet]) -> int:
    return len(bytes(packet)) - len(bytes(packet[layer]))


def test_record_route_addresses_are_found() -> None:
    packet = (
        IP(
            src="10.0.0.1",
            dst="10.0.0.2",
            options=[IPOption_RR(routers=["192.0.2.1", "192.0.2.2", "0.0.0.0"])],
        )
        / UDP(sport=9, dport=9)
        / Raw(b"a")
    )
    layers = dissect(bytes(packet), 101)
    option = 20
    assert layers.ipv4 == (12, 16, option + 3, option + 7, option + 11)
    assert layers.transport == at(packet, UDP)


def test_source_route_final_hop_is_the_checksum_destination() -> None:
    packet = (
        IP(src="10.0.0.1", dst="192.0.2.1", options=[IPOption_LSRR(routers=["192.0.2.1", "198.51.100.9"])])
        / TCP()
        / Raw(b"a")
    )
    layers = dissect(bytes(packet), 101)
    tcp_checksum = next(c for c in layers.checksums if c.field == at(packet, TCP) + 16)
    assert tcp_checksum.pseudo == (12, 20 + 3 + 4)  # the last address of the route


def test_malformed_ipv4_option_cuts_after_fixed_header() -> None:
    data = bytearray(bytes(IP(src="10.0.0.1", dst="10.0.0.2", options=[IPOption_RR()])
                           / UDP(sport=9, dport=9)))
    data[21] = 60  # option length runs past the header
    layers = dissect(bytes(data), 101)
    assert layers.parsed_to == 20 and layers.cut == "malformed IPv4 option 7"


def test_bad_ihl_keeps_nothing_of_the_packet() -> None:
    data = bytearray(bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=9, dport=9)))
    data[0] = 0x43
    layers = dissect(bytes(data), 101)
    assert layers.parsed_to == 0 and layers.ipv4 == ()


def test_later_fragment_has_no_transport() -> None:
    first = IP(src="10.0.0.1", dst="10.0.0.2", flags="MF", frag=0, proto=17) / Raw(b"\x00" * 16)
    later = IP(src="10.0.0.1", dst="10.0.0.2", frag=2, proto=17) / Raw(b"\x00" * 16)
    assert dissect(bytes(first), 101).transport == 20
    layers = dissect(bytes(later), 101)
    assert layers.transport == -1 and layers.payload == 20 and layers.parsed_to == 36


def test_segmentation_offload_total_length_zero() -> None:
    data = bytearray(bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP() / Raw(b"z" * 100)))
    data[2:4] = b"\0\0"
    layers = dissect(bytes(data), 101)
    assert layers.parsed_to == len(data) and layers.payload == 40


def test_ipv6_extension_headers_and_home_address() -> None:
    packet = (
        IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrDestOpt(options=[HAO(hoa="2001:db8::99")])
        / UDP(sport=9, dport=9)
        / Raw(b"q")
    )
    layers = dissect(bytes(packet), 101)
    udp = at(packet, UDP)
    assert layers.transport == udp and layers.protocol == 17
    home = bytes(packet).index(bytes.fromhex("20010db8000000000000000000000099"))
    assert layers.ipv6 == (8, 24, home)
    checksum = next(c for c in layers.checksums if c.field == udp + 6)
    assert checksum.pseudo == (home, 24)


def test_routing_header_addresses_and_final_destination() -> None:
    packet = (
        IPv6(src="2001:db8::1", dst="2001:db8::a")
        / IPv6ExtHdrRouting(addresses=["2001:db8::b", "2001:db8::c"], segleft=2)
        / TCP()
    )
    layers = dissect(bytes(packet), 101)
    assert layers.ipv6 == (8, 24, 48, 64)
    checksum = next(c for c in layers.checksums if c.field == at(packet, TCP) + 16)
    assert checksum.pseudo == (8, 64)


def test_segment_routing_header_first_segment_is_final_destination() -> None:
    packet = (
        IPv6(src="2001:db8::1", dst="2001:db8::a")
        / IPv6ExtHdrSegmentRouting(addresses=["2001:db8::f", "2001:db8::a"], segleft=1)
        / UDP(sport=9, dport=9)
    )
    layers = dissect(bytes(packet), 101)
    assert layers.ipv6 == (8, 24, 48, 64)
    checksum = next(c for c in layers.checksums if c.field == at(packet, UDP) + 6)
    assert checksum.pseudo == (8, 48)


def test_later_ipv6_fragment_is_opaque() -> None:
    packet = IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(offset=10, nh=17) / Raw(b"r" * 8)
    layers = dissect(bytes(packet), 101)
    assert layers.transport == -1 and layers.payload == 48 and layers.parsed_to == 56


def test_ipv6_extension_header_cut_short() -> None:
    data = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrDestOpt()
                 / UDP(sport=9, dport=9))[:44]
    layers = dissect(data, 101)
    assert layers.parsed_to == 40 and layers.ipv6 == (8, 24)


def test_ipv6_payload_length_bounds_the_datagram() -> None:
    data = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=9, dport=9)
                 / Raw(b"k" * 4)) + b"TRAILER!"
    layers = dissect(data, 101)
    assert layers.parsed_to == 52 and layers.cut is not None


def test_arp_hardware_addresses_are_macs_and_other_sizes_are_cut() -> None:
    data = bytes(Ether() / ARP(hwsrc="00:1b:21:3a:1b:2c", hwdst="3c:22:fb:10:20:30", psrc="10.0.0.1"))
    layers = dissect(data, 1)
    assert layers.macs == (0, 6, 22, 32) and layers.ipv4 == (28, 38)
    odd = bytearray(data)
    odd[18] = 7  # hardware address size 7: where the protocol addresses sit is no longer known
    layers = dissect(bytes(odd), 1)
    assert layers.parsed_to == 22 and layers.cut == "ARP hardware address size 7 not dissected"


def test_segment_routing_tlvs_are_cut() -> None:
    srh = IPv6ExtHdrSegmentRouting(addresses=["2001:db8::1", "2001:db8::2"], tlv_objects=[
        IPv6ExtHdrSegmentRoutingTLVPadN(padding=b"\xaa" * 6)])
    data = bytes(IPv6(src="2001:db8::9", dst="2001:db8::1") / srh / UDP(sport=9, dport=9))
    layers = dissect(data, 101)
    assert layers.ipv6 == (8, 24, 48, 64) and layers.parsed_to == 80
    assert layers.cut == "IPv6 segment routing TLVs not dissected"


def test_arp_with_a_wrong_ipv4_address_size_is_cut_after_its_fixed_header() -> None:
    data = bytearray(bytes(Ether() / ARP(psrc="10.0.0.1")))
    data[19] = 6
    layers = dissect(bytes(data), 1)
    assert layers.parsed_to == 22 and layers.cut == "ARP IPv4 address size 6 not dissected"
