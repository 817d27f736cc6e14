"""The timing transform: shift, keyed noise and precision, never breaking order, judged also by tshark."""

from __future__ import annotations

import io
import itertools
import math
import random
import statistics
import subprocess
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

import anontrace.pipeline as pipeline
import anontrace.rules.compile as compile_rules
from anontrace.errors import RuleError
from anontrace.io.capture import open_reader
from anontrace.io.pcap import PcapWriter
from anontrace.io.pcapng import PcapngWriter
from anontrace.keys import Key, subkey
from anontrace.packet.batch import Batch
from anontrace.packet.dissect import dissect
from anontrace.packet.frame import Frame, Interface
from anontrace.rules.compile import parse_rules, read_rules
from anontrace.transforms import registry
from anontrace.transforms.base import Context
from anontrace.transforms.timing import (
    NS_PER_DAY,
    TIME_LIMIT,
    Timing,
    TimingConfig,
    check_origin,
    keyed_shift,
)

KEY = Key(bytes(range(32)))
OTHER_KEY = Key(bytes(range(1, 33)))
SECOND = 1_000_000_000
START = 1_700_000_000 * SECOND + 123_456_789  # a capture time with digits below the microsecond
LAYERS = dissect(b"", 1)
NOISES = ("laplace", "gaussian", "uniform")


def batch_of(times: list[int], first_index: int = 0) -> Batch:
    frames = [Frame(first_index + i, t, b"", 0, 1) for i, t in enumerate(times)]
    return Batch(frames, [LAYERS] * len(frames), [bytearray() for _ in frames], list(times))


def timing(key: Key = KEY, /, **settings: Any) -> Timing:
    return Timing(TimingConfig(**settings), Context(key))


def run_times(transform: Timing, times: list[int], first_index: int = 0) -> list[int]:
    return transform.apply(batch_of(times, first_index)).ts_ns


def adversarial(seed: int, count: int = 3000) -> list[int]:
    """Equal times, 1 ns gaps, backwards jumps and long pauses, mixed."""
    chooser = random.Random(seed)
    times, now = [], START
    for _ in range(count):
        step = chooser.choice([0, 0, 0, 1, 1, 2, 1000, -1, -SECOND, 5 * SECOND])
        now = max(0, now + step)
        times.append(now)
    return times


def assert_order_kept(before: list[int], after: list[int]) -> None:
    latest = before[0]
    for i in range(1, len(before)):
        assert after[i] >= after[i - 1], f"frame {i} goes back in time"
        if before[i] <= latest:  # equal to, or behind, a time already seen
            assert after[i] == after[i - 1], f"frame {i}: equal or backwards input, output moved"
        latest = max(latest, before[i])


# shift


def test_defaults_change_nothing_in_time_ordered_input() -> None:
    times = sorted(adversarial(1, 200))
    batch = timing().apply(batch_of(times))
    assert batch.ts_ns == times and not batch.counts


def test_keyed_shift_is_one_offset_of_the_key_only() -> None:
    first, second = sorted(adversarial(2, 300)), [START + 99 * SECOND + i * 17 for i in range(300)]
    shifted_first = run_times(timing(shift="keyed"), first)
    shifted_second = run_times(timing(shift="keyed"), second)  # another instance, another trace
    offsets = {b - a for a, b in zip(first, shifted_first, strict=True)}
    offsets |= {b - a for a, b in zip(second, shifted_second, strict=True)}
    assert len(offsets) == 1  # every interval kept, and both traces stay aligned
    offset = offsets.pop()
    assert 0 < offset <= 365 * NS_PER_DAY
    span = 365 * NS_PER_DAY
    assert offset == (int.from_bytes(subkey(KEY, "timing/shift", 8), "big") * (span + 1)) >> 64
    other = run_times(timing(OTHER_KEY, shift="keyed"), first)
    assert other[0] - first[0] != offset


@pytest.mark.parametrize("days", [0.0, 0.5, 1.0, 36_525.0])
def test_keyed_shift_stays_within_max_shift_days(days: float) -> None:
    offset = keyed_shift(KEY, days)
    assert 0 <= offset <= days * NS_PER_DAY
    assert (offset > 0) == (days > 0)


def test_origin_moves_the_first_frame_and_keeps_distances_across_files() -> None:
    transform = timing(shift="origin", origin="2001-02-03T04:05:06.000007Z")
    origin = (981_173_106 * SECOND) + 7_000
    assert run_times(transform, [START, START + 1, START + 3 * SECOND]) == [
        origin, origin + 1, origin + 3 * SECOND]
    transform.reset()  # the next file of the run: its times move by the same amount
    assert run_times(transform, [START - 60 * SECOND, START + 10 * SECOND]) == [
        origin - 60 * SECOND, origin + 10 * SECOND]


