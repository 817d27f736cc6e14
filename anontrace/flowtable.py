"""Flow tables: bidirectional per-flow totals (packets, bytes, first and last time, label).

A flow is oriented by the frame that was seen first (its source is the flow's initiator). A
table keeps one dict entry and a few numbers per flow, as columns, and counts a batch's keys
(`flows.Keys`) at once; tables of consecutive pieces of a capture merge into one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from anontrace.flows import ROW, FiveTuple, Frames, Int64s, Keys, Times, key_of, reversed_row, times


@dataclass(slots=True)
class Flow:
    """Totals of one flow; `forward` counts frames from the initiator, `backward` the replies."""

    key: FiveTuple  # oriented from the initiator
    first_ns: int
    last_ns: int
    forward_packets: int = 0
    forward_bytes: int = 0
    backward_packets: int = 0
    backward_bytes: int = 0
    label: str | None = None

    @property
    def packets(self) -> int:
        return self.forward_packets + self.backward_packets

    @property
    def bytes(self) -> int:
        return self.forward_bytes + self.backward_bytes


FORWARD_PACKETS, FORWARD_BYTES, BACKWARD_PACKETS, BACKWARD_BYTES = range(4)


class FlowTable:
    """Flows in order of first appearance, as columns: one dict entry (its canonical key row) and
    a few numbers per flow, so memory grows with the number of flows, not frames."""

    def __init__(self) -> None:
        self._index: dict[bytes, int] = {}  # canonical row -> flow number
        self._forward = np.zeros(0, np.bool_)  # whether the initiator's key is the canonical row
        self._first: Times = np.zeros(0, np.int64)
        self._last: Times = np.zeros(0, np.int64)
        self._counts = np.zeros((0, 4), np.int64)  # forward packets, bytes; backward packets, bytes
        self._labels: list[str | None] = []

    def add(self, key: FiveTuple, ts_ns: int, length: int, label: str | None = None) -> None:
        """Count one frame of `length` bytes (its original length on the wire) at `ts_ns`."""
        rows = np.frombuffer(key.row(), np.uint8).reshape(1, ROW).copy()
        self.add_keys(Keys(np.zeros(1, np.int64), rows, Frames.of([b""])), times([ts_ns]),
                      np.array([length], np.int64), [label])

    def add_keys(self, keys: Keys, ts_ns: Times, lengths: Int64s,
                 labels: Sequence[str | None] | None = None) -> None:
        """Count the frames that have `keys`; `ts_ns`, `lengths` (on the wire) and `labels` are
        given for every frame of the batch side. A flow takes the label of its first labelled frame."""
        if not len(keys):
            return
        index = self._index
        known = len(index)
        numbers = np.array([index.setdefault(row, len(index)) for row in keys.canonical()], np.int64)
        times_, forward = ts_ns[keys.positions], keys.forward()
        if times_.dtype == object and self._first.dtype != object:
            self._first, self._last = self._first.astype(object), self._last.astype(object)
        if len(index) > known:
            self._grow(len(index))
            fresh = np.flatnonzero(numbers >= known)
            firsts = fresh[np.unique(numbers[fresh], return_index=True)[1]]
            self._forward[known:len(index)] = forward[firsts]
            self._first[known:len(index)] = times_[firsts]
            self._last[known:len(index)] = times_[firsts]
        np.minimum.at(self._first, numbers, times_)
        np.maximum.at(self._last, numbers, times_)
        along = forward == self._forward[numbers]
        sizes = lengths[keys.positions]
        for column, chosen in ((FORWARD_PACKETS, along), (BACKWARD_PACKETS, ~along)):
            np.add.at(self._counts[:, column], numbers[chosen], 1)
            np.add.at(self._counts[:, column + 1], numbers[chosen], sizes[chosen])
        if labels is not None:
            for number, position in zip(numbers.tolist(), keys.positions.tolist(), strict=True):
                if labels[position] is not None and self._labels[number] is None:
                    self._labels[number] = labels[position]

    def merge(self, later: FlowTable) -> None:
        """Take in the flows of `later`, which counted the frames right after these: totals add up,
        a flow keeps its first time, its initiator and its label from the first frame that gave
        one, and flows new here follow in `later`'s order."""
        size, index = len(later), self._index
        if not size:
            return
        known = len(index)
        numbers = np.array([index.setdefault(row, len(index)) for row in later._index], np.int64)
        self._grow(len(index))
        first, last = later._first[:size], later._last[:size]
        if first.dtype == object or self._first.dtype == object:  # a time beyond int64: Python integers
            self._first, self._last = self._first.astype(object), self._last.astype(object)
            first, last = first.astype(object), last.astype(object)
        fresh, forward = numbers >= known, later._forward[:size]
        self._forward[numbers[fresh]] = forward[fresh]
        self._first[numbers] = np.where(fresh, first, np.minimum(self._first[numbers], first))
        self._last[numbers] = np.where(fresh, last, np.maximum(self._last[numbers], last))
        counts = later._counts[:size].copy()
        turned = self._forward[numbers] != forward  # first seen here the other way: swap the directions
        counts[turned] = counts[turned][:, [BACKWARD_PACKETS, BACKWARD_BYTES, FORWARD_PACKETS, FORWARD_BYTES]]
        self._counts[numbers] += counts
        labels = self._labels
        for number, label in zip(numbers.tolist(), later._labels, strict=True):
            if labels[number] is None:
                labels[number] = label

    def _grow(self, size: int) -> None:
        capacity = len(self._forward)
        self._labels.extend([None] * (size - len(self._labels)))
        if size <= capacity:
            return
        capacity = max(size, 2 * capacity, 64)
        self._forward = _grown(self._forward, capacity)
        self._first = _grown(self._first, capacity)
        self._last = _grown(self._last, capacity)
        self._counts = _grown(self._counts, capacity)

    def columns(self) -> tuple[Int64s, Int64s, Int64s]:
        """Packets, bytes and duration (ns) of every flow, as int64 columns."""
        size, counts = len(self), self._counts[:len(self)]
        durations = np.fromiter((last - first for first, last in zip(self._first[:size].tolist(),
                                                                      self._last[:size].tolist(),
                                                                      strict=True)), np.int64, size)
        return (counts[:, FORWARD_PACKETS] + counts[:, BACKWARD_PACKETS],
                counts[:, FORWARD_BYTES] + counts[:, BACKWARD_BYTES], durations)

    def __len__(self) -> int:
        return len(self._index)

    def __iter__(self) -> Iterator[Flow]:
        size = len(self)
        firsts, lasts = self._first[:size].tolist(), self._last[:size].tolist()
        counts, forward = self._counts[:size].tolist(), self._forward[:size].tolist()
        for number, row in enumerate(self._index):
            key = key_of(row if forward[number] else reversed_row(row))
            forward_packets, forward_bytes, backward_packets, backward_bytes = counts[number]
            yield Flow(key, firsts[number], lasts[number], forward_packets, forward_bytes, backward_packets,
                       backward_bytes, self._labels[number])


def _grown(column: npt.NDArray[Any], capacity: int) -> npt.NDArray[Any]:
    """`column` with room for `capacity` rows, the new ones zero."""
    grown = np.zeros((capacity, *column.shape[1:]), column.dtype)
    grown[:len(column)] = column
    return grown
