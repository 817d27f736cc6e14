"""Timing that survives the rules: inter-arrival times of every stream and how periodic they are.

A sensor that reports every second is recognizable by its period alone, and inter-arrival times
that match the original's link the two traces frame by frame. Both are measured here: on the
output, and in pair mode on the ORIGINAL frames too, so the effect of the rules (timing noise)
shows. A stream is a (protocol, source, destination, destination port); its inter-arrival times
are kept only for its first INTERVAL_LIMIT intervals, as columns, so memory grows with streams,
not with frames.
"""

from __future__ import annotations

import ipaddress
import math
import statistics
from collections.abc import Sequence
from fractions import Fraction
from operator import mul, sub
from typing import Any

import numpy as np
import numpy.typing as npt

from anontrace.flows import (
    DESTINATION,
    SOURCE,
    SOURCE_PORT,
    Int64s,
    Keys,
    Times,
    batch_times,
    counterparts,
    original_side,
    output_side,
    written,
)
from anontrace.packet.batch import Batch
from anontrace.packet.frame import NS_PER_SECOND

INTERVAL_LIMIT = 256  # inter-arrival samples kept per stream
PERIODIC_CV = 0.1
MIN_INTERVALS = 8
# A stream row: protocol, address size, source, destination (16 bytes each), destination port.
STREAM, STREAM_DESTINATION = 36, 18
# Periodicity is screened in floating point; a stream this close to PERIODIC_CV (relatively) or
# closer is measured exactly, so the screen never decides a case rounding could tip.
SCREEN_MARGIN = 1e-4


