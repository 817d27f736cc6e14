"""Re-identification risk: the attacks of the trace-anonymization literature, made into numbers.

What an adversary holding the anonymized trace can still learn: which hosts stand out by their
TCP/IP stack (SYN fingerprints) or by the services they run, how many bits of every address the
prefix-preserving mapping gives away once a few hosts are known, which hosts' clocks can be
fingerprinted from TCP timestamps, which scans reveal the mapping of a whole range, and how much
of the original timing (inter-arrival times, periodic reporting) survives. In pair mode the
ORIGINAL frames are measured too, so the effect of the rules shows; without the original, the
figures that need it are null. Memory grows with hosts and flows, never with frames.

The report travels with the trace, so its lists name only what the output shows: periodic flows
as measured on the output, sweeps by their output source. What the rules hid (a period the noise
masked, a sweep's order in the original) is counted, never described.

Frames are taken a batch at a time, as columns (`flows.Keys`): most frames matter to a measure
only through numbers numpy sums, and Python looks only at those that can change a profile (a SYN,
the first frame of a flow, a TCP timestamp).
"""

from __future__ import annotations

import ipaddress
import math
import statistics
from collections import Counter
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from itertools import pairwise
from operator import mul, sub
from typing import Any

import numpy as np
import numpy.typing as npt

from anontrace.flows import (
    DESTINATION,
    DESTINATION_PORT,
    ICMP_KIND,
    ICMPV6_KIND,
    SOURCE,
    SOURCE_PORT,
    TCP_KIND,
    Int64s,
    Keys,
    Outer,
    Times,
    batch_times,
    distinct,
    original_side,
    outer_headers,
    output_side,
    reversed_row,
    split_rows,
    written,
)
from anontrace.packet.batch import Batch
from anontrace.packet.frame import NS_PER_SECOND

FEATURES = ["ttl", "tcp_window", "tcp_options", "mss"]
FEATURE_LIMIT = 32  # distinct SYN feature tuples kept per host
INTERVAL_LIMIT = 256  # inter-arrival samples kept per stream
LIST_LIMIT = 50  # entries in each list of the report
TICK_RATES = (1, 10, 100, 250, 1000)  # TCP timestamp clock rates in use (Hz)
PERIODIC_CV = 0.1
MIN_INTERVALS = 8
SEQUENTIAL_FRACTION = 0.8
SYN, ACK = 0x02, 0x10
ALONG, AGAINST = 1, 2  # a flow's frames sent in its canonical direction, and the other way
TCP, UDP = 6, 17
ECHO_REQUEST = {1: 8, 58: 128}  # ICMP and ICMPv6: the only messages that contact a host
TIMESTAMP_OPTION = np.array([1, 1, 8, 10], np.uint8)  # NOP, NOP, timestamps: how most stacks lay it out
# A stream row: protocol, address size, source, destination (16 bytes each), destination port.
STREAM, STREAM_DESTINATION = 36, 18
# Periodicity is screened in floating point; a stream this close to PERIODIC_CV (relatively) or
# closer is measured exactly, so the screen never decides a case rounding could tip.
SCREEN_MARGIN = 1e-4
Feature = tuple[int, int, tuple[int, ...], int | None]


def _syn_features(data: bytes | bytearray, ttl_at: int, tcp: int) -> Feature:
    """TTL or hop limit, window, option kinds in order and MSS of a SYN whose header is whole."""
    ttl = data[ttl_at]
    window = int.from_bytes(data[tcp + 14:tcp + 16], "big")
    end = min(tcp + (data[tcp + 12] >> 4) * 4, len(data))
    kinds: list[int] = []
    mss = None
    pos = tcp + 20
    while pos < end:
        kind = data[pos]
        kinds.append(kind)
        if kind == 0 or (kind != 1 and (pos + 1 >= end or data[pos + 1] < 2)):
            break
        if kind == 2 and data[pos + 1] == 4 and pos + 4 <= end:
            mss = int.from_bytes(data[pos + 2:pos + 4], "big")
        pos += 1 if kind == 1 else data[pos + 1]
    return ttl, window, tuple(kinds), mss


