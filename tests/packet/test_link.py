"""Ethernet anywhere in a frame, ethertype dispatch and the nesting cap."""

from __future__ import annotations

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether

from anontrace.packet.layers import Builder
from anontrace.packet.link import MAX_DEPTH, enter, ethernet, ethertype


def test_ethernet_at_an_offset_notes_both_macs_and_the_network_layer() -> None:
    frame = b"\xee" * 10 + bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / Dot1Q(vlan=5)
                                 / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=9, dport=9))
    b = Builder(frame)
    ethernet(b, 10)
    layers = b.freeze()
    assert layers.macs == (10, 16)
    assert frame[16:22] == bytes.fromhex("020000000001")
    assert layers.network == 10 + 18 and layers.ipv4 == (28 + 12, 28 + 16)


def test_unknown_ethertype_stops_where_it_starts() -> None:
    b = Builder(bytes(40))
    ethertype(b, 14, 0x88B5)
    layers = b.freeze()
    assert (layers.parsed_to, layers.cut) == (14, "ethertype 0x88b5 not dissected")


def test_short_ethernet_at_an_offset_is_cut_there() -> None:
    b = Builder(bytes(30))
    ethernet(b, 20)
    assert b.freeze().parsed_to == 20


def test_nesting_deeper_than_the_cap_is_cut() -> None:
    b = Builder(bytes(100))
    assert all(enter(b, 10, "tunnel") for _ in range(MAX_DEPTH))
    assert not enter(b, 50, "tunnel")
    layers = b.freeze()
    assert layers.parsed_to == 50 and layers.cut == f"tunnel nested more than {MAX_DEPTH} deep"
