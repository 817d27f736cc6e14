"""Periodic streams and inter-arrival correlation, on traces whose timing is known by construction."""

from __future__ import annotations

import itertools
import math
import pickle
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scapy.layers.inet import IP, UDP
from scapy.packet import Packet

from anontrace.flows import times
from anontrace.leakage.timing import INTERVAL_LIMIT, Intervals, Timing
from anontrace.packet.batch import Batch
from tests.leakage.risk_traces import ETHER, SECOND, batch_of, conforms, through_profile

LISTED = 50


def timing_of(batch: Batch, pair: bool = True) -> dict[str, Any]:
    timing = Timing(pair)
    timing.observe(batch, [None] * len(batch))
    result = timing.result(LISTED)
    conforms(result, "timing")  # JSON-safe in every test
    return result


def scrub(tmp_path: Path, packets: Sequence[Packet], profile: str) -> dict[str, Any]:
    """`packets` through the real pipeline under a shipped profile, their timing observed."""
    timing = Timing(True)
    through_profile(tmp_path, packets, profile, timing)
    result = timing.result(LISTED)
    conforms(result, "timing")
    return result


def merged(pieces: Sequence[Batch], pair: bool = True) -> Timing:
    """One fresh observer per batch, pickled (as from a worker process) and merged in order into the first."""
    observers: list[Timing] = []
    for batch in pieces:
        timing = Timing(pair)
        timing.observe(batch, [None] * len(batch))
        copy: Timing = pickle.loads(pickle.dumps(timing))
        observers.append(copy)
    for later in observers[1:]:
        observers[0].merge(later)
    return observers[0]


def sensor_and_noise(period_ns: int) -> list[Packet]:
    """A sensor reporting every `period_ns` (60 reports) among random traffic of other hosts."""
    draw = random.Random(11)
    timed = [(i * period_ns, ETHER / IP(src="10.5.0.1", dst="10.5.0.2") / UDP(sport=5000, dport=7000))
             for i in range(60)]
    for talker in range(3):
        t = 0.0
        for _ in range(20):
            t += draw.expovariate(1 / (period_ns * 3))
            timed.append((int(t), ETHER / IP(src=f"10.6.0.{talker}", dst="10.7.0.1") / UDP(dport=9)))
    timed.sort(key=lambda item: item[0])
    for t, packet in timed:
        packet.time = t / SECOND
    return [packet for _, packet in timed]


def test_a_periodic_sensor_survives_exact_times(tmp_path: Path) -> None:
    found = scrub(tmp_path, sensor_and_noise(50_000_000), "default")
    assert found["interarrival_correlation"] == 1.0  # default keeps times exactly
    assert (found["periodic_original"], found["periodic_anonymized"]) == (1, 1)
    assert (found["periodic_masked"], found["periodic_exposed"]) == (0, 1)
    (flow,) = found["flows"]
    assert flow["period_s"] == 0.05 and flow["anonymized_cv"] == 0.0 and flow["masked"] is False
    assert flow["original_cv"] is None  # details carry only what the output shows
    assert flow["flow"].startswith("17 ") and "10.5.0." not in flow["flow"]  # named in output terms


def test_strict_noise_masks_a_fast_period_and_the_report_does_not_describe_it(tmp_path: Path) -> None:
    # 10 ms Laplace noise on each time: interval std about 2 * 10 ms, CV about 0.4 on 50 ms
    found = scrub(tmp_path, sensor_and_noise(50_000_000), "strict")
    assert (found["periodic_original"], found["periodic_anonymized"]) == (1, 0)
    assert (found["periodic_masked"], found["periodic_exposed"]) == (1, 0)
    assert found["flows"] == []  # what the noise hid is counted, never described: no period, no flow
    assert found["interarrival_correlation"] < 1.0


def test_periodic_flows_are_listed_as_the_output_shows_them() -> None:
    # two sensors, each every 1 s, 0.3 s apart, to ports 8080 and 8443 that the output merges into
    # port 1024: in the output one stream with gaps 0.3 and 0.7 s, not periodic by its gaps
    times, packets = [], []
    for i in range(20):
        for offset, port in ((0, 8080), (300_000_000, 8443)):
            times.append(i * SECOND + offset)
            packets.append(ETHER / IP(src="10.5.0.1", dst="10.5.0.2") / UDP(sport=5000, dport=port))
    batch = batch_of(packets, times)
    for out in batch.data:
        out[36:38] = (1024).to_bytes(2, "big")  # the UDP destination port, after 14 + 20 bytes
    found = timing_of(batch)
    assert (found["periodic_original"], found["periodic_masked"], found["periodic_exposed"]) == (2, 0, 2)
    assert (found["periodic_anonymized"], found["flows"]) == (0, [])