def _timestamp(data: bytes | bytearray, tcp: int) -> int | None:
    """TSval of the TCP timestamps option, if the frame carries one."""
    end = min(tcp + (data[tcp + 12] >> 4) * 4, len(data))
    pos = tcp + 20
    while pos + 1 < end and data[pos] != 0:
        if data[pos] == 1:
            pos += 1
            continue
        if data[pos] == 8 and data[pos + 1] == 10 and pos + 6 <= end:
            return int.from_bytes(data[pos + 2:pos + 6], "big")
        if data[pos + 1] < 2:
            return None
        pos += data[pos + 1]
    return None


def _anonymity(profiles: Iterable[frozenset[Any]]) -> dict[str, Any]:
    """k-anonymity of hosts by profile: k of a host is the number of hosts sharing its profile."""
    sizes = Counter(profiles)
    by_k: Counter[int] = Counter()
    for size in sizes.values():
        by_k[size] += size
    hosts = sum(by_k.values())
    return {"hosts": hosts, "unique": by_k[1], "unique_fraction": by_k[1] / hosts if hosts else 0.0,
            "k_histogram": [{"k": k, "hosts": n} for k, n in sorted(by_k.items())]}


def _tcp_frames(keys: Keys, outer: Outer) -> Int64s:
    """The keys (by index) of TCP frames whose TCP header is whole."""
    positions = keys.positions
    found: Int64s = np.flatnonzero((keys.rows[:, 0] == TCP) & (outer.following[positions] == TCP_KIND)
                                   & (outer.transport[positions] + 20 <= keys.frames.lengths[positions]))
    return found


def _source(row: bytes) -> bytes:
    return row[SOURCE:SOURCE + row[1]]


def _destination(row: bytes) -> bytes:
    return row[DESTINATION:DESTINATION + row[1]]


