"""TCP, UDP, ICMP, ICMPv6 headers: payload offsets, checksum scopes, what is cut."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.packet import Raw

from anontrace.packet.dissect import dissect


def test_tcp_payload_after_options() -> None:
    data = bytes(
        IP(src="10.0.0.1", dst="10.0.0.2") / TCP(options=[("MSS", 1460), ("NOP", None)]) / Raw(b"p" * 9)
    )
    layers = dissect(data, 101)
    assert layers.payload == 20 + 28 and layers.parsed_to == len(data)
    checksum = next(c for c in layers.checksums if c.field == 36)
    assert (checksum.start, checksum.end, checksum.pseudo, checksum.address_size) == (
        20,
        len(data),
        (12, 16),
        4,
    )


def test_tcp_bad_data_offset_cuts_at_the_tcp_header() -> None:
    data = bytearray(bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP() / Raw(b"p" * 9)))
    data[32] = 0x30  # data offset 3 words: shorter than a TCP header
    layers = dissect(bytes(data), 101)
    assert layers.parsed_to == 20 and "TCP data offset" in (layers.cut or "")


def test_tcp_header_cut_by_snaplen_is_kept() -> None:
    data = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP())[:30]
    layers = dissect(data, 101)
    assert layers.parsed_to == 30 and layers.cut is None


def test_udp_checksum_zero_means_none() -> None:
    layers = dissect(bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP() / Raw(b"u")), 101)
    assert next(c for c in layers.checksums if c.field == 26).zero_is_none


def test_icmp_error_quoted_packet_is_cut() -> None:
    quoted = IP(src="10.0.0.2", dst="10.0.0.1") / UDP(sport=5, dport=6)
    data = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=3, code=3) / quoted)
    layers = dissect(data, 101)
    assert layers.parsed_to == 28 and layers.cut == "ICMP type 3 quoted packet not dissected"
    assert layers.ipv4 == (12, 16)


def test_icmp_redirect_gateway_is_an_address() -> None:
    data = bytes(
        IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=5, gw="10.0.0.254") / IP(src="10.0.0.2", dst="8.8.8.8")
    )
    layers = dissect(data, 101)
    assert layers.ipv4 == (12, 16, 24) and layers.parsed_to == 28


def test_icmp_echo_data_is_payload() -> None:
    data = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / ICMP() / Raw(b"ping" * 8))
    layers = dissect(data, 101)
    assert layers.payload == 28 and layers.parsed_to == len(data) and layers.cut is None


def test_neighbour_solicitation_target_mapped_options_cut() -> None:
    packet = (
        IPv6(src="fe80::1", dst="ff02::1:ff00:2")
        / ICMPv6ND_NS(tgt="fe80::2")
        / ICMPv6NDOptSrcLLAddr(lladdr="00:11:22:33:44:55")
    )
    layers = dissect(bytes(packet), 101)
    assert layers.ipv6 == (8, 24, 48)
    assert layers.parsed_to == 64 and layers.cut == "ICMPv6 type 135 options not dissected"


def test_icmpv6_error_quoted_packet_is_cut() -> None:
    packet = (
        IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6DestUnreach() / IPv6(src="2001:db8::2") / UDP()
    )
    layers = dissect(bytes(packet), 101)
    assert layers.parsed_to == 48 and layers.cut == "ICMPv6 type 1 quoted packet not dissected"