def test_without_the_original_periodicity_is_judged_on_the_output() -> None:
    packets = sensor_and_noise(1_000_000_000)
    found = timing_of(batch_of(packets, [round(float(p.time) * SECOND) for p in packets]), pair=False)
    assert found["interarrival_correlation"] is None
    assert (found["periodic_original"], found["periodic_masked"]) == (None, None)
    assert (found["periodic_anonymized"], found["periodic_exposed"]) == (1, 1)
    assert found["flows"] == [{"flow": "17 10.5.0.1 > 10.5.0.2:7000", "period_s": 1.0, "original_cv": None,
                               "anonymized_cv": 0.0, "masked": None}]


def test_a_missed_report_does_not_hide_a_period() -> None:
    # 31 reports 1 s apart but one missing: 29 intervals of 1 s and one of 2 s (CV 0.17 if counted)
    times = [i * SECOND for i in range(32) if i != 16]
    packets = [ETHER / IP(src="10.5.0.1", dst="10.5.0.2") / UDP(sport=5000, dport=7000)] * len(times)
    found = timing_of(batch_of(packets, times), pair=False)
    assert found["periodic_exposed"] == 1
    assert found["flows"][0]["period_s"] == 1.0 and found["flows"][0]["anonymized_cv"] == 0.0


def test_interarrival_correlation_of_written_frames() -> None:
    packets = [ETHER / IP(src="10.0.0.1", dst="10.0.0.2") / UDP()] * 5
    batch = batch_of(packets, [0, 1, 3, 6, 10])
    batch.ts_ns[:] = [0, 10, 20, 30, 40]
    batch.drop(2, "test")
    # written frames 0, 1, 3, 4: original intervals 1, 5, 4 against output intervals 10, 20, 10
    expected = 150 / math.sqrt(78 * 600)  # sums of deviation products and squares, times 9
    assert math.isclose(timing_of(batch)["interarrival_correlation"], expected)
    reversed_times = batch_of(packets[:4], [0, 1, 3, 6])
    reversed_times.ts_ns[:] = [0, 3, 5, 6]  # intervals 1, 2, 3 against 3, 2, 1
    assert timing_of(reversed_times)["interarrival_correlation"] == -1.0
    assert timing_of(batch_of(packets[:2]))["interarrival_correlation"] is None


def logged(intervals: Intervals) -> dict[int, list[int]]:
    """The intervals kept for each stream, sorted."""
    found: dict[int, list[int]] = {}
    for streams, values in zip(intervals.streams, intervals.values, strict=True):
        for stream, value in zip(streams.tolist(), values.tolist(), strict=True):
            found.setdefault(stream, []).append(value)
    return {stream: sorted(values) for stream, values in found.items()}


def test_intervals_are_taken_per_stream_across_batches() -> None:
    intervals = Intervals()
    intervals.add(np.array([0, 1, 0]), times([10, 5, 30]))
    intervals.add(np.array([1, 0, 1, 2]), times([6, 31, 20, 7]))  # stream 2 has one frame: no interval
    assert logged(intervals) == {0: [1, 20], 1: [1, 14]}
    assert intervals.counts[:3].tolist() == [2, 2, 0]


def test_only_the_first_intervals_of_a_stream_are_kept_and_any_time_fits() -> None:
    intervals = Intervals()
    squares = [i * i for i in range(INTERVAL_LIMIT + 50)]  # intervals 1, 3, 5, ...
    intervals.add(np.zeros(100, np.int64), times(squares[:100]))
    intervals.add(np.zeros(len(squares) - 100, np.int64), times(squares[100:]))
    assert logged(intervals) == {0: [2 * i + 1 for i in range(INTERVAL_LIMIT)]}
    huge = Intervals()
    huge.add(np.array([0, 0]), times([(1 << 64) + 1, (1 << 64) + 4]))
    huge.add(np.array([0]), times([(1 << 64) + 10]))
    assert logged(huge) == {0: [3, 6]}


