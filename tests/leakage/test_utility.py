"""Utility kept: flow summaries and histograms of flows built with known sizes and durations."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet

from anontrace.leakage.schema import SCHEMA
from anontrace.leakage.utility import UtilityCollector
from anontrace.packet.batch import Batch
from anontrace.packet.frame import Frame
from anontrace.pipeline import RunStats, prepare

MS = 1_000_000
ETHER = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
WEB = ETHER / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=80)
WEB_BACK = ETHER / IP(src="10.0.0.2", dst="10.0.0.1") / TCP(sport=80, dport=40000)
DNS = ETHER / IP(src="10.0.0.1", dst="10.0.0.3") / UDP(sport=5353, dport=53)
BULK = ETHER / IP(src="10.0.0.4", dst="10.0.0.5") / TCP(sport=40001, dport=22)
# (packet, original time in ms, length on the wire)
TRACE: list[tuple[Packet, float, int]] = [
    (WEB, 0, 100), (WEB_BACK, 500, 100), (DNS, 600, 60), (WEB, 1000, 100),
    *[(BULK, 2000 + i / 3, 1000) for i in range(10)],  # 10 packets over 3 ms
    (ETHER / ARP(), 2100, 42), (WEB_BACK, 1500, 100)]
LAST_WEB, DNS_AT, ARP_AT = len(TRACE) - 1, 2, len(TRACE) - 2



def conforms(result: dict[str, Any]) -> None:
    """The section is JSON without NaN or infinities, in the shape the report schema gives it."""
    jsonschema.validate(json.loads(json.dumps(result, allow_nan=False)),
                        {"$defs": SCHEMA["$defs"], "$ref": "#/$defs/utility"})

def trace_batch() -> Batch:
    frames = [Frame(i, round(ms * MS), bytes(p), wirelen, 1) for i, (p, ms, wirelen) in enumerate(TRACE)]
    return prepare(frames, RunStats())


def collect(batch: Batch, pair: bool) -> dict[str, Any]:
    collector = UtilityCollector(pair)
    collector.observe(batch, [None] * len(batch))
    result = collector.result()
    conforms(result)
    return result


PACKET_EDGES = [0.0, 1.0, 2.0, 4.0, 8.0, 16.0]  # the largest flow has 10 packets
BYTE_EDGES = [0.0] + [float(1 << k) for k in range(15)]  # the largest has 10000 bytes; 2**14 > it
DURATION_EDGES = [0.0] + [(1 << k) / 1000 for k in range(12)]  # the longest lasts 1.5 s; 2.048 > it


def test_original_flows_are_summarized_exactly() -> None:
    # flows: web 4 packets, 400 bytes, 1.5 s; dns 1, 60, 0 s; bulk 10, 10000, 3 ms; ARP in none
    original = collect(trace_batch(), pair=True)["original"]
    assert (original["flows"], original["packets"], original["bytes"]) == (3, 15, 10460)
    assert original["packets_per_flow"] == pytest.approx(  # p95 interpolates between 4 and 10
        {"min": 1.0, "median": 4.0, "mean": 5.0, "p95": 4 + 0.9 * 6, "max": 10.0}, rel=1e-12)
    assert original["bytes_per_flow"] == pytest.approx(
        {"min": 60.0, "median": 400.0, "mean": 10460 / 3, "p95": 400 + 0.9 * 9600, "max": 10000.0}, rel=1e-12)
    durations = original["duration_s"]
    assert (durations["min"], durations["median"], durations["max"]) == (0.0, 0.003, 1.5)
    histograms = original["histograms"]
    assert histograms["packets_per_flow"] == {"edges": PACKET_EDGES, "counts": [0, 1, 0, 1, 1]}
    bytes_counts = [0] * 15
    bytes_counts[6] = bytes_counts[9] = bytes_counts[14] = 1  # [32, 64), [256, 512), [8192, 16384)
    assert histograms["bytes_per_flow"] == {"edges": BYTE_EDGES, "counts": bytes_counts}
    duration_counts = [1, 0, 1] + [0] * 8 + [1]  # 0 s, [2 ms, 4 ms), [1.024 s, 2.048 s)
    assert histograms["duration_s"] == {"edges": DURATION_EDGES, "counts": duration_counts}


def test_output_flows_use_output_keys_times_and_written_frames() -> None:
    batch = trace_batch()
    batch.drop(LAST_WEB, "test")
    batch.drop(DNS_AT, "test")
    for position in range(len(batch)):
        batch.ts_ns[position] *= 3  # output time runs three times as fast: durations triple
    result = collect(batch, pair=True)
    anonymized = result["anonymized"]
    assert (anonymized["flows"], anonymized["packets"], anonymized["bytes"]) == (2, 13, 10300)
    assert anonymized["duration_s"]["max"] == 3.0  # web: 0 to 1.0 s, tripled
    assert anonymized["histograms"]["packets_per_flow"] == {"edges": PACKET_EDGES, "counts": [0, 0, 1, 0, 1]}
    edges = [0.0] + [(1 << k) / 1000 for k in range(13)]  # to 4.096 s
    assert anonymized["histograms"]["duration_s"]["edges"] == edges
    assert result["original"]["histograms"]["duration_s"]["edges"] == \
        anonymized["histograms"]["duration_s"]["edges"]  # shared edges on both sides
    assert result["flows_kept_fraction"] == 2 / 3


def test_ports_made_equal_merge_flows() -> None:
    other = ETHER / IP(src="10.0.0.1", dst="10.0.0.3") / UDP(sport=5354, dport=53)
    frames = [Frame(i, i * MS, bytes(p), 60, 1) for i, p in enumerate((DNS, other))]
    batch = prepare(frames, RunStats())
    port = batch.layers[1].transport
    batch.data[1][port:port + 2] = (5353).to_bytes(2, "big")  # as a port bucketing would write it
    result = collect(batch, pair=True)
    assert (result["original"]["flows"], result["anonymized"]["flows"]) == (2, 1)
    assert result["anonymized"]["packets_per_flow"]["max"] == 2.0
    assert result["flows_kept_fraction"] == 0.5


def test_without_the_original_only_the_output_is_summarized() -> None:
    result = collect(trace_batch(), pair=False)
    assert result["original"] is None and result["flows_kept_fraction"] is None
    assert result["anonymized"]["flows"] == 3


def test_no_flows_gives_zeros() -> None:
    frames = [Frame(0, 0, bytes(ETHER / ARP()), 42, 1)]
    result = collect(prepare(frames, RunStats()), pair=True)
    empty = {"min": 0.0, "median": 0.0, "mean": 0.0, "p95": 0.0, "max": 0.0}
    for side in ("original", "anonymized"):
        assert result[side]["flows"] == 0 and result[side]["packets_per_flow"] == empty
        assert result[side]["histograms"]["packets_per_flow"] == {"edges": [0.0, 1.0], "counts": [0]}
    assert result["flows_kept_fraction"] is None


def test_collectors_of_consecutive_pieces_merge_into_one() -> None:
    whole_trace = trace_batch()
    pieces = []
    for start, end in ((0, 1), (1, 5), (5, len(TRACE))):  # the web flow's reply opens the second piece
        frames = [Frame(i, round(ms * MS), bytes(p), wirelen, 1)
                  for i, (p, ms, wirelen) in enumerate(TRACE[start:end], start)]
        collector = UtilityCollector(True)
        collector.observe(prepare(frames, RunStats()), [None] * len(frames))
        pieces.append(collector)
    for later in pieces[1:]:
        pieces[0].merge(later)
    result = pieces[0].result()
    assert result == collect(whole_trace, pair=True)
    assert result["original"]["flows"] == 3 and result["original"]["packets"] == len(TRACE) - 1
