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