@dataclass(slots=True)
class Side:
    """What one side of the pair shows about hosts: SYN fingerprints (the first FEATURE_LIMIT of
    each host, in order, so that a later piece's merge in as if seen after) and the ports they
    serve."""

    fingerprints: dict[bytes, dict[Feature, None]] = field(default_factory=dict)
    services: dict[bytes, set[tuple[int, int]]] = field(default_factory=dict)
    # non-TCP flow (canonical key row) -> whether its first frame was sent in the canonical direction
    initiators: dict[bytes, bool] = field(default_factory=dict)
    # UDP flow -> ALONG | AGAINST: the directions its frames were sent in (its replies, once a
    # merge tells its initiator)
    directions: dict[bytes, int] = field(default_factory=dict)

    def add(self, keys: Keys, outer: Outer, tcp: Int64s) -> Int64s:
        """Note the frames that have `keys` (`tcp`: those that are TCP with a whole header); return
        those whose sender contacts their destination (a SYN, an echo request, or the first
        frame of another flow), by index in `keys`, in frame order."""
        frames = keys.frames
        transport = outer.transport[keys.positions]
        flags = frames.take(keys.positions[tcp], transport[tcp] + 13, 1)[:, 0]
        syn = (flags & SYN) != 0
        for index, flag in zip(tcp[syn].tolist(), flags[syn].tolist(), strict=True):
            row, position = keys.row(index), int(keys.positions[index])
            data, network = frames.data[position], int(outer.network[position])
            features = self.fingerprints.setdefault(_source(row), {})
            if len(features) < FEATURE_LIMIT:
                ttl_at = network + (8 if row[1] == 4 else 7)
                features[_syn_features(data, ttl_at, int(transport[index]))] = None
            if flag & ACK:
                port = int.from_bytes(row[SOURCE_PORT:DESTINATION], "big")
                self.services.setdefault(_source(row), set()).add((TCP, port))
        contacts: Int64s = tcp[syn][(flags[syn] & ACK) == 0]
        others = np.flatnonzero(keys.rows[:, 0] != TCP)
        if len(others):
            contacts = np.union1d(contacts, np.array(self._others(keys, outer, others), np.int64))
        return contacts

    def _others(self, keys: Keys, outer: Outer, others: Int64s) -> list[int]:
        """Note the flows other than TCP of the frames `others`; return the first frames of new ones
        that contact a host. A flow's initiator is its first frame's sender; a UDP frame the other
        way is a reply, and its sender serves the initiator's destination port."""
        forward = keys.forward()[others]
        flows, which = distinct(keys.canonical_rows()[others])
        firsts = np.full(len(flows), len(others), np.int64)
        np.minimum.at(firsts, which, np.arange(len(others)))
        along = np.bincount(which, weights=forward, minlength=len(flows)) > 0  # frames sent canonically
        against = np.bincount(which, weights=~forward, minlength=len(flows)) > 0
        contacts = []
        for number, (flow, first) in enumerate(zip(flows, firsts.tolist(), strict=True)):
            initiator = self.initiators.get(flow)
            if initiator is None:
                initiator = self.initiators[flow] = bool(forward[first])
                echo = ECHO_REQUEST.get(flow[0])
                if echo is None or self._icmp_type(keys, outer, int(others[first])) == echo:
                    contacts.append(int(others[first]))
            if flow[0] == UDP:
                sent = self.directions.get(flow, 0) | (ALONG if along[number] else 0) \
                    | (AGAINST if against[number] else 0)
                self.directions[flow] = sent
                self._serves(flow, initiator, sent)
        return contacts

    def _serves(self, flow: bytes, initiator: bool, sent: int) -> None:
        """A UDP flow with a frame sent against its initiator: the destination serves the port."""
        if sent & (AGAINST if initiator else ALONG):
            served = flow if initiator else reversed_row(flow)
            port = int.from_bytes(served[DESTINATION_PORT:], "big")
            self.services.setdefault(_destination(served), set()).add((UDP, port))

    def merge(self, later: Side) -> None:
        """Take in what `later` saw of the frames right after these. A flow seen here keeps its
        initiator, and `later`'s UDP services are judged again by it."""
        for host, features in later.fingerprints.items():
            mine = self.fingerprints.setdefault(host, {})
            for feature in features:
                if len(mine) >= FEATURE_LIMIT:
                    break
                mine[feature] = None
        for host, served in later.services.items():
            tcp = {service for service in served if service[0] == TCP}  # UDP ones: from directions
            if tcp:
                self.services.setdefault(host, set()).update(tcp)
        for flow, initiator in later.initiators.items():
            self.initiators.setdefault(flow, initiator)
        for flow, sent in later.directions.items():
            sent |= self.directions.get(flow, 0)
            self.directions[flow] = sent
            self._serves(flow, self.initiators[flow], sent)

    @staticmethod
    def _icmp_type(keys: Keys, outer: Outer, index: int) -> int | None:
        position = int(keys.positions[index])
        data, offset = keys.frames.data[position], int(outer.transport[position])
        if outer.following[position] not in (ICMP_KIND, ICMPV6_KIND) or offset >= len(data):
            return None
        return data[offset]


def _short(found: dict[str, Any]) -> dict[str, Any]:
    return {name: found[name] for name in ("hosts", "unique", "unique_fraction")}


