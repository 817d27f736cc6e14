"""TCP timestamp clocks: ticks read in any option layout, fits exact across pieces, skew exposed."""

from __future__ import annotations

import ipaddress
import itertools
import math
from fractions import Fraction

import numpy as np
from scapy.layers.inet import IP, TCP
from scapy.packet import Packet

from anontrace.flows import batch_times, outer_headers, output_side
from anontrace.leakage.clocks import Clock, clock_skew, merge_clocks, read_clocks, ticks
from anontrace.packet.batch import Batch
from tests.leakage.risk_traces import ETHER, SECOND, batch_of, conforms


def stamped(source: str, tick: int) -> Packet:
    return (ETHER / IP(src=source, dst="192.0.2.99")
            / TCP(sport=40000, dport=443, flags="A", options=[("Timestamp", (tick, 0))]))


def clocks_of(batch: Batch) -> dict[bytes, Clock]:
    """The clocks of a batch of TCP frames whose headers are all whole, read from its output."""
    keys = output_side(batch)
    clocks: dict[bytes, Clock] = {}
    read_clocks(clocks, keys, outer_headers(batch), np.arange(len(keys)), batch_times(batch)[1])
    return clocks


def test_timestamps_are_read_whatever_the_option_layout() -> None:
    layouts = [[("NOP", None), ("NOP", None), ("Timestamp", (5, 0))],  # the usual one
               [("MSS", 1460), ("Timestamp", (7, 0)), ("NOP", None), ("NOP", None)],
               [("NOP", None), ("NOP", None), ("Timestamp", (0, 0))],  # 0: no reading
               []]
    batch = batch_of([ETHER / IP(src="10.0.0.1", dst="192.0.2.99") / TCP(flags="A", options=options)
                      for options in layouts])
    keys = output_side(batch)
    found, values = ticks(keys, outer_headers(batch), np.arange(len(keys)))
    assert (found.tolist(), values) == ([0, 1], [5, 7])


def test_a_host_with_enough_timestamps_has_its_clock_skew_exposed() -> None:
    start = (1 << 32) - 50_000  # the clock wraps 50 s into the capture
    times = [round(i * 120 * SECOND / 39) for i in range(40)]  # 40 samples over 120 s
    packets = [stamped("10.0.0.7", (start + math.floor(t * 1000 * (1 + 50e-6) / SECOND)) % (1 << 32))
               for t in times]
    packets += [stamped("10.0.0.8", 1000 + i * 30_000) for i in range(5)]  # 5 samples: too few
    times += [i * 30 * SECOND for i in range(5)]
    found = clock_skew(clocks_of(batch_of(packets, times)), 20, 60.0, 50)
    conforms(found, "clock_skew")
    assert (found["min_samples"], found["min_span_s"]) == (20, 60.0)
    assert (found["hosts_with_timestamps"], found["exposed_hosts"]) == (2, 1)
    host = found["hosts"][0]
    assert (host["host"], host["samples"], host["span_s"]) == ("10.0.0.7", 40, 120.0)
    assert abs(host["skew_ppm"] - 50) < 3


def test_only_the_first_listed_hosts_are_named_most_samples_first() -> None:
    packets, times = [], []
    for host, samples in (("10.0.0.1", 25), ("10.0.0.2", 30)):  # 1000 Hz, one sample every 3 s
        packets += [stamped(host, 3000 * i + 1) for i in range(samples)]
        times += [3 * SECOND * i for i in range(samples)]
    found = clock_skew(clocks_of(batch_of(packets, times)), 20, 60.0, 1)
    assert found["exposed_hosts"] == 2
    assert [(h["host"], h["samples"]) for h in found["hosts"]] == [("10.0.0.2", 30)]
    assert found["hosts"][0]["skew_ppm"] == 0.0


def test_a_clock_merged_in_is_a_copy() -> None:
    host = ipaddress.ip_address("10.0.0.1").packed
    later = {host: Clock(0, 100)}
    later[host].add(0, 100)
    mine: dict[bytes, Clock] = {}
    merge_clocks(mine, later)
    mine[host].add(SECOND, 1100)
    assert (mine[host].samples, mine[host].sums) == (2, [SECOND, 1000, SECOND * SECOND, SECOND * 1000])
    assert (later[host].samples, later[host].sums) == (1, [0, 0, 0, 0])


def test_a_clock_split_anywhere_fits_as_one() -> None:
    hertz, first_tick = 1000.25, (1 << 32) - 7000  # wraps after 7 s
    samples = [(SECOND * n + 1_000_003 * n * n, int(first_tick + hertz * (n + n * n / 1000)))
               for n in range(40)]
    # the least-squares slope of the unwrapped ticks on time, in Hz, computed apart
    n = len(samples)
    t_mean = Fraction(sum(t for t, _ in samples), n)
    v_mean = Fraction(sum(v for _, v in samples), n)
    slope = sum((t - t_mean) * (v - v_mean) for t, v in samples) / sum((t - t_mean) ** 2 for t, _ in samples)
    expected = (float(slope * SECOND) / 1000 - 1) * 1e6
    for cuts in ([1], [7], [20, 21], list(range(1, 40))):
        bounds = [0, *cuts, n]
        clocks = []
        for start, end in itertools.pairwise(bounds):
            (t0, v0), *_ = samples[start:end]
            clock = Clock(t0, v0 % (1 << 32))
            for t, v in samples[start:end]:
                clock.add(t, v % (1 << 32))
            clocks.append(clock)
        for later in clocks[1:]:
            clocks[0].merge(later)
        assert clocks[0].samples == n and clocks[0].tick == samples[-1][1] - samples[0][1]
        assert clocks[0].last_raw == samples[-1][1] % (1 << 32)
        skew = clocks[0].skew_ppm()
        assert skew is not None and math.isclose(skew, expected, rel_tol=1e-9)
