"""generalize over a batch's table, in the cases the stress runs of `tests/packet/test_table.py`
cannot reach by chance: a keyed flow label of 0 (written as 1), sequence offsets on SACK edges,
and the window bucket; each against the frame-by-frame path and an independent computation."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from anontrace.keys import Key
from anontrace.packet.frame import Frame
from anontrace.pipeline import RunStats, prepare
from anontrace.rules.compile import read_rules
from anontrace.transforms.generalize import Generalize

LINK = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def _generalize(profile: str) -> Generalize:
    found = [t for t in read_rules(profile).build(Key(bytes(range(32)))) if isinstance(t, Generalize)]
    return found[0]


def _both_ways(transform: Generalize, packets: list[bytes]) -> tuple[list[bytearray], list[bytearray]]:
    """The transform's output for `packets`, through the table and frame by frame."""
    frames = [Frame(0, i, data, len(data), 1) for i, data in enumerate(packets)]
    outputs = []
    for columns in (True, False):
        batch = prepare(frames, RunStats(), True, columns)
        assert (batch.table is not None and len(batch.table) == len(frames)) == columns
        outputs.append(list(transform.apply(batch).data))
    return outputs[0], outputs[1]


def test_a_keyed_flow_label_of_zero_is_written_as_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """0 would read as "no label"; both paths turn a keyed value of 0 into 1."""
    transform = _generalize("default")
    packets = [bytes(LINK / IPv6(src=f"2001:db8::{i}", dst="2001:db8::ff", fl=label) / TCP())
               for i, label in ((1, 5), (2, 6), (3, 0))]
    real = transform.flow_labels
    monkeypatch.setattr(transform, "flow_labels", lambda message: 0 if message[-1] == 5 else real(message))
    table, frames = _both_ways(transform, packets)
    assert table == frames
    labels = [int.from_bytes(out[14:18], "big") & 0xFFFFF for out in table]
    assert labels[0] == 1
    assert labels[1] == (real(packets[1][22:38] + (6).to_bytes(3, "big")) or 1)
    assert labels[2] == 0  # no label stays no label


def test_sequence_offsets_reach_the_sack_edges() -> None:
    """With `tcp_sequence: offset` (strict), SACK edges get the backward offset, as the
    acknowledgement number does: edge - ack is kept exactly."""
    transform = _generalize("strict")
    sack = bytes([1, 1, 5, 18]) + (1000).to_bytes(4, "big") + (2000).to_bytes(4, "big") \
        + (3000).to_bytes(4, "big") + (4000).to_bytes(4, "big")
    packet = bytes(LINK / IP(src="192.0.2.1", dst="192.0.2.2") / TCP(
        sport=40000, dport=443, seq=7, ack=500, flags="A", options=[]) / Raw(b"x"))
    header = 14 + 20
    packet = packet[:header + 12] + bytes([(5 + 5) << 4]) + packet[header + 13:header + 20] + sack \
        + packet[header + 20:]
    packet = packet[:16] + (len(packet) - 14).to_bytes(2, "big") + packet[18:]
    table, frames = _both_ways(transform, [packet])
    assert table == frames
    out = table[0]
    ack = int.from_bytes(out[header + 8:header + 12], "big")
    edges = [int.from_bytes(out[header + 24 + 4 * i:header + 28 + 4 * i], "big") for i in range(4)]
    assert ack != 500  # the offset moved it
    assert [(edge - ack) % 2**32 for edge in edges] == [500, 1500, 2500, 3500]


@pytest.mark.parametrize("window", [0, 1, 2, 3, 255, 256, 4097, 32768, 65535])
def test_the_window_bucket_is_the_highest_power_of_two_not_above_it(window: int) -> None:
    transform = _generalize("strict")
    packet = bytes(LINK / IP(src="192.0.2.1", dst="192.0.2.2") / TCP(window=window))
    table, frames = _both_ways(transform, [packet])
    assert table == frames
    expected = max((1 << bit for bit in range(16) if 1 << bit <= window), default=0)
    assert int.from_bytes(table[0][14 + 20 + 14:14 + 20 + 16], "big") == expected