@dataclass(slots=True)
class Clock:
    """A host's TCP timestamp clock: exact running sums for a least-squares fit of its ticks on
    capture time, both counted from the first sample, ticks unwrapped across 2**32."""

    first_ns: int
    last_raw: int  # the latest TSval as sent
    last_ns: int = 0
    tick: int = 0  # ticks since the first sample
    samples: int = 0
    sums: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # t, v, t*t, t*v

    def add(self, ts_ns: int, raw: int) -> None:
        self.tick += (raw - self.last_raw + (1 << 31)) % (1 << 32) - (1 << 31)
        self.last_raw, self.samples = raw, self.samples + 1
        t, v = ts_ns - self.first_ns, self.tick
        self.last_ns = max(self.last_ns, ts_ns)
        sums = self.sums
        sums[0] += t
        sums[1] += v
        sums[2] += t * t
        sums[3] += t * v

    def merge(self, later: Clock) -> None:
        """Take in `later`'s samples, taken after these: its sums moved to this clock's origin (its
        first sample's time and tick counted from this clock's first)."""
        shift_t = later.first_ns - self.first_ns
        first_raw = (later.last_raw - later.tick) % (1 << 32)  # its ticks are unwrapped steps from it
        shift_v = self.tick + (first_raw - self.last_raw + (1 << 31)) % (1 << 32) - (1 << 31)
        n, (t, v, tt, tv) = later.samples, later.sums
        sums = self.sums
        sums[0] += t + n * shift_t
        sums[1] += v + n * shift_v
        sums[2] += tt + 2 * shift_t * t + n * shift_t * shift_t
        sums[3] += tv + shift_t * v + shift_v * t + n * shift_t * shift_v
        self.tick, self.last_raw = shift_v + later.tick, later.last_raw
        self.samples += n
        self.last_ns = max(self.last_ns, later.last_ns)

    def skew_ppm(self) -> float | None:
        """Drift of the clock from the nearest usual tick rate, in parts per million."""
        n, (t, v, tt, tv) = self.samples, self.sums
        spread = n * tt - t * t
        if spread <= 0:
            return None
        hertz = float(Fraction(n * tv - t * v, spread) * NS_PER_SECOND)
        if hertz <= 0:
            return None
        rate = min(TICK_RATES, key=lambda r: abs(math.log(hertz / r)))
        return (hertz / rate - 1.0) * 1e6


def _ticks(keys: Keys, outer: Outer, tcp: Int64s) -> tuple[Int64s, list[int]]:
    """The frames among `tcp` (by index in `keys`) with a TCP timestamps option whose TSval is
    not 0 (renumbering leaves 0 as it is: it is no reading of the clock), and that TSval. The usual
    layout (NOP, NOP, timestamps) is read for all frames at once, any other one frame by frame."""
    frames, positions = keys.frames, keys.positions[tcp]
    transport = outer.transport[positions]
    header = (frames.take(positions, transport + 12, 1)[:, 0] >> 4).astype(np.int64) * 4
    ends = np.minimum(transport + header, frames.lengths[positions])
    options = frames.take(positions, transport + 20, 8)
    usual = (options[:, :4] == TIMESTAMP_OPTION).all(axis=1) & (transport + 28 <= ends)
    ticks = np.where(usual, options[:, 4:].copy().view(">u4")[:, 0].astype(np.int64), 0)
    for index in np.flatnonzero(~usual & (ends > transport + 20)).tolist():
        ticks[index] = _timestamp(frames.data[int(positions[index])], int(transport[index])) or 0
    stamped = np.flatnonzero(ticks)
    return tcp[stamped], ticks[stamped].tolist()


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


def _ends(rows: npt.NDArray[np.uint8], size: int) -> npt.NDArray[np.uint8]:
    """The source and destination address of each key row of one family, in that order, a row each."""
    ends = np.stack((rows[:, SOURCE:SOURCE + size], rows[:, DESTINATION:DESTINATION + size]), axis=1)
    return ends.reshape(-1, size)


Contact = tuple[bytes, bytes, bytes | None, bytes | None]  # source, target, flow, original target


class Contacts:
    """Who contacted whom first, kept as the contacts that can decide it, in frame order.

    The first frame of a flow other than TCP is a contact only if no earlier frame belongs to
    the flow, which a piece of a capture cannot know of the pieces before it; such a contact
    names its flow, and a merge drops those of flows the earlier pieces saw. Once a source has
    contacted a target otherwise (by a SYN), nothing later between them matters, so memory
    grows with pairs of hosts and with flows, not with frames."""

    def __init__(self) -> None:
        self.events: list[Contact] = []
        self.settled: set[tuple[bytes, bytes]] = set()

    def add(self, source: bytes, target: bytes, flow: bytes | None, original: bytes | None) -> None:
        if (source, target) not in self.settled:
            self.events.append((source, target, flow, original))
            if flow is None:
                self.settled.add((source, target))

    def merge(self, later: Contacts, flows: Container[bytes]) -> None:
        """Take in `later`'s contacts, made after these, but those of `flows` (seen here)."""
        for event in later.events:
            if event[2] is None or event[2] not in flows:
                self.add(*event)

    def by_source(self) -> dict[bytes, dict[bytes, bytes | None]]:
        """Source -> target -> the target's original address (pair mode), in order of first contact."""
        found: dict[bytes, dict[bytes, bytes | None]] = {}
        for source, target, _, original in self.events:
            targets = found.setdefault(source, {})
            if target not in targets:
                targets[target] = original
        return found


