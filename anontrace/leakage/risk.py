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
"""

from __future__ import annotations

import ipaddress
import math
import statistics
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import pairwise
from typing import Any

from anontrace.flows import FiveTuple, original_keys, output_keys
from anontrace.packet.batch import Batch
from anontrace.packet.frame import NS_PER_SECOND
from anontrace.packet.layers import Header, Layers

FEATURES = ["ttl", "tcp_window", "tcp_options", "mss"]
FEATURE_LIMIT = 32  # distinct SYN feature tuples kept per host
INTERVAL_LIMIT = 256  # inter-arrival samples kept per stream
LIST_LIMIT = 50  # entries in each list of the report
TICK_RATES = (1, 10, 100, 250, 1000)  # TCP timestamp clock rates in use (Hz)
PERIODIC_CV = 0.1
MIN_INTERVALS = 8
SEQUENTIAL_FRACTION = 0.8
SYN, ACK = 0x02, 0x10
TCP, UDP = 6, 17
ECHO_REQUEST = {1: 8, 58: 128}  # ICMP and ICMPv6: the only messages that contact a host
Feature = tuple[int, int, tuple[int, ...], int | None]
Stream = tuple[int, bytes, bytes, int]  # protocol, source, destination, destination port


def _transport(layers: Layers) -> tuple[Header, Header] | None:
    """The outermost IP header and the header right after it (as `five_tuple` reads them)."""
    outer = [h for h in layers.headers if not h.quoted]
    for position, header in enumerate(outer):
        if header.kind in ("ipv4", "ipv6"):
            return (header, outer[position + 1]) if position + 1 < len(outer) else None
    return None


def _syn_features(data: bytes | bytearray, network: Header, tcp: int) -> Feature:
    """TTL or hop limit, window, option kinds in order and MSS of a SYN whose header is whole."""
    ttl = data[network.offset + (8 if network.kind == "ipv4" else 7)]
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


def _icmp_type(data: bytes | bytearray, found: tuple[Header, Header] | None) -> int | None:
    if found is None or found[1].kind not in ("icmp", "icmpv6") or found[1].offset >= len(data):
        return None
    return data[found[1].offset]


def _anonymity(profiles: Iterable[frozenset[Any]]) -> dict[str, Any]:
    """k-anonymity of hosts by profile: k of a host is the number of hosts sharing its profile."""
    sizes = Counter(profiles)
    by_k: Counter[int] = Counter()
    for size in sizes.values():
        by_k[size] += size
    hosts = sum(by_k.values())
    return {"hosts": hosts, "unique": by_k[1], "unique_fraction": by_k[1] / hosts if hosts else 0.0,
            "k_histogram": [{"k": k, "hosts": n} for k, n in sorted(by_k.items())]}


@dataclass(slots=True)
class Side:
    """What one side of the pair shows about hosts: SYN fingerprints and the ports they serve."""

    fingerprints: dict[bytes, set[Feature]] = field(default_factory=dict)
    services: dict[bytes, set[tuple[int, int]]] = field(default_factory=dict)
    initiators: dict[FiveTuple, FiveTuple] = field(default_factory=dict)  # non-TCP flow -> first key

    def add(self, data: bytes | bytearray, key: FiveTuple, found: tuple[Header, Header] | None) -> bool:
        """Note one frame; True when its sender contacts its destination: a SYN, an echo request,
        or the first frame of another flow."""
        if key.protocol != TCP:
            canonical = key.canonical()
            first = self.initiators.get(canonical)
            if first is None:
                self.initiators[canonical] = key
                echo = ECHO_REQUEST.get(key.protocol)
                return echo is None or _icmp_type(data, found) == echo
            if key.protocol == UDP and first != key:
                self.services.setdefault(first.destination, set()).add((UDP, first.destination_port))
            return False
        if found is None or found[1].kind != "tcp" or found[1].offset + 20 > len(data):
            return False
        network, tcp = found[0], found[1].offset
        flags = data[tcp + 13]
        if not flags & SYN:
            return False
        features = self.fingerprints.setdefault(key.source, set())
        if len(features) < FEATURE_LIMIT:
            features.add(_syn_features(data, network, tcp))
        if flags & ACK:
            self.services.setdefault(key.source, set()).add((TCP, key.source_port))
        return not flags & ACK


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


@dataclass(slots=True)
class Series:
    """Inter-arrival times of one stream: the first INTERVAL_LIMIT intervals, in ns."""

    last_ns: int | None = None
    intervals: array[int] | None = None  # made at the second frame: most streams have one

    def add(self, ts_ns: int) -> None:
        if self.last_ns is not None:
            if self.intervals is None:
                self.intervals = array("q")
            if len(self.intervals) < INTERVAL_LIMIT:
                self.intervals.append(ts_ns - self.last_ns)
        self.last_ns = ts_ns

    def periodicity(self) -> tuple[float, float] | None:
        """(coefficient of variation, median interval in s) once there are enough intervals; the
        largest 10% are ignored (a sensor that missed a report or a pause in the capture)."""
        intervals = self.intervals
        if intervals is None or len(intervals) < MIN_INTERVALS:
            return None
        kept = sorted(intervals)[:len(intervals) - len(intervals) // 10]
        mean = statistics.fmean(kept)
        if mean <= 0:
            return None
        return statistics.pstdev(kept) / mean, statistics.median(kept) / NS_PER_SECOND


@dataclass(slots=True)
class Timed:
    """One ORIGINAL stream (protocol, source, destination, destination port) on both sides: its
    frames' original times, and the output times of those of them written."""

    original: Series = field(default_factory=Series)
    output: Series = field(default_factory=Series)


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
        self.contacts: dict[bytes, dict[bytes, bytes | None]] = {}  # source -> target -> original
        self.streams: dict[Stream, Timed] = {}  # original stream -> its times before and after (pair)
        self.written: dict[Stream, Series] = {}  # output stream -> the times it shows
        self.moments = [0] * 6  # n, x, y, xx, yy, xy of original (x) and output (y) intervals
        self.previous: tuple[int, int] | None = None

    def observe(self, batch: Batch, labels: Sequence[str | None]) -> None:
        pair, dropped = self.pair, batch.dropped
        befores = original_keys(batch) if pair else [None] * len(batch)
        afters = output_keys(batch)
        for position, (frame, layers) in enumerate(zip(batch.frames, batch.layers, strict=True)):
            found = _transport(layers)
            before = befores[position]
            timed = None
            if before is not None:
                self.original.add(frame.data, before, found)
                stream = _stream(before)
                timed = self.streams.get(stream)
                if timed is None:
                    timed = self.streams[stream] = Timed()
                timed.original.add(frame.ts_ns)
            if position in dropped:
                continue
            out, ts_ns = batch.data[position], batch.ts_ns[position]
            self._interarrival(frame.ts_ns, ts_ns)
            after = afters[position]
            if after is None:
                continue
            self._output(out, ts_ns, after, before, found)
            if timed is not None:
                timed.output.add(ts_ns)
            stream = _stream(after)
            shown = self.written.get(stream)
            if shown is None:
                shown = self.written[stream] = Series()
            shown.add(ts_ns)

    def _output(self, out: bytearray, ts_ns: int, after: FiveTuple, before: FiveTuple | None,
                found: tuple[Header, Header] | None) -> None:
        frames = self.frames
        frames[after.source] += 1
        frames[after.destination] += 1
        if before is not None:
            self.mapping[after.source] = before.source
            self.mapping[after.destination] = before.destination
        if self.output.add(out, after, found):
            targets = self.contacts.setdefault(after.source, {})
            if after.destination not in targets:
                targets[after.destination] = before.destination if before else None
        if after.protocol == TCP and found is not None and found[1].kind == "tcp":
            tcp = found[1].offset
            if tcp + 20 <= len(out):
                tick = _timestamp(out, tcp)
                if tick:  # 0 is left as it is by renumbering: it is no reading of the clock
                    clock = self.clocks.get(after.source)
                    if clock is None:
                        clock = self.clocks[after.source] = Clock(ts_ns, tick)
                    clock.add(ts_ns, tick)

    def _interarrival(self, original_ns: int, output_ns: int) -> None:
        if self.pair and self.previous is not None:
            x, y = original_ns - self.previous[0], output_ns - self.previous[1]
            m = self.moments
            m[0] += 1
            m[1] += x
            m[2] += y
            m[3] += x * x
            m[4] += y * y
            m[5] += x * y
        self.previous = (original_ns, output_ns)

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
        for source, targets in self.contacts.items():
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
        counts = Counter[str]()
        for timed in self.streams.values():
            was, now = _periodic(timed.original), _periodic(timed.output)
            counts["original"] += was
            counts["masked"] += was and not now
            counts["exposed"] += was and now
        flows = []
        for stream, series in self.written.items():
            shown = series.periodicity()
            if shown is not None and shown[0] < PERIODIC_CV:
                flows.append({"flow": _stream_name(stream), "period_s": shown[1], "original_cv": None,
                              "anonymized_cv": shown[0], "masked": False if pair else None})
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


def _stream(key: FiveTuple) -> Stream:
    return key.protocol, key.source, key.destination, key.destination_port


def _periodic(series: Series) -> bool:
    found = series.periodicity()
    return found is not None and found[0] < PERIODIC_CV


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


def _stream_name(stream: Stream) -> str:
    protocol, source, destination, port = stream
    return f"{protocol} {_text(source)} > {_text(destination)}:{port}"
