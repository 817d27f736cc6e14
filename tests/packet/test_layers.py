"""The dissection builder: where a stop cuts, and how the trailer is named."""

from __future__ import annotations

from anontrace.packet.layers import Builder


def test_stop_cuts_and_keeps_the_first_reason() -> None:
    b = Builder(bytes(100))
    b.stop(40, "first")
    b.stop(60, "later, beyond the cut")
    layers = b.freeze()
    assert (layers.parsed_to, layers.payload, layers.cut) == (40, 40, "first")


def test_stop_at_the_end_is_not_a_cut() -> None:
    b = Builder(bytes(30))
    b.stop(30, "nothing left")
    assert b.freeze().cut is None


def test_bytes_after_the_datagram_are_a_trailer() -> None:
    b = Builder(bytes(64))
    b.end, b.payload = 46, 54
    layers = b.freeze()
    assert layers.parsed_to == 46 and layers.payload == 46
    assert layers.cut == "link-layer padding or trailer after the datagram"


def test_headers_are_listed_outermost_first_with_quoted_ones_marked() -> None:
    from scapy.layers.inet import ICMP, IP, UDP

    from anontrace.packet.dissect import dissect
    from anontrace.packet.layers import Header

    data = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=3) / IP(src="10.0.0.2", dst="10.0.0.9")
                 / UDP(sport=1234, dport=9))
    assert dissect(data, 101).headers == (Header("ipv4", 0), Header("icmp", 20),
                                          Header("ipv4", 28, quoted=True), Header("udp", 48, quoted=True))