class RiskCollector:
    """An observer that measures re-identification risk on the output (and, with `pair`, on the
    ORIGINAL frames too). `known` lists addresses the adversary is assumed to know the mapping of
    (original addresses in pair mode, anonymized ones otherwise); by default the `known_hosts`
    busiest addresses of each family."""

    def __init__(self, pair: bool, known_hosts: int = 10, known: list[bytes] | None = None, *,
                 min_samples: int = 20, min_span_s: float = 60.0, min_targets: int = 32) -> None:
        self.pair, self.known_hosts, self.known = pair, known_hosts, known
        self.min_samples, self.min_span_s, self.min_targets = min_samples, min_span_s, min_targets
        self.output, self.original = Side(), Side()
        self.frames: Counter[bytes] = Counter()  # output address -> written frames it appears in
        self.mapping: dict[bytes, bytes] = {}  # output address -> original address (pair)
        self.clocks: dict[bytes, Clock] = {}
        self.contacts = Contacts()
        self.streams: dict[bytes, int] = {}  # original stream row -> number (pair)
        self.written: dict[bytes, int] = {}  # output stream row -> number
        self.before = Intervals()  # original streams, original times (pair)
        self.after = Intervals()  # original streams, output times of the frames written (pair)
        self.shown = Intervals()  # output streams, output times
        self.moments = [0] * 6  # n, x, y, xx, yy, xy of original (x) and output (y) intervals
        self.previous: tuple[int, int] | None = None  # (original, output) time of the last written frame
        self.earliest: tuple[int, int] | None = None  # ... and of the first (for a merge)

    def observe(self, batch: Batch, labels: Sequence[str | None]) -> None:
        outer, (original_ns, output_ns) = outer_headers(batch), batch_times(batch)
        after = output_side(batch)
        counterpart = np.full(len(after), -1, np.int64)  # each written key's original key, by index
        before = None
        if self.pair:
            before = original_side(batch)
            self.original.add(before, outer, _tcp_frames(before, outer))
            numbers = _streams(before, self.streams)
            self.before.add(numbers, original_ns[before.positions])
            slots = np.full(len(batch), -1, np.int64)
            slots[before.positions] = np.arange(len(before))
            counterpart = slots[after.positions]
            both = counterpart >= 0
            self.after.add(numbers[counterpart[both]], output_ns[after.positions[both]])
        self._interarrival(batch, original_ns, output_ns)
        tcp = _tcp_frames(after, outer)
        self._contacts(after, before, counterpart, self.output.add(after, outer, tcp))
        self._addresses(after, before, counterpart)
        self._clocks(after, outer, tcp, output_ns)
        self.shown.add(_streams(after, self.written), output_ns[after.positions])

    def merge(self, later: RiskCollector) -> None:
        """Take in what `later` (made with the same arguments) observed of the frames right after
        these: afterwards this collector reports, and goes on, as one that had observed both."""
        self.contacts.merge(later.contacts, self.output.initiators)  # before the flows are merged
        self.output.merge(later.output)
        self.original.merge(later.original)
        self.frames.update(later.frames)
        self.mapping.update(later.mapping)
        for host, clock in later.clocks.items():
            mine = self.clocks.get(host)
            if mine is None:
                self.clocks[host] = replace(clock, sums=list(clock.sums))
            else:
                mine.merge(clock)
        streams = _renumbered(self.streams, later.streams)
        self.before.merge(later.before, streams)
        self.after.merge(later.after, streams)
        self.shown.merge(later.shown, _renumbered(self.written, later.written))
        self._merge_interarrival(later)

    def _merge_interarrival(self, later: RiskCollector) -> None:
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

    def _addresses(self, after: Keys, before: Keys | None, counterpart: Int64s) -> None:
        """Count the written frames each output address appears in; map output to original."""
        frames = self.frames
        for size in (4, 16):
            family = np.flatnonzero(after.rows[:, 1] == size)
            addresses, which = distinct(_ends(after.rows[family], size))
            for address, count in zip(addresses, np.bincount(which).tolist(), strict=True):
                frames[address] += count  # new ones in order of appearance, as frame by frame
            if before is not None:
                family = family[counterpart[family] >= 0]
                addresses, which = distinct(_ends(after.rows[family], size))
                last = np.zeros(len(addresses), np.int64)  # each one's last frame says what it maps to
                np.maximum.at(last, which, np.arange(len(which)))
                originals = _ends(before.rows[counterpart[family]], size)[last]
                self.mapping.update(zip(addresses, split_rows(originals), strict=True))

    def _contacts(self, after: Keys, before: Keys | None, counterpart: Int64s, contacts: Int64s) -> None:
        """Note each contact; one that is the first frame of a flow other than TCP stands only if
        no earlier piece saw that flow (see `Contacts`)."""
        for index in contacts.tolist():
            row = after.row(index)
            original = int(counterpart[index])
            flow = after.canonical_rows()[index].tobytes() if row[0] != TCP else None
            self.contacts.add(_source(row), _destination(row), flow, _destination(before.row(original))
                              if before is not None and original >= 0 else None)

    def _clocks(self, after: Keys, outer: Outer, tcp: Int64s, output_ns: Times) -> None:
        stamped, ticks = _ticks(after, outer, tcp)
        clocks = self.clocks
        at = output_ns[after.positions[stamped]].tolist()
        for index, tick, ts_ns in zip(stamped.tolist(), ticks, at, strict=True):
            source = _source(after.row(index))
            clock = clocks.get(source)
            if clock is None:
                clock = clocks[source] = Clock(ts_ns, tick)
            clock.add(ts_ns, tick)

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

    def result(self) -> dict[str, Any]:
        """The report's `risk` section."""
        fingerprints = _anonymity(frozenset(f) for f in self.output.fingerprints.values())
        services = _anonymity(frozenset(s) for s in self.output.services.values())
        original_fp = original_sv = None
        if self.pair:
            original_fp = _short(_anonymity(frozenset(f) for f in self.original.fingerprints.values()))
            original_sv = _short(_anonymity(frozenset(s) for s in self.original.services.values()))
        return {"fingerprints": {"features": list(FEATURES), **fingerprints, "original": original_fp},
                "services": {**services, "original": original_sv},
                "prefix_disclosure": {"ipv4": self._disclosure(4), "ipv6": self._disclosure(16)},
                "clock_skew": self._clock_skew(), "scans": self._scans(), "timing": self._timing()}

    def _disclosure(self, size: int) -> dict[str, Any]:
        """Bits of every other host address revealed by prefix preservation, given the known ones;
        not measured (null) when no known host or no other host is in the output. `known_missing`
        counts the given known addresses of this family that the output never shows."""
        pair, mapping = self.pair, self.mapping
        hosts = [a for a in self.frames
                 if len(a) == size and (a in mapping or not pair) and _is_host(mapping.get(a, a))]
        missing = 0
        if self.known is None:
            chosen = sorted(hosts, key=lambda a: -self.frames[a])[:self.known_hosts]
        else:
            output = {o: a for a, o in mapping.items()} if pair else {k: k for k in self.frames}
            given = [k for k in dict.fromkeys(self.known) if len(k) == size]
            chosen = [output[k] for k in given if k in output]
            missing = len(given) - len(chosen)
        known = [(_number(a), _number(mapping.get(a, a))) for a in chosen]
        assumed = set(chosen)
        bits = [_revealed(_number(a), _number(mapping.get(a, a)), known, size * 8, pair)
                for a in hosts if a not in assumed]
        measured = bool(known and bits)
        counts = Counter(bits if measured else [])
        return {"known_hosts": len(known), "known_missing": missing, "hosts": len(bits),
                "mean_bits": statistics.fmean(bits) if measured else None,
                "median_bits": float(statistics.median(bits)) if measured else None,
                "max_bits": max(bits) if measured else None,
                "histogram": [{"bits": b, "hosts": n} for b, n in sorted(counts.items())]}

    def _clock_skew(self) -> dict[str, Any]:
        exposed: list[dict[str, Any]] = []
        for host, clock in self.clocks.items():
            span_s = (clock.last_ns - clock.first_ns) / NS_PER_SECOND
            skew = clock.skew_ppm()
            if clock.samples >= self.min_samples and span_s >= self.min_span_s and skew is not None:
                exposed.append({"host": _text(host), "samples": clock.samples, "span_s": span_s,
                                "skew_ppm": skew})
        exposed.sort(key=lambda h: -h["samples"])
        return {"min_samples": self.min_samples, "min_span_s": float(self.min_span_s),
                "hosts_with_timestamps": len(self.clocks), "exposed_hosts": len(exposed),
                "hosts": exposed[:LIST_LIMIT]}

    def _scans(self) -> dict[str, Any]:
        details: list[dict[str, Any]] = []
        exposed = 0
        for source, targets in self.contacts.by_source().items():
            if len(targets) < self.min_targets:
                continue
            sequential = _sequential(targets.values()) if self.pair else None
            if sequential is not False:
                exposed += len(targets)
            details.append({"source": _text(source), "targets": len(targets),
                            "sequential_in_original": None})  # the original order stays unsaid
        return {"min_targets": self.min_targets, "sweeps": len(details), "addresses_exposed": exposed,
                "details": details[:LIST_LIMIT]}

    def _timing(self) -> dict[str, Any]:
        """Periodic streams: counted on both sides (pair), listed only as the output shows them."""
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
                "periodic_exposed": counts["exposed"] if pair else len(flows), "flows": flows[:LIST_LIMIT]}

    def _correlation(self) -> float | None:
        """Pearson correlation of original and output inter-arrival times (pair mode)."""
        n, x, y, xx, yy, xy = self.moments
        spread_x, spread_y = n * xx - x * x, n * yy - y * y
        if not self.pair or n < 2 or spread_x <= 0 or spread_y <= 0:
            return None
        covariance = n * xy - x * y
        return math.copysign(math.sqrt(Fraction(covariance * covariance, spread_x * spread_y)), covariance)


