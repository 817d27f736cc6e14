"""Flow tables: per-flow totals in both directions, counted frame by frame or a batch at once, merged."""

from __future__ import annotations

import ipaddress

import numpy as np
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import ARP, Ether

from anontrace.flows import FiveTuple, original_side, times
from anontrace.flowtable import Flow, FlowTable
from tests.helpers import make_batch

A, B = ipaddress.ip_address("192.0.2.1").packed, ipaddress.ip_address("198.51.100.7").packed
C = ipaddress.ip_address("203.0.113.9").packed


def test_both_directions_are_one_flow_oriented_by_the_first_frame() -> None:
    table = FlowTable()
    there = FiveTuple(6, A, 40000, B, 443)
    table.add(there, 10, 60, None)
    table.add(there.reversed(), 25, 1500, "web")
    table.add(there, 17, 40, "other")
    (flow,) = table
    assert flow.key == there
    assert (flow.first_ns, flow.last_ns) == (10, 25)
    assert (flow.forward_packets, flow.forward_bytes) == (2, 100)
    assert (flow.backward_packets, flow.backward_bytes) == (1, 1500)
    assert (flow.packets, flow.bytes) == (3, 1600)
    assert flow.label == "web"  # the first labelled frame names the flow


def test_distinct_ports_are_distinct_flows() -> None:
    table = FlowTable()
    table.add(FiveTuple(17, A, 1, B, 53), 0, 10)
    table.add(FiveTuple(17, A, 2, B, 53), 0, 10)
    table.add(FiveTuple(6, A, 1, B, 53), 0, 10)
    assert len(table) == 3


def test_a_batch_counts_like_its_frames_one_by_one() -> None:
    frames = [bytes(Ether() / IP(src="192.0.2.1", dst="198.51.100.7") / TCP(sport=40000, dport=443)),
              bytes(Ether() / IP(src="198.51.100.7", dst="192.0.2.1") / TCP(sport=443, dport=40000)),
              bytes(Ether() / IP(src="192.0.2.1", dst="198.51.100.7") / TCP(sport=40000, dport=443)),
              bytes(Ether() / ARP())]
    batch = make_batch(frames)
    table = FlowTable()
    table.add_keys(original_side(batch), times([10, 25, 17, 30]), np.array([60, 1500, 40, 42]),
                   [None, "web", "other", "arp"])
    (flow,) = table
    assert flow == Flow(FiveTuple(6, A, 40000, B, 443), 10, 25, 2, 100, 1, 1500, "web")
    assert [column.tolist() for column in table.columns()] == [[3], [1600], [15]]


def test_times_beyond_64_bits_stay_exact() -> None:
    # a crafted capture's times can be anything: flows still measure them exactly
    table = FlowTable()
    key = FiveTuple(17, A, 1, B, 53)
    table.add(key, 5, 10)
    table.add(key, 1 << 70, 10)
    table.add(key.reversed(), (1 << 70) + 3, 20)
    (flow,) = table
    assert (flow.first_ns, flow.last_ns, flow.packets, flow.bytes) == (5, (1 << 70) + 3, 3, 40)


def test_a_table_merged_with_a_later_one_counts_as_one_table() -> None:
    there, other = FiveTuple(6, A, 40000, B, 443), FiveTuple(17, B, 53, C, 5353)
    earlier, later = FlowTable(), FlowTable()
    earlier.add(there, 10, 60, None)
    later.add(other, 12, 80, "dns")  # a flow new here, then one that began there, its reply first
    later.add(there.reversed(), 25, 1500, "web")
    later.add(there, 17, 40, "other")
    earlier.merge(later)
    assert list(earlier) == [Flow(there, 10, 25, 2, 100, 1, 1500, "web"),
                             Flow(other, 12, 12, 1, 80, 0, 0, "dns")]
    earlier.add(other.reversed(), 30, 5)  # and it goes on as one table
    assert list(earlier)[1] == Flow(other, 12, 30, 1, 80, 1, 5, "dns")


def test_a_merged_flow_keeps_its_first_label_and_times_beyond_64_bits() -> None:
    key = FiveTuple(17, A, 1, B, 53)
    earlier, later = FlowTable(), FlowTable()
    earlier.add(key, 5, 10, "first")
    later.add(key.reversed(), 1 << 70, 20, "second")
    earlier.merge(later)
    later.merge(FlowTable())  # nothing to take in
    assert list(earlier) == [Flow(key, 5, 1 << 70, 1, 10, 1, 20, "first")]
    assert len(later) == 1 and next(iter(later)).key == key.reversed()
