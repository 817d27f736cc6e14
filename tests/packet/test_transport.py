"""TCP, UDP, ICMP, ICMPv6 headers: payload offsets, checksum scopes, what is cut."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6MLDMultAddrRec,
    ICMPv6MLReport2,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_Redirect,
    ICMPv6NDOptDNSSL,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptRDNSS,
    ICMPv6NDOptRedirectedHdr,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6NDOptUnknown,
    IPv6,
)
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
    layers = dissect(bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=9, dport=9) / Raw(b"u")), 101)
    assert next(c for c in layers.checksums if c.field == 26).zero_is_none


def test_icmp_error_quoted_packet_is_dissected() -> None:
    quoted = IP(src="10.0.0.2", dst="10.0.0.1") / UDP(sport=5, dport=6)
    data = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=3, code=3) / quoted)
    layers = dissect(data, 101)
    assert layers.parsed_to == len(data) and layers.cut is None
    assert layers.ipv4 == (12, 16, 28 + 12, 28 + 16)
    # outer IP, ICMP, then the quoted IP header and UDP checksum, fixed innermost first
    assert [c.field for c in layers.checksums] == [10, 22, 28 + 10, 48 + 6]
    assert layers.checksums[-1].pseudo == (40, 44)


def test_icmp_quoted_header_shorter_than_its_length_field_is_cut() -> None:
    quoted = bytearray(bytes(IP(src="10.0.0.2", dst="10.0.0.1", options=[IPOption_RR()]) / UDP()))
    data = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=11) / Raw(bytes(quoted[:22])))
    layers = dissect(data, 101)
    assert layers.parsed_to == 28 + 20 and layers.cut == "IPv4 options cut short"
    assert layers.ipv4[:4] == (12, 16, 40, 44)


def test_icmp_quoting_icmp_errors_is_capped() -> None:
    inner = IP(src="10.9.9.9", dst="10.0.0.1") / UDP(sport=9, dport=9)
    for _ in range(12):
        inner = IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=3) / inner
    data = bytes(inner)
    layers = dissect(data, 101)
    assert layers.cut is not None and "nested more than 8 deep" in layers.cut
    assert len(layers.ipv4) == 2 * 9


def test_icmp_redirect_gateway_is_an_address() -> None:
    data = bytes(
        IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=5, gw="10.0.0.254") / IP(src="10.0.0.2", dst="8.8.8.8")
    )
    layers = dissect(data, 101)
    assert layers.ipv4 == (12, 16, 24, 40, 44) and layers.cut is None


def test_icmp_echo_data_is_payload() -> None:
    data = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / ICMP() / Raw(b"ping" * 8))
    layers = dissect(data, 101)
    assert layers.payload == 28 and layers.parsed_to == len(data) and layers.cut is None


def test_neighbour_solicitation_target_and_link_layer_option() -> None:
    packet = (
        IPv6(src="fe80::1", dst="ff02::1:ff00:2")
        / ICMPv6ND_NS(tgt="fe80::2")
        / ICMPv6NDOptSrcLLAddr(lladdr="00:11:22:33:44:55")
    )
    data = bytes(packet)
    layers = dissect(data, 101)
    assert layers.ipv6 == (8, 24, 48)
    assert layers.macs == (66,) and data[66:72] == bytes.fromhex("001122334455")
    assert layers.parsed_to == len(data) and layers.cut is None


def test_router_advertisement_prefix_dns_servers_and_search_list() -> None:
    packet = (
        IPv6(src="fe80::1", dst="ff02::1") / ICMPv6ND_RA()
        / ICMPv6NDOptPrefixInfo(prefixlen=64, prefix="2001:db8:7:8::")
        / ICMPv6NDOptRDNSS(dns=["2001:db8::53", "2001:db8::54"])
        / ICMPv6NDOptDNSSL(searchlist=["corp.example.com."])
        / ICMPv6NDOptMTU() / ICMPv6NDOptSrcLLAddr(lladdr="00:11:22:33:44:55")
    )
    data = bytes(packet)
    layers = dissect(data, 101)
    assert layers.cut is None and layers.parsed_to == len(data)
    (prefix,) = layers.prefixes
    assert data[prefix.offset:prefix.offset + 16] == bytes.fromhex("20010db8000700080000000000000000")
    assert prefix.length == 64
    servers = [data[o:o + 16].hex() for o in layers.ipv6[2:]]
    assert servers == ["20010db8000000000000000000000053", "20010db8000000000000000000000054"]
    (name,) = layers.names
    assert data[name.offset:name.end] == b"\x04corp\x07example\x03com\x00"
    assert data[layers.macs[0]:layers.macs[0] + 6] == bytes.fromhex("001122334455")


def test_unknown_nd_option_is_cut_at_the_option() -> None:
    packet = (IPv6(src="fe80::1", dst="ff02::1") / ICMPv6ND_RA()
              / ICMPv6NDOptUnknown(type=200, data=b"secrets!!!"))
    data = bytes(packet)
    layers = dissect(data, 101)
    assert layers.parsed_to == 40 + 16 and layers.cut == "ICMPv6 option 200 not dissected"


def test_redirect_carries_the_redirected_packet() -> None:
    quoted = IPv6(src="2001:db8::5", dst="2001:db8:1::9") / UDP(sport=9, dport=9)
    packet = (IPv6(src="fe80::1", dst="fe80::2") / ICMPv6ND_Redirect(tgt="fe80::3", dst="2001:db8:1::9")
              / ICMPv6NDOptRedirectedHdr(pkt=quoted))
    data = bytes(packet)
    layers = dissect(data, 101)
    assert layers.cut is None
    inner = 40 + 40 + 8
    assert layers.ipv6 == (8, 24, 48, 64, inner + 8, inner + 24)


def test_mld_reports_name_their_sources() -> None:
    record = ICMPv6MLDMultAddrRec(dst="ff3e::1234", sources=["2001:db8::7", "2001:db8::8"])
    packet = IPv6(src="fe80::1", dst="ff02::16") / ICMPv6MLReport2(records=[record])
    data = bytes(packet)
    layers = dissect(data, 101)
    assert layers.cut is None
    assert [data[o:o + 16].hex()[-4:] for o in layers.ipv6[2:]] == ["1234", "0007", "0008"]


def test_icmpv6_error_quoted_packet_is_dissected() -> None:
    packet = (
        IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6DestUnreach() / IPv6(src="2001:db8::2")
        / UDP(sport=9, dport=9)
    )
    layers = dissect(bytes(packet), 101)
    assert layers.cut is None and layers.ipv6 == (8, 24, 56, 72)
