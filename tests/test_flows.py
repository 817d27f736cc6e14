"""Flow keys read from frames at dissection offsets, one frame or a batch side at a time."""

from __future__ import annotations

import ipaddress

import numpy as np
from scapy.layers.inet import ICMP, IP, TCP, UDP, UDPerror
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet

from anontrace.flows import (
    FiveTuple,
    counterparts,
    destination_of,
    distinct,
    five_tuple,
    key_of,
    original_keys,
    original_side,
    output_keys,
    output_side,
    reversed_row,
    source_of,
    times,
)
from anontrace.packet.dissect import dissect
from tests.helpers import make_batch

ETHERNET = 1
A, B = ipaddress.ip_address("192.0.2.1").packed, ipaddress.ip_address("198.51.100.7").packed


def key(packet: Packet) -> FiveTuple | None:
    data = bytes(packet)
    return five_tuple(data, dissect(data, ETHERNET))


def test_tcp_and_udp_keys_read_addresses_and_ports() -> None:
    assert key(Ether() / IP(src="192.0.2.1", dst="198.51.100.7") / TCP(sport=1234, dport=80)) == \
        FiveTuple(6, A, 1234, B, 80)
    assert key(Ether() / IP(src="198.51.100.7", dst="192.0.2.1") / UDP(sport=53, dport=5353)) == \
        FiveTuple(17, B, 53, A, 5353)


def test_ipv6_and_icmp_keys() -> None:
    v6 = key(Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=1, dport=2))
    assert v6 == FiveTuple(17, ipaddress.ip_address("2001:db8::1").packed, 1,
                           ipaddress.ip_address("2001:db8::2").packed, 2)
    assert key(Ether() / IP(src="192.0.2.1", dst="198.51.100.7") / ICMP()) == FiveTuple(1, A, 0, B, 0)


def test_icmp_error_is_keyed_by_its_own_header_not_the_quoted_one() -> None:
    error = Ether() / IP(src="198.51.100.7", dst="192.0.2.1") / ICMP(type=3, code=3) / \
        IP(src="192.0.2.1", dst="198.51.100.7") / UDPerror(sport=999, dport=53)
    assert key(error) == FiveTuple(1, B, 0, A, 0)


def test_frames_without_ip_have_no_key() -> None:
    assert key(Ether() / ARP(psrc="192.0.2.1", pdst="198.51.100.7")) is None
    truncated = bytes(Ether() / IP(src="192.0.2.1", dst="198.51.100.7") / TCP())[:14 + 16]
    assert five_tuple(truncated, dissect(bytes(Ether() / IP() / TCP()), ETHERNET)) is None


C = ipaddress.ip_address("203.0.113.9").packed
V6A, V6B = ipaddress.ip_address("2001:db8::1").packed, ipaddress.ip_address("2001:db8::2").packed
SIDES = [Ether() / IP(src="192.0.2.1", dst="198.51.100.7") / TCP(sport=1234, dport=80),
         Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=1, dport=2),
         Ether() / IP(src="198.51.100.7", dst="192.0.2.1") / ICMP(type=3, code=3)
         / IP(src="192.0.2.1", dst="198.51.100.7") / UDPerror(sport=999, dport=53),
         Ether() / ARP(psrc="192.0.2.1", pdst="198.51.100.7"),
         Ether() / IP(src="192.0.2.1", dst="198.51.100.7") / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(),
         Ether() / IP(src="192.0.2.1", dst="198.51.100.7") / TCP(sport=1234, dport=80)]


def test_a_batch_is_keyed_on_each_side_from_its_own_bytes() -> None:
    batch = make_batch([bytes(p) for p in SIDES])
    batch.data[0][26:30] = C  # the output rewrote the first frame's source address
    batch.drop(1, "test")
    del batch.data[5][14 + 16:]  # and cut the last frame inside its destination address
    # IP-in-IP: the outer header's protocol field (4) names what follows; no ports
    assert original_keys(batch) == [FiveTuple(6, A, 1234, B, 80), FiveTuple(17, V6A, 1, V6B, 2),
                                    FiveTuple(1, B, 0, A, 0), None, FiveTuple(4, A, 0, B, 0),
                                    FiveTuple(6, A, 1234, B, 80)]
    assert output_keys(batch) == [FiveTuple(6, C, 1234, B, 80), None, FiveTuple(1, B, 0, A, 0), None,
                                  FiveTuple(4, A, 0, B, 0), None]
    assert output_side(batch).positions.tolist() == [0, 2, 4]
    assert original_side(batch).positions.tolist() == [0, 1, 2, 4, 5]
    # the written keys are those of frames 0, 2 and 4: the 1st, 3rd and 4th original keys
    assert counterparts(batch).tolist() == [0, 2, 3]


def test_both_directions_of_a_flow_share_a_canonical_row() -> None:
    there = FiveTuple(6, A, 40000, B, 443)
    out = Ether() / IP(src="192.0.2.1", dst="198.51.100.7") / TCP(sport=40000, dport=443)
    back = Ether() / IP(src="198.51.100.7", dst="192.0.2.1") / TCP(sport=443, dport=40000)
    batch = make_batch([bytes(out), bytes(back)])
    keys = original_side(batch)
    assert keys.canonical() == [there.row(), there.row()]  # A sorts before B: A's direction is canonical
    assert keys.forward().tolist() == [True, False]
    assert key_of(reversed_row(there.row())) == there.reversed()


def test_a_key_is_the_same_for_both_directions_and_reads_as_text() -> None:
    assert FiveTuple(17, A, 1, B, 53).canonical() == FiveTuple(17, B, 53, A, 1).canonical()
    assert FiveTuple(6, A, 1, B, 53).text() == ("6", "192.0.2.1", "1", "198.51.100.7", "53")


def test_a_row_holds_its_addresses_at_their_size() -> None:
    row = FiveTuple(6, A, 40000, B, 443).row()
    assert (source_of(row), destination_of(row)) == (A, B)
    wide = FiveTuple(17, V6A, 1, V6B, 2).row()
    assert (source_of(wide), destination_of(wide)) == (V6A, V6B)


def test_times_that_do_not_fit_64_bits_are_python_integers() -> None:
    assert times([1, 1 << 64]).dtype == object and times([1, 2]).dtype == np.int64
    assert times([-(1 << 63), (1 << 63) - 1]).dtype == np.int64


def test_distinct_rows_come_in_order_of_first_appearance() -> None:
    for width in (2, 4, 38):  # 4-byte rows are sorted as integers, others as blobs
        rows = np.array([[9] * width, [1] * width, [9] * width, [5] * width, [1] * width], np.uint8)
        found, which = distinct(rows)
        assert found == [bytes([9] * width), bytes([1] * width), bytes([5] * width)]
        assert which.tolist() == [0, 1, 0, 2, 1]
    assert distinct(np.zeros((0, 4), np.uint8))[0] == []