def test_a_stream_a_hair_from_the_periodic_limit_is_judged_exactly() -> None:
    # nine kept intervals m - d (4), m, m + d (4), and one large one ignored: CV = d * sqrt(8) / (3 * m),
    # below 0.1 exactly when 800 * d * d < 9 * m * m, that is d <= 106066017 for m = 10**9
    m = 10 ** 9

    def stream(d: int) -> list[int]:
        return [m - d] * 4 + [m] + [m + d] * 4 + [5 * m]
    assert 800 * 106066017 ** 2 < 9 * m * m < 800 * 106066018 ** 2
    intervals = Intervals()
    for number, d in enumerate((106066017, 106066018, 0, m // 2)):
        intervals.add(np.full(11, number), times([0, *itertools.accumulate(stream(d))]))
    found = intervals.periodic(4)
    assert sorted(found) == [0, 2]
    assert found[0][1] == 1.0 and 0.1 - found[0][0] < 1e-8
    assert found[2] == (0.0, 1.0)


def test_intervals_of_a_stream_split_gain_the_one_across_the_cut() -> None:
    earlier, later = Intervals(), Intervals()
    earlier.add(np.array([0, 1, 0]), times([10, 5, 30]))
    later.add(np.array([0, 1, 2, 0]), times([6, 31, 7, 20]))  # its streams 0, 1, 2 are 1, 0, 2 here
    earlier.merge(later, np.array([1, 0, 2]))
    assert logged(earlier) == {0: [1, 20], 1: [1, 14]}  # 31 - 30 and 6 - 5 cross the cut
    assert earlier.counts[:3].tolist() == [2, 2, 0]
    earlier.add(np.array([2, 0]), times([9, 40]))  # and it goes on as one
    assert logged(earlier) == {0: [1, 9, 20], 1: [1, 14], 2: [2]}


def test_merged_intervals_keep_only_the_first_of_each_stream() -> None:
    squares = [i * i for i in range(INTERVAL_LIMIT + 50)]  # intervals 1, 3, 5, ...
    for cut in (1, 100, INTERVAL_LIMIT, INTERVAL_LIMIT + 1, INTERVAL_LIMIT + 20):
        earlier, later = Intervals(), Intervals()
        earlier.add(np.zeros(cut, np.int64), times(squares[:cut]))
        later.add(np.zeros(len(squares) - cut, np.int64), times(squares[cut:]))
        earlier.merge(later, np.array([0]))
        assert logged(earlier) == {0: [2 * i + 1 for i in range(INTERVAL_LIMIT)]}, cut
        assert earlier.counts[0] == len(squares) - 1
    for start in ((1 << 64) + 1, (1 << 63) - 1):  # times beyond int64 on both sides of the cut, or after it
        earlier, later = Intervals(), Intervals()
        earlier.add(np.array([0]), times([start]))
        later.add(np.array([0, 0]), times([start + 3, start + 9]))
        earlier.merge(later, np.array([0]))
        assert logged(earlier) == {0: [3, 6]}


def test_a_periodic_stream_split_is_still_periodic() -> None:
    report = [ETHER / IP(src="10.0.0.88", dst="10.0.0.99") / UDP(sport=7000, dport=5683)] * 12
    stamps = [SECOND * n for n in range(12)]
    pieces = [batch_of(report[start:end], stamps[start:end]) for start, end in ((0, 5), (5, 6), (6, 12))]
    timing = merged(pieces, pair=False).result(LISTED)
    assert timing["periodic_anonymized"] == 1
    assert timing["flows"][0]["period_s"] == 1.0 and timing["flows"][0]["anonymized_cv"] == 0.0
    alone = merged(pieces[2:], pair=False).result(LISTED)
    assert alone["periodic_anonymized"] == 0  # six frames alone give too few intervals


def test_the_interval_across_a_cut_counts_in_the_correlation() -> None:
    packets = [ETHER / IP(src="10.0.0.1", dst="10.0.0.2") / UDP()] * 5
    outputs = [0, 10, 20, 30, 40]
    pieces = [batch_of(packets[:2], [0, 1]), batch_of(packets[2:], [3, 6, 10])]
    pieces[0].ts_ns[:] = outputs[:2]
    pieces[1].ts_ns[:] = outputs[2:]
    pieces[1].drop(0, "test")
    # written frames 0, 1, 3, 4: original intervals 1, 5, 4 against output intervals 10, 20, 10
    expected = 150 / math.sqrt(78 * 600)
    assert math.isclose(merged(pieces).result(LISTED)["interarrival_correlation"], expected)
    assert merged(pieces[1:]).result(LISTED)["interarrival_correlation"] is None  # one interval


def test_only_the_first_listed_periodic_streams_are_named_but_all_are_counted() -> None:
    stamps, packets = [], []
    for i in range(12):
        for port in (7001, 7002, 7003):  # three sensors, each reporting every second
            stamps.append(i * SECOND + port)
            packets.append(ETHER / IP(src="10.5.0.1", dst="10.5.0.2") / UDP(sport=5000, dport=port))
    timing = Timing(False)
    timing.observe(batch_of(packets, stamps), [None] * len(packets))
    found = timing.result(1)
    assert (found["periodic_anonymized"], found["periodic_exposed"]) == (3, 3)
    assert [flow["flow"] for flow in found["flows"]] == ["17 10.5.0.1 > 10.5.0.2:7001"]
