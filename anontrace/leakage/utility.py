"""Utility kept: flows, packets and bytes per flow and flow durations, before and after the rules.

The same summaries on both sides, with histograms on shared fixed log2 edges, make the privacy /
utility trade-off of a rule file readable bin by bin: port bucketing merges flows, dropping frames
shortens them, timing noise stretches or shrinks their durations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from anontrace.flows import batch_times, original_side, output_side, wire_lengths
from anontrace.flowtable import FlowTable
from anontrace.packet.batch import Batch
from anontrace.packet.frame import NS_PER_SECOND

DURATION_UNIT_NS = 1_000_000  # duration histogram edges are 0 and 1 ms times powers of two


class UtilityCollector:
    """An observer that counts flows of the ORIGINAL frames (`pair`) and of the output.

    An original flow counts every original frame, including those left out of the output; an
    output flow counts the frames written, under their output 5-tuple and output time. Bytes are
    the frame's length on the wire. Frames without an IP datagram belong to no flow."""

    def __init__(self, pair: bool) -> None:
        self.pair = pair
        self.original = FlowTable()
        self.anonymized = FlowTable()

    def observe(self, batch: Batch, labels: Sequence[str | None]) -> None:
        original_ns, output_ns = batch_times(batch)
        if self.pair:
            self.original.add_keys(original_side(batch), original_ns, wire_lengths(batch))
        self.anonymized.add_keys(output_side(batch), output_ns, wire_lengths(batch))  # written frames

    def merge(self, later: UtilityCollector) -> None:
        """Take in what `later` counted over the frames right after these."""
        self.original.merge(later.original)
        self.anonymized.merge(later.anonymized)

    def result(self) -> dict[str, Any]:
        """The report's `utility` section."""
        sides = [self.anonymized.columns()] + ([self.original.columns()] if self.pair else [])
        packet_edges = _edges(max(int(side[0].max(initial=0)) for side in sides))
        byte_edges = _edges(max(int(side[1].max(initial=0)) for side in sides))
        duration_edges = _edges(max(int(side[2].max(initial=0)) for side in sides), DURATION_UNIT_NS)
        edges = (packet_edges, byte_edges, duration_edges)
        original = _section(sides[1], edges) if self.pair else None
        kept = None
        if self.pair and len(self.original):
            kept = len(self.anonymized) / len(self.original)
        return {"original": original, "anonymized": _section(sides[0], edges),
                "flows_kept_fraction": kept}


def _edges(largest: int, unit: int = 1) -> list[int]:
    """0, then unit * 2**k for k = 0, 1, ... until an edge lies above `largest`."""
    edges = [0, unit]
    while edges[-1] <= largest:
        edges.append(edges[-1] * 2)
    return edges


def _histogram(values: np.ndarray, edges: list[int], unit: int = 1) -> dict[str, Any]:
    """Counts in the half-open bins [edges[i], edges[i+1]); edges reported in `unit`s."""
    bins = np.searchsorted(np.asarray(edges, dtype=np.int64), values, side="right") - 1
    counts = np.bincount(bins, minlength=len(edges) - 1)
    return {"edges": [edge / unit for edge in edges], "counts": [int(c) for c in counts]}


def _summary(values: np.ndarray, unit: int = 1) -> dict[str, float]:
    if not len(values):
        return {"min": 0.0, "median": 0.0, "mean": 0.0, "p95": 0.0, "max": 0.0}
    scaled = values.astype(np.float64) / unit
    return {"min": float(scaled.min()), "median": float(np.median(scaled)),
            "mean": float(scaled.mean()), "p95": float(np.percentile(scaled, 95)),
            "max": float(scaled.max())}


def _section(columns: tuple[np.ndarray, np.ndarray, np.ndarray],
             edges: tuple[list[int], list[int], list[int]]) -> dict[str, Any]:
    packets, sizes, durations = columns
    return {"flows": len(packets), "packets": int(packets.sum()), "bytes": int(sizes.sum()),
            "packets_per_flow": _summary(packets), "bytes_per_flow": _summary(sizes),
            "duration_s": _summary(durations, NS_PER_SECOND),
            "histograms": {"packets_per_flow": _histogram(packets, edges[0]),
                           "bytes_per_flow": _histogram(sizes, edges[1]),
                           "duration_s": _histogram(durations, edges[2], NS_PER_SECOND)}}
