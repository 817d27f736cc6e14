"""Clock skew: hosts whose TCP timestamps let an adversary fingerprint their clock.

A TCP timestamp counts ticks of the sender's clock. Fitted against capture time over a minute or
more, the ticks give the clock's rate, whose drift from the nominal rate (a few parts per
million) is a property of the host's hardware that survives any renaming of its address. A host
is exposed when enough samples over a long enough span are in the output; renumbering keeps the
rate, removing the option (or the host's timestamps being 0) hides it.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import numpy as np

from anontrace.flows import Int64s, Keys, Outer, Times, source_of
from anontrace.packet.frame import NS_PER_SECOND

TICK_RATES = (1, 10, 100, 250, 1000)  # TCP timestamp clock rates in use (Hz)
TIMESTAMP_OPTION = np.array([1, 1, 8, 10], np.uint8)  # NOP, NOP, timestamps: how most stacks lay it out


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


def read_clocks(clocks: dict[bytes, Clock], keys: Keys, outer: Outer, tcp: Int64s, ts_ns: Times) -> None:
    """Add the TCP timestamps of the frames `tcp` (by index in `keys`: TCP frames whose header is
    whole), sent at `ts_ns` (a column over the batch), to their sources' clocks."""
    stamped, tick_values = ticks(keys, outer, tcp)
    at = ts_ns[keys.positions[stamped]].tolist()
    for index, tick, sent_ns in zip(stamped.tolist(), tick_values, at, strict=True):
        source = source_of(keys.row(index))
        clock = clocks.get(source)
        if clock is None:
            clock = clocks[source] = Clock(sent_ns, tick)
        clock.add(sent_ns, tick)


def merge_clocks(clocks: dict[bytes, Clock], later: dict[bytes, Clock]) -> None:
    """Take in the clocks of `later`, whose samples were taken after these."""
    for host, clock in later.items():
        mine = clocks.get(host)
        if mine is None:
            clocks[host] = replace(clock, sums=list(clock.sums))
        else:
            mine.merge(clock)


def clock_skew(clocks: dict[bytes, Clock], min_samples: int, min_span_s: float,
               listed: int) -> dict[str, Any]:
    """The report's `risk.clock_skew`: hosts with at least `min_samples` samples over at least
    `min_span_s` seconds, the first `listed` of them (most samples first) named."""
    exposed: list[dict[str, Any]] = []
    for host, clock in clocks.items():
        span_s = (clock.last_ns - clock.first_ns) / NS_PER_SECOND
        skew = clock.skew_ppm()
        if clock.samples >= min_samples and span_s >= min_span_s and skew is not None:
            exposed.append({"host": str(ipaddress.ip_address(host)), "samples": clock.samples,
                            "span_s": span_s, "skew_ppm": skew})
    exposed.sort(key=lambda h: -h["samples"])
    return {"min_samples": min_samples, "min_span_s": float(min_span_s),
            "hosts_with_timestamps": len(clocks), "exposed_hosts": len(exposed), "hosts": exposed[:listed]}


def ticks(keys: Keys, outer: Outer, tcp: Int64s) -> tuple[Int64s, list[int]]:
    """The frames among `tcp` (by index in `keys`) with a TCP timestamps option whose TSval is
    not 0 (renumbering leaves 0 as it is: it is no reading of the clock), and that TSval. The usual
    layout (NOP, NOP, timestamps) is read for all frames at once, any other one frame by frame."""
    frames, positions = keys.frames, keys.positions[tcp]
    transport = outer.transport[positions]
    header = (frames.take(positions, transport + 12, 1)[:, 0] >> 4).astype(np.int64) * 4
    ends = np.minimum(transport + header, frames.lengths[positions])
    options = frames.take(positions, transport + 20, 8)
    usual = (options[:, :4] == TIMESTAMP_OPTION).all(axis=1) & (transport + 28 <= ends)
    found = np.where(usual, options[:, 4:].copy().view(">u4")[:, 0].astype(np.int64), 0)
    for index in np.flatnonzero(~usual & (ends > transport + 20)).tolist():
        found[index] = _timestamp(frames.data[int(positions[index])], int(transport[index])) or 0
    stamped = np.flatnonzero(found)
    return tcp[stamped], found[stamped].tolist()


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