class Intervals:
    """Inter-arrival times of many streams, numbered from 0: the first INTERVAL_LIMIT intervals of
    each, in ns, kept as columns (stream, interval) rather than as an object per stream."""

    def __init__(self) -> None:
        self.last: Times = np.zeros(0, np.int64)  # time of each stream's latest frame
        self.first: Times = np.zeros(0, np.int64)  # ... and of its first (for a merge)
        self.seen = np.zeros(0, np.bool_)
        self.counts = np.zeros(0, np.int64)  # intervals of each stream so far
        self.streams: list[npt.NDArray[np.int32]] = []
        self.values: list[Int64s] = []

    def add(self, streams: Int64s, ts_ns: Times) -> None:
        """Frames of `streams` at `ts_ns`, in frame order."""
        if not len(streams):
            return
        self._grow(int(streams.max()) + 1, ts_ns.dtype == object)
        if self.last.dtype == object:  # some time did not fit int64: Python integers from now on
            ts_ns = ts_ns.astype(object)
        order = np.argsort(streams, kind="stable")
        streams, ts_ns = streams[order], ts_ns[order]
        starts = np.flatnonzero(np.r_[True, streams[1:] != streams[:-1]])
        sizes = np.diff(np.r_[starts, len(streams)])
        numbers = streams[starts]
        fresh = ~self.seen[numbers]  # the stream's first frame gives no interval
        previous = np.empty_like(ts_ns)
        previous[1:] = ts_ns[:-1]
        previous[starts] = self.last[numbers]
        counted = np.ones(len(streams), np.bool_)
        counted[starts[fresh]] = False
        rank = (np.repeat(self.counts[numbers] - starts - fresh, sizes) + np.arange(len(streams)))
        kept = counted & (rank < INTERVAL_LIMIT)
        self.streams.append(streams[kept].astype(np.int32))
        self.values.append(np.array((ts_ns[kept] - previous[kept]).tolist(), np.int64)
                           if ts_ns.dtype == object else ts_ns[kept] - previous[kept])
        self.last[numbers] = ts_ns[starts + sizes - 1]
        self.first[numbers[fresh]] = ts_ns[starts[fresh]]
        self.seen[numbers] = True
        self.counts[numbers] += sizes - fresh

    def merge(self, later: Intervals, numbers: Int64s) -> None:
        """Take in `later`'s streams, whose frames came right after these; `numbers[j]` is the
        number here of `later`'s stream j. A stream seen on both sides gains the interval across
        the boundary, and keeps the first INTERVAL_LIMIT intervals of all."""
        theirs = np.flatnonzero(later.seen[:len(numbers)])
        if not len(theirs):
            return
        ours = numbers[theirs]
        self._grow(int(ours.max()) + 1, later.last.dtype == object)
        last, first = later.last, later.first
        if self.last.dtype == object:
            last, first = last.astype(object), first.astype(object)
        joined = self.seen[ours]
        crossing = ours[joined]
        gaps = first[theirs[joined]] - self.last[crossing]
        kept = self.counts[crossing] < INTERVAL_LIMIT
        streams, values = [crossing[kept]], [np.array(gaps[kept].tolist(), np.int64)]
        if later.streams:
            allowed = np.zeros(len(later.seen), np.int64)  # of each stream's first intervals there
            allowed[theirs] = INTERVAL_LIMIT - self.counts[ours] - joined
            given, taken = np.concatenate(later.streams).astype(np.int64), np.concatenate(later.values)
            order = np.argsort(given, kind="stable")
            starts = np.searchsorted(given[order], given[order])
            rank = np.empty(len(given), np.int64)
            rank[order] = np.arange(len(given)) - starts
            kept = rank < allowed[given]
            streams.append(numbers[given[kept]])
            values.append(taken[kept])
        self.streams.append(np.concatenate(streams).astype(np.int32))
        self.values.append(np.concatenate(values))
        self.last[ours] = last[theirs]
        self.first[ours[~joined]] = first[theirs[~joined]]
        self.counts[ours] += later.counts[theirs] + joined
        self.seen[ours] = True

    def _grow(self, size: int, wide: bool) -> None:
        if wide and self.last.dtype != object:
            self.last, self.first = self.last.astype(object), self.first.astype(object)
        if size > len(self.seen):
            capacity = max(size, 2 * len(self.seen), 64)
            self.last = np.concatenate((self.last, np.zeros(capacity - len(self.last), self.last.dtype)))
            self.first = np.concatenate((self.first, np.zeros(capacity - len(self.first), self.first.dtype)))
            self.seen = np.concatenate((self.seen, np.zeros(capacity - len(self.seen), np.bool_)))
            self.counts = np.concatenate((self.counts, np.zeros(capacity - len(self.counts), np.int64)))

    def periodic(self, count: int) -> dict[int, tuple[float, float]]:
        """The periodic ones of streams 0 .. `count` - 1, with their (coefficient of variation,
        period in s) as `_periodicity` measures them. A float screen with a margin rules out
        most streams; the rest are measured exactly."""
        if not self.streams:
            return {}
        streams, values = np.concatenate(self.streams), np.concatenate(self.values)
        order = np.lexsort((values, streams))
        streams, values = streams[order], values[order]
        totals = np.bincount(streams, minlength=count)
        starts = np.r_[0, np.cumsum(totals)[:-1]]
        kept = (np.arange(len(streams)) - starts[streams]) < (totals - totals // 10)[streams]
        chosen, measured = streams[kept], values[kept].astype(np.float64)
        sizes = np.maximum(np.bincount(chosen, minlength=count), 1)
        means = np.bincount(chosen, weights=measured, minlength=count) / sizes
        squares = np.bincount(chosen, weights=(measured - means[chosen]) ** 2, minlength=count)
        spreads = np.sqrt(squares / sizes)
        smallest = np.zeros(count, np.int64)
        smallest[totals > 0] = values[starts[totals > 0]]
        surely_not = (smallest >= 0) & (means > 0) & (spreads > PERIODIC_CV * (1 + SCREEN_MARGIN) * means)
        found = {}
        for stream in np.flatnonzero((totals >= MIN_INTERVALS) & ~surely_not).tolist():
            measure = _periodicity(values[starts[stream]:starts[stream] + totals[stream]].tolist())
            if measure is not None and measure[0] < PERIODIC_CV:
                found[stream] = measure
        return found


def _periodicity(intervals: list[int]) -> tuple[float, float] | None:
    """(coefficient of variation, median interval in s) of a stream's sorted intervals once there
    are enough; the largest 10% are ignored (a sensor that missed a report or a pause in the
    capture)."""
    if len(intervals) < MIN_INTERVALS:
        return None
    kept = intervals[:len(intervals) - len(intervals) // 10]
    mean = statistics.fmean(kept)
    if mean <= 0:
        return None
    return statistics.pstdev(kept) / mean, statistics.median(kept) / NS_PER_SECOND


def _streams(keys: Keys, index: dict[bytes, int]) -> Int64s:
    """The number of each key's stream (protocol, source, destination, destination port) in
    `index`, where new streams are numbered in order of appearance."""
    rows = np.empty((len(keys), STREAM), np.uint8)
    rows[:, :STREAM_DESTINATION] = keys.rows[:, :SOURCE_PORT]  # protocol, size, source
    rows[:, STREAM_DESTINATION:] = keys.rows[:, DESTINATION:]  # destination and its port
    flat = rows.tobytes()
    numbers = [index.setdefault(flat[at:at + STREAM], len(index)) for at in range(0, len(flat), STREAM)]
    return np.array(numbers, np.int64)


def _renumbered(index: dict[bytes, int], later: dict[bytes, int]) -> Int64s:
    """The number in `index` of each stream of `later` (numbered alike), new ones added in order."""
    return np.array([index.setdefault(row, len(index)) for row in later], np.int64)


class Timing:
    """An observer of the timing an adversary can still use: periodic streams (in pair mode the
    ORIGINAL streams, at their original times and at their output times, and always the output's
    own streams) and the correlation of original and output inter-arrival times of written frames."""

    def __init__(self, pair: bool) -> None:
        self.pair = pair
        self.streams: dict[bytes, int] = {}  # original stream row -> number (pair)
        self.written: dict[bytes, int] = {}  # output stream row -> number
        self.before = Intervals()  # original streams, original times (pair)
        self.after = Intervals()  # original streams, output times of the frames written (pair)
        self.shown = Intervals()  # output streams, output times
        self.moments = [0] * 6  # n, x, y, xx, yy, xy of original (x) and output (y) intervals
        self.previous: tuple[int, int] | None = None  # (original, output) time of the last written frame
        self.earliest: tuple[int, int] | None = None  # ... and of the first (for a merge)

    def observe(self, batch: Batch, labels: Sequence[str | None]) -> None:
        original_ns, output_ns = batch_times(batch)
        after = output_side(batch)
        if self.pair:
            before = original_side(batch)
            numbers = _streams(before, self.streams)
            self.before.add(numbers, original_ns[before.positions])
            counterpart = counterparts(batch)
            both = counterpart >= 0
            self.after.add(numbers[counterpart[both]], output_ns[after.positions[both]])
        self._interarrival(batch, original_ns, output_ns)
        self.shown.add(_streams(after, self.written), output_ns[after.positions])

    def merge(self, later: Timing) -> None:
        """Take in what `later` (made alike) observed of the frames right after these."""
        streams = _renumbered(self.streams, later.streams)
        self.before.merge(later.before, streams)
        self.after.merge(later.after, streams)
        self.shown.merge(later.shown, _renumbered(self.written, later.written))
        self._merge_interarrival(later)

    def _merge_interarrival(self, later: Timing) -> None:
        """The moments of both, and of the interval from the last written frame here to `later`'s first."""
        moments = [mine + theirs for mine, theirs in zip(self.moments, later.moments, strict=True)]
        if later.earliest is not None:
            if self.pair and self.previous is not None:
                x, y = later.earliest[0] - self.previous[0], later.earliest[1] - self.previous[1]
                for position, value in enumerate((1, x, y, x * x, y * y, x * y)):
                    moments[position] += value
            self.previous = later.previous
            self.earliest = self.earliest or later.earliest
        self.moments = moments

    def _interarrival(self, batch: Batch, original_ns: Times, output_ns: Times) -> None:
        """Sums of the original (x) and output (y) intervals between written frames, exact."""
        kept = written(batch)
        xs, ys = original_ns[kept].tolist(), output_ns[kept].tolist()
        if not xs:
            return
        if self.earliest is None:
            self.earliest = (xs[0], ys[0])
        if self.pair and self.previous is not None:
            xs.insert(0, self.previous[0])
            ys.insert(0, self.previous[1])
        self.previous = (xs[-1], ys[-1])
        if not self.pair:
            return
        x, y = list(map(sub, xs[1:], xs[:-1])), list(map(sub, ys[1:], ys[:-1]))
        m = self.moments
        m[0] += len(x)
        m[1] += sum(x)
        m[2] += sum(y)
        m[3] += sum(map(mul, x, x))
        m[4] += sum(map(mul, y, y))
        m[5] += sum(map(mul, x, y))

    def result(self, listed: int) -> dict[str, Any]:
        """The report's `risk.timing`: periodic streams counted on both sides (pair), listed (at
        most `listed` of them) only as the output shows them."""
        pair = self.pair
        was, now = self.before.periodic(len(self.streams)), self.after.periodic(len(self.streams))
        counts = {"original": len(was), "masked": len(was.keys() - now.keys()),
                  "exposed": len(was.keys() & now.keys())}
        periodic = self.shown.periodic(len(self.written))
        flows = [{"flow": _stream_name(stream), "period_s": periodic[number][1], "original_cv": None,
                  "anonymized_cv": periodic[number][0], "masked": False if pair else None}
                 for number, stream in enumerate(self.written) if number in periodic]
        return {"interarrival_correlation": self._correlation(),
                "periodic_original": counts["original"] if pair else None,
                "periodic_anonymized": len(flows),
                "periodic_masked": counts["masked"] if pair else None,
                "periodic_exposed": counts["exposed"] if pair else len(flows), "flows": flows[:listed]}

    def _correlation(self) -> float | None:
        """Pearson correlation of original and output inter-arrival times (pair mode)."""
        n, x, y, xx, yy, xy = self.moments
        spread_x, spread_y = n * xx - x * x, n * yy - y * y
        if not self.pair or n < 2 or spread_x <= 0 or spread_y <= 0:
            return None
        covariance = n * xy - x * y
        return math.copysign(math.sqrt(Fraction(covariance * covariance, spread_x * spread_y)), covariance)


def _stream_name(stream: bytes) -> str:
    """A stream row as `protocol source > destination:port`."""
    size = stream[1]
    source = ipaddress.ip_address(stream[SOURCE:SOURCE + size])
    destination = ipaddress.ip_address(stream[STREAM_DESTINATION:STREAM_DESTINATION + size])
    return f"{stream[0]} {source!s} > {destination!s}:{int.from_bytes(stream[-2:], 'big')}"