def _revealed(address: int, original: int, known: list[tuple[int, int]], width: int, pair: bool) -> int:
    """Leading bits of a host's original address an adversary learns from the known hosts.

    If the output addresses of the host and a known host share exactly p < width leading bits,
    a prefix-preserving mapping says their originals share exactly p bits too, and so also that
    the next bit of the host's is the complement of the known host's: p + 1 bits. In pair mode
    only bits that are right count: p + 1 when the originals do share exactly p bits, otherwise
    the shorter of the two common prefixes (a mapping that does not preserve prefixes reveals
    nothing by them)."""
    best = 0
    for reference, reference_original in known:
        shared = width - (address ^ reference).bit_length()
        if pair:
            truly = width - (original ^ reference_original).bit_length()
            shared = shared + 1 if truly == shared else min(shared, truly)
        else:
            shared += 1
        best = max(best, min(width, shared))
    return best


def _number(address: bytes) -> int:
    return int.from_bytes(address, "big")


def _is_host(address: bytes) -> bool:
    """Whether an address names one host (not multicast, broadcast, loopback or unspecified)."""
    ip = ipaddress.ip_address(address)
    return not (ip.is_multicast or ip.is_unspecified or ip.is_loopback or address == b"\xff" * 4)


def _sequential(originals: Iterable[bytes | None]) -> bool:
    """Whether targets, in order of first contact, mostly step up by one address."""
    values = [_number(a) for a in originals if a is not None]
    steps = sum(1 for a, b in pairwise(values) if b == a + 1)
    return len(values) > 1 and steps >= SEQUENTIAL_FRACTION * (len(values) - 1)


def _text(address: bytes) -> str:
    return str(ipaddress.ip_address(address))


def _stream_name(stream: bytes) -> str:
    """A stream row as `protocol source > destination:port`."""
    size = stream[1]
    source, destination = stream[SOURCE:SOURCE + size], stream[STREAM_DESTINATION:STREAM_DESTINATION + size]
    return f"{stream[0]} {_text(source)} > {_text(destination)}:{int.from_bytes(stream[-2:], 'big')}"
