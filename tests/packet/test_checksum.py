"""Incremental checksum updates agree with full recomputation by scapy."""

from __future__ import annotations

import os

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.packet import Packet, Raw

from anontrace.packet.checksum import fix_checksums, ones_sum, update
from anontrace.packet.dissect import dissect


def rewrite_addresses(data: bytes) -> bytearray:
    """Replace every address dissection found with random bytes, fix checksums incrementally."""
    layers = dissect(data, 101)
    out = bytearray(data)
    for offset in layers.ipv4:
        out[offset : offset + 4] = os.urandom(4)
    for offset in layers.ipv6:
        out[offset : offset + 16] = os.urandom(16)
    fix_checksums(data, out, layers.checksums)
    return out


def recomputed(data: bytes, kind: type[Packet]) -> bytes:
    """The same packet with every checksum computed from scratch by scapy."""
    packet = kind(data)
    for layer, name in (
        (IP, "chksum"),
        (TCP, "chksum"),
        (UDP, "chksum"),
        (ICMP, "chksum"),
        (ICMPv6EchoRequest, "cksum"),
    ):
        if packet.haslayer(layer):
            delattr(packet[layer], name)
    return bytes(kind(bytes(packet)))


@pytest.mark.parametrize(
    "packet",
    [
        IP(src="10.1.2.3", dst="10.3.2.1") / TCP(sport=1, dport=2) / Raw(b"hello world!"),
        IP(src="10.1.2.3", dst="10.3.2.1") / UDP(sport=1, dport=2) / Raw(b"odd"),
        IP(src="10.1.2.3", dst="10.3.2.1") / ICMP(type=5, gw="10.0.0.1") / Raw(bytes(28)),
        IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP() / Raw(b"abc"),
        IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6EchoRequest(data=b"12345"),
    ],
    ids=["ipv4-tcp", "ipv4-udp-odd", "icmp-redirect", "ipv6-tcp", "icmpv6"],
)
def test_incremental_equals_full_recomputation(packet: Packet) -> None:
    kind = IP if packet.haslayer(IP) else IPv6
    original = bytes(packet)
    for _ in range(50):
        out = rewrite_addresses(original)
        assert bytes(out) == recomputed(bytes(out), kind)


def test_wrong_checksum_stays_wrong_by_the_same_amount() -> None:
    good = bytearray(bytes(IP(src="10.1.2.3", dst="10.3.2.1") / TCP() / Raw(b"data")))
    bad = bytearray(good)
    error = 0x1234
    value = int.from_bytes(good[36:38], "big")
    bad[36:38] = ((value + error) % 0xFFFF).to_bytes(2, "big")  # off by a known amount
    out_good = rewrite_addresses(bytes(good))
    out_bad = bytearray(bad)
    out_bad[12:20] = out_good[12:20]
    fix_checksums(bytes(bad), out_bad, dissect(bytes(bad), 101).checksums)
    difference = int.from_bytes(out_bad[36:38], "big") - int.from_bytes(out_good[36:38], "big")
    assert difference % 0xFFFF == error


def test_truncated_capture_keeps_checksum_of_the_whole_datagram() -> None:
    full = bytes(IP(src="10.1.2.3", dst="10.3.2.1") / UDP(sport=9, dport=9)
                 / Raw(b"payload that the snaplen cut"))
    cut = full[:30]
    layers = dissect(cut, 101)
    out = bytearray(cut)
    out[12:20] = bytes(range(8))
    fix_checksums(cut, out, layers.checksums)
    whole = bytearray(full)
    whole[12:20] = bytes(range(8))
    assert bytes(out) == recomputed(bytes(whole), IP)[:30]


def test_udp_without_checksum_stays_without() -> None:
    data = bytearray(bytes(IP(src="10.1.2.3", dst="10.3.2.1") / UDP(sport=9, dport=9) / Raw(b"x")))
    data[26:28] = b"\0\0"
    out = rewrite_addresses(bytes(data))
    assert out[26:28] == b"\0\0"


def test_udp_result_zero_is_sent_as_ffff() -> None:
    assert update(0x0001, 0x0000, 0x0001) == 0x0000
    # the same update on a UDP checksum must not produce "no checksum"
    layers_data = bytearray(bytes(IP(src="0.0.0.0", dst="0.0.0.0") / UDP(sport=0, dport=0)))
    for candidate in range(1, 0xFFFF):
        layers_data[26:28] = candidate.to_bytes(2, "big")
        out = bytearray(layers_data)
        out[12:16] = (1).to_bytes(4, "big")
        fix_checksums(bytes(layers_data), out, dissect(bytes(layers_data), 101).checksums)
        if update(candidate, 0, 1) == 0:
            assert out[26:28] == b"\xff\xff"
            return
    pytest.fail("no candidate checksum reached zero")


def test_ones_sum_pads_odd_length() -> None:
    assert ones_sum(b"\x01") == 0x0100
    assert ones_sum(b"\xff\xff\x00\x01") == 0x0001