def test_reset_forgets_the_order_state() -> None:
    transform = timing()
    assert run_times(transform, [START + 100 * SECOND]) == [START + 100 * SECOND]
    assert run_times(transform, [START]) == [START + 100 * SECOND]  # same file: held, order kept
    transform.reset()
    assert run_times(transform, [START, START + 1]) == [START, START + 1]  # a new file


# precision and range


@pytest.mark.parametrize(("unit", "expected"), [
    ("ns", 1_234_567_891), ("us", 1_234_567_000), ("ms", 1_234_000_000), ("s", 1_000_000_000)])
def test_precision_rounds_down(unit: str, expected: int) -> None:
    assert run_times(timing(precision=unit), [1_234_567_891]) == [expected]


@pytest.mark.parametrize("unit", [("us", 1_000), ("ms", 1_000_000), ("s", SECOND)], ids=str)
def test_precision_applies_after_shift_and_noise(unit: tuple[str, int]) -> None:
    name, size = unit
    out = run_times(timing(shift="keyed", noise="laplace", noise_scale_us=5e6, precision=name),
                    adversarial(3, 500))
    assert all(t % size == 0 for t in out) and len(set(out)) > 10


def test_times_are_clamped_and_counted() -> None:
    batch = timing(precision="s").apply(batch_of([-5, 3 * SECOND, TIME_LIMIT + 5]))
    assert batch.ts_ns == [0, 3 * SECOND, (TIME_LIMIT - 1) // SECOND * SECOND]
    assert batch.counts["timestamps clamped to 0 .. 2^64 ns"] == 2
    near_top = timing(shift="keyed").apply(batch_of([TIME_LIMIT - 10]))
    assert near_top.ts_ns == [TIME_LIMIT - 1]
    assert near_top.counts["timestamps clamped to 0 .. 2^64 ns"] == 1


# noise


@pytest.mark.parametrize(("noise", "shape"), [
    ("laplace", 1 / math.sqrt(2)), ("gaussian", math.sqrt(2 / math.pi)), ("uniform", math.sqrt(3) / 2)])
def test_noise_has_mean_zero_the_stated_scale_and_shape(noise: str, shape: float) -> None:
    """20k frames a second apart, scale 1 ms: the noise is out - in, untouched by the order rule."""
    scale_ns = 1_000_000
    times = [START + i * SECOND for i in range(20_000)]
    out = run_times(timing(noise=noise, noise_scale_us=scale_ns / 1000), times)
    drawn = [b - a for a, b in zip(times, out, strict=True)]
    mean, spread = statistics.fmean(drawn), statistics.pstdev(drawn)
    absolute = statistics.fmean(abs(d) for d in drawn)
    assert abs(mean) < 0.03 * scale_ns
    expected_spread = {"laplace": math.sqrt(2), "gaussian": 1.0, "uniform": 1 / math.sqrt(3)}[noise]
    assert spread == pytest.approx(expected_spread * scale_ns, rel=0.04)
    assert absolute / spread == pytest.approx(shape, abs=0.015)  # tells the three laws apart
    assert statistics.correlation(drawn[:-1], drawn[1:]) == pytest.approx(0, abs=0.03)
    if noise == "uniform":
        assert max(abs(d) for d in drawn) <= scale_ns


def test_noise_is_a_keyed_function_of_index_and_original_time() -> None:
    times = [START + i * SECOND for i in range(50)]
    first = run_times(timing(noise="gaussian", noise_scale_us=1000), times)
    assert run_times(timing(noise="gaussian", noise_scale_us=1000), times) == first
    assert run_times(timing(noise="gaussian", noise_scale_us=1000), times[10:], 10) == first[10:]
    moved = run_times(timing(noise="gaussian", noise_scale_us=1000), [t + 1 for t in times])
    assert all(b - a != c - d for a, b, c, d in zip(times, first, moved, (t + 1 for t in times), strict=True))
    other = run_times(timing(OTHER_KEY, noise="gaussian", noise_scale_us=1000), times)
    assert sum(a != b for a, b in zip(first, other, strict=True)) == 50


def test_noise_depends_on_the_frame_index() -> None:
    """The same original time at other positions in the stream draws other noise."""
    outs = {run_times(timing(noise="uniform", noise_scale_us=1000), [START], index)[0]
            for index in range(20)}
    assert len(outs) == 20


def test_noise_is_drawn_from_the_original_time_not_an_edited_one() -> None:
    plain = run_times(timing(noise="laplace", noise_scale_us=1000), [START])[0] - START
    edited = batch_of([START])
    edited.ts_ns[0] = START + 5 * SECOND  # as if an earlier step had moved it
    assert timing(noise="laplace", noise_scale_us=1000).apply(edited).ts_ns == [START + 5 * SECOND + plain]


# order


@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("seed", [4, 5, 6])
def test_order_is_never_broken_by_large_noise(noise: str, seed: int) -> None:
    times = adversarial(seed)
    batch = timing(shift="keyed", noise=noise, noise_scale_us=2e6).apply(batch_of(times))
    assert_order_kept(times, batch.ts_ns)
    assert len(set(batch.ts_ns)) > 20  # not everything piled onto one time
    assert batch.counts["timestamps held at the previous frame's time"] > 0


def test_equal_input_times_stay_equal() -> None:
    times = [START] * 5 + [START + 1] * 5 + [START + 2 * SECOND] * 5
    out = run_times(timing(noise="laplace", noise_scale_us=100), times)
    assert len(set(out[:5])) == len(set(out[5:10])) == len(set(out[10:])) == 1
    assert out[0] <= out[5] < out[10]


def test_backwards_input_keeps_the_previous_output() -> None:
    times = [START, START + 10 * SECOND, START + 5 * SECOND, START + 10 * SECOND, START + 11 * SECOND]
    out = run_times(timing(), times)
    assert out == [START, START + 10 * SECOND, START + 10 * SECOND, START + 10 * SECOND,
                   START + 11 * SECOND]


@pytest.mark.parametrize("size", [1, 7, 333])
def test_batch_size_does_not_change_times(size: int) -> None:
    times = adversarial(8, 1000)
    settings = {"shift": "origin", "noise": "laplace", "noise_scale_us": 3e5, "precision": "us"}
    whole = run_times(timing(**settings), times)
    transform, pieces = timing(**settings), []
    for start in range(0, len(times), size):
        pieces += run_times(transform, times[start:start + size], start)
    assert pieces == whole


# settings


def test_origin_must_be_a_utc_time() -> None:
    assert check_origin("2000-01-01T00:00:00Z") is None
    assert check_origin("2000-01-01T00:00:00+00:00") is None
    for bad in ("yesterday", "2000-01-01", "2000-01-01T00:00:00+02:00"):
        assert "not an ISO-8601 UTC time" in (check_origin(bad) or "")
    assert "outside" in (check_origin("1969-12-31T23:59:59Z") or "")


@pytest.mark.parametrize("noise", NOISES)
def test_noise_without_a_scale_is_refused(noise: str) -> None:
    with pytest.raises(RuleError, match="noise_scale_us` above 0"):
        TimingConfig(noise=noise)
    assert TimingConfig(noise=noise, noise_scale_us=0.5).noise == noise


@pytest.fixture
def with_timing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule checker as it will be once `timing` is registered."""
    monkeypatch.setattr(compile_rules, "registry", lambda: {**registry(), "timing": Timing})


@pytest.mark.parametrize(("setting", "message"), [
    ("origin: '2000-01-01'", "not an ISO-8601 UTC time"),
    ("max_shift_days: .inf", "must be at most"),
    ("noise_scale_us: .nan", "finite"),
    ("noise_scale_us: -1", "at least 0"),
    ("shift: random", "must be one of none, origin, keyed"),
    ("precision: minute", "must be one of ns, us, ms, s"),
])
def test_rule_files_with_bad_settings_are_refused_where_written(
        with_timing: None, setting: str, message: str) -> None:
    with pytest.raises(RuleError, match=message) as caught:
        parse_rules(f"version: 1\nsteps:\n  - use: timing\n    {setting}\n", "r.yaml")
    assert caught.value.where.startswith("r.yaml:4:")


def test_unquoted_origin_is_read_as_text(with_timing: None) -> None:
    rules = parse_rules("version: 1\nsteps:\n  - use: timing\n    shift: origin\n"
                        "    origin: 2000-01-01T00:00:00Z\n", "r.yaml")
    assert rules.steps[0].config.origin == "2000-01-01T00:00:00Z"


def test_rule_file_noise_without_scale_is_refused(with_timing: None) -> None:
    with pytest.raises(RuleError, match="needs `noise_scale_us` above 0") as caught:
        parse_rules("version: 1\nsteps:\n  - use: timing\n    noise: gaussian\n", "r.yaml")
    assert caught.value.where == "r.yaml:3:5"  # the step that combines the settings
    rules = parse_rules("version: 1\nsteps:\n  - use: timing\n    noise: gaussian\n"
                        "    noise_scale_us: 250\n    origin: '1999-12-31T23:59:59Z'\n", "r.yaml")
    assert rules.steps[0].config == TimingConfig(noise="gaussian", noise_scale_us=250,
                                                 origin="1999-12-31T23:59:59Z")


# end to end


TIMES = [START, START, START + 1, START + 2, START - SECOND, START + 3, START + 3,
         START + 2 * SECOND + 7, START + 2 * SECOND + 7, START + 2 * SECOND + 8, START + 60 * SECOND]
SETTINGS = {"shift": "keyed", "noise": "laplace", "noise_scale_us": 50.0}


def write_input(path: Path, kind: str) -> Path:
    frame = bytes(Ether() / IP(src="192.0.2.1", dst="198.51.100.1") / TCP(sport=1234, dport=80))
    interface = Interface(1, 65535, tsresol=9)
    with path.open("wb") as handle:
        writer = PcapngWriter(handle, "in") if kind == "pcapng" else PcapWriter(handle, "in")
        for time in TIMES:
            writer.write(0, interface, time, frame, len(frame))
        writer.finish([interface])
    return path


def scrub(source: Path, kind: str) -> bytes:
    out = io.BytesIO()
    writer = PcapngWriter(out, "out") if kind == "pcapng" else PcapWriter(out, "out")
    transforms = [*read_rules(None).build(KEY), timing(**SETTINGS)]
    pipeline.run(open_reader(str(source)), writer, transforms)
    return out.getvalue()


def tshark_times(path: Path) -> list[tuple[int, str, str]]:
    fields = subprocess.run(
        ["tshark", "-r", str(path), "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
         "-T", "fields", "-E", "separator=\t", "-e", "frame.time_epoch", "-e", "ip.checksum.status",
         "-e", "tcp.checksum.status"], capture_output=True, text=True, check=True, timeout=60).stdout
    rows = []
    for line in fields.splitlines():
        epoch, ip_status, tcp_status = line.split("\t")
        seconds, _, fraction = epoch.partition(".")
        rows.append((int(seconds) * SECOND + int(fraction.ljust(9, "0")), ip_status, tcp_status))
    return rows


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_end_to_end_times_read_back_by_tshark(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             kind: str) -> None:
    source = write_input(tmp_path / f"in.{kind}", kind)
    whole = scrub(source, kind)
    monkeypatch.setattr(pipeline, "BATCH_FRAMES", 1)
    assert scrub(source, kind) == whole
    target = tmp_path / f"out.{kind}"
    target.write_bytes(whole)
    rows = tshark_times(target)
    times = [t for t, _, _ in rows]
    assert times == run_times(timing(**SETTINGS), TIMES)  # nanoseconds kept exactly
    assert_order_kept(TIMES, times)
    assert any(t % 1000 for t in times)  # digits below the microsecond survive
    assert all(t - s > 0 for t, s in zip(times, TIMES, strict=True))  # shifted (by days)
    assert {(ip, tcp) for _, ip, tcp in rows} == {("1", "1")}  # checksums still good


@pytest.mark.parametrize("settings", [
    {"shift": "origin", "noise": "laplace", "noise_scale_us": 5.0, "precision": "us"},
    {"shift": "keyed", "noise": "uniform", "noise_scale_us": 50.0},
    {"shift": "none", "noise": "gaussian", "noise_scale_us": 3.0, "precision": "ms"},
])
def test_state_handed_over_at_any_frame_continues_as_one_run(settings: dict[str, Any]) -> None:
    """What a worker does with a piece of a file: the main process advances its own step over the
    times before the piece, hands over `state()`, and a fresh step `restore`s it. The piece's
    times are then those one step gives over the whole file: the noise reorders frames, the input
    goes backwards twice, and the origin shift comes from the very first frame."""
    rng = random.Random(7)
    times = [1_000_000_000 + n * 30_000 + rng.randrange(40_000) for n in range(300)]
    times[120] -= 50_000  # the input goes backwards ...
    times[121:124] = [times[119]] * 3  # ... and holds still
    times[200] = times[10]
    whole = run_times(timing(**settings), times)
    for cut in (1, 2, 119, 120, 121, 150, 299):
        walker = timing(**settings)
        walker.advance(0, times[:cut])
        worker = timing(**settings)
        worker.restore(walker.state())
        assert run_times(worker, times[cut:], first_index=cut) == whole[cut:], cut
    fresh = timing(**settings)
    fresh.advance(0, [])
    assert fresh.state() == timing(**settings).state()
    assert whole == sorted(whole) and len(set(whole)) > 1
    assert any(a == b for a, b in itertools.pairwise(whole))  # order-keeping held frames back
