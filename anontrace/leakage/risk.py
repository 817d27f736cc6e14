"""Re-identification risk: the attacks of the trace-anonymization literature, made into numbers.

What an adversary holding the anonymized trace can still learn: which hosts stand out by their
TCP/IP stack (SYN fingerprints) or by the services they run, how many bits of every address the
prefix-preserving mapping gives away once a few hosts are known, which hosts' clocks can be
fingerprinted from TCP timestamps, which scans reveal the mapping of a whole range, and how much
of the original timing (inter-arrival times, periodic reporting) survives. In pair mode the
ORIGINAL frames are measured too, so the effect of the rules shows; without the original, the
figures that need it are null. Memory grows with hosts and flows, never with frames.

The measures live beside the state they keep: SYN fingerprints, services and prefix disclosure
here, clock skew in `clocks.py`, sweeps in `contacts.py`, periodic streams and inter-arrival
correlation in `timing.py`. The report travels with the trace, so its lists name only what the
output shows: periodic flows as measured on the output, sweeps by their output source. What the
rules hid (a period the noise masked, a sweep's order in the original) is counted, never described.

Frames are taken a batch at a time, as columns (`flows.Keys`): most frames matter to a measure
only through numbers numpy sums, and Python looks only at those that can change a profile (a SYN,
the first frame of a flow, a TCP timestamp).
"""

from __future__ import annotations

import ipaddress
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
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
    batch_times,
    counterparts,
    destination_of,
    distinct,
    original_side,
    outer_headers,
    output_side,
    reversed_row,
    source_of,
    split_rows,
)
from anontrace.leakage.clocks import Clock, clock_skew, merge_clocks, read_clocks
from anontrace.leakage.contacts import Contacts
from anontrace.leakage.timing import Timing
from anontrace.packet.batch import Batch

FEATURES = ["ttl", "tcp_window", "tcp_options", "mss"]
FEATURE_LIMIT = 32  # distinct SYN feature tuples kept per host
LIST_LIMIT = 50  # entries in each list of the report
SYN, ACK = 0x02, 0x10
ALONG, AGAINST = 1, 2  # a flow's frames sent in its canonical direction, and the other way
TCP, UDP = 6, 17
ECHO_REQUEST = {1: 8, 58: 128}  # ICMP and ICMPv6: the only messages that contact a host
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
            features = self.fingerprints.setdefault(source_of(row), {})
            if len(features) < FEATURE_LIMIT:
                ttl_at = network + (8 if row[1] == 4 else 7)
                features[_syn_features(data, ttl_at, int(transport[index]))] = None
            if flag & ACK:
                port = int.from_bytes(row[SOURCE_PORT:DESTINATION], "big")
                self.services.setdefault(source_of(row), set()).add((TCP, port))
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
            self.services.setdefault(destination_of(served), set()).add((UDP, port))

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


def _ends(rows: npt.NDArray[np.uint8], size: int) -> npt.NDArray[np.uint8]:
    """The source and destination address of each key row of one family, in that order, a row each."""
    ends = np.stack((rows[:, SOURCE:SOURCE + size], rows[:, DESTINATION:DESTINATION + size]), axis=1)
    return ends.reshape(-1, size)


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
        self.timing = Timing(pair)

    def observe(self, batch: Batch, labels: Sequence[str | None]) -> None:
        outer, after = outer_headers(batch), output_side(batch)
        counterpart = np.full(len(after), -1, np.int64)  # each written key's original key, by index
        before = None
        if self.pair:
            before = original_side(batch)
            self.original.add(before, outer, _tcp_frames(before, outer))
            counterpart = counterparts(batch)
        tcp = _tcp_frames(after, outer)
        self._contacts(after, before, counterpart, self.output.add(after, outer, tcp))
        self._addresses(after, before, counterpart)
        read_clocks(self.clocks, after, outer, tcp, batch_times(batch)[1])
        self.timing.observe(batch, labels)

    def merge(self, later: RiskCollector) -> None:
        """Take in what `later` (made with the same arguments) observed of the frames right after
        these: afterwards this collector reports, and goes on, as one that had observed both."""
        self.contacts.merge(later.contacts, self.output.initiators)  # before the flows are merged
        self.output.merge(later.output)
        self.original.merge(later.original)
        self.frames.update(later.frames)
        self.mapping.update(later.mapping)
        merge_clocks(self.clocks, later.clocks)
        self.timing.merge(later.timing)

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
            self.contacts.add(source_of(row), destination_of(row), flow, destination_of(before.row(original))
                              if before is not None and original >= 0 else None)

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
                "clock_skew": clock_skew(self.clocks, self.min_samples, self.min_span_s, LIST_LIMIT),
                "scans": self.contacts.sweeps(self.min_targets, self.pair, LIST_LIMIT),
                "timing": self.timing.result(LIST_LIMIT)}

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
