"""timing: shift, blur and coarsen frame times, keeping their order."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from statistics import NormalDist

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from anontrace.errors import RuleError
from anontrace.keys import Key, subkey
from anontrace.packet.batch import Batch
from anontrace.packet.frame import Frame
from anontrace.transforms.base import Context, Transform, setting

SHIFTS = ("none", "origin", "keyed")
NOISES = ("none", "laplace", "gaussian", "uniform")
UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
TIME_LIMIT = 1 << 64  # output times stay in [0, TIME_LIMIT): what a pcapng block can hold
NS_PER_DAY = 86_400 * 1_000_000_000
MAX_SHIFT_DAYS = 36_525  # a century
MAX_NOISE_US = 86_400_000_000  # a day
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WORD_MASK = (1 << 64) - 1
BLOCK = struct.Struct("<QQ")  # PRF input per frame: frame index, original time
ADVANCE_BATCH = 4096
TimingState = tuple[int | None, int | None, int]  # shift, latest input time, previous output time
DRAW = struct.Struct("<Q8x")  # PRF output per frame: 64 bits used, 53 of them for the uniform


def origin_ns(text: str) -> int:
    """An ISO-8601 UTC time as integer nanoseconds since 1970 (ValueError if it is not one)."""
    moment = datetime.fromisoformat(text)
    if moment.utcoffset() != timedelta(0):
        raise ValueError("not UTC")
    since = moment - EPOCH
    return (since.days * 86_400 + since.seconds) * 1_000_000_000 + since.microseconds * 1_000


def check_origin(value: str) -> str | None:
    try:
        ns = origin_ns(value)
    except ValueError:
        return (f"{value!r} is not an ISO-8601 UTC time: write it like 2000-01-01T00:00:00Z "
                "(ending in Z or +00:00)")
    if not 0 <= ns < TIME_LIMIT:
        return f"{value!r} is outside 1970-01-01T00:00:00Z .. 2554-07-21T23:34:33Z"
    return None


def check_finite(value: float) -> str | None:
    return None if math.isfinite(value) else f"must be a finite number, got {value}"


@dataclass(frozen=True, slots=True)
class TimingConfig:
    shift: str = setting(
        "none", "Move every time by one amount, hiding when the capture was made while keeping "
        "every interval: `none` keeps capture times; `origin` moves the run's first frame to "
        "`origin`; `keyed` moves every time by one secret offset drawn from the key, the same for "
        "every file and run with the key.", choices=SHIFTS)
    origin: str = setting(
        "2000-01-01T00:00:00Z", "With `shift: origin`, where the run's first frame lands: an "
        "ISO-8601 UTC time, quoted in a rule file (YAML reads an unquoted time as a date), e.g. "
        "`origin: '2000-01-01T00:00:00Z'`.", check=check_origin)
    max_shift_days: float = setting(
        365.0, "With `shift: keyed`, the offset lies between 0 and this many days; the capture "
        "date is then known only to within this span.", minimum=0, maximum=MAX_SHIFT_DAYS,
        check=check_finite)
    noise: str = setting(
        "none", "Keyed random offset added to each frame's time, to blur inter-arrival times: "
        "`laplace`, `gaussian` or `uniform`, with scale `noise_scale_us`; `none` adds nothing.",
        choices=NOISES)
    noise_scale_us: float = setting(
        0.0, "Scale of the noise in microseconds: the Laplace b, the Gaussian standard deviation, "
        "or the uniform half-width. Must be above 0 when `noise` is not `none`.",
        minimum=0, maximum=MAX_NOISE_US, check=check_finite)
    precision: str = setting(
        "ns", "Round every time down to this unit (`ns`, `us`, `ms`, `s`) after shift and noise.",
        choices=tuple(UNITS))

    def __post_init__(self) -> None:
        if self.noise != "none" and not self.noise_scale_us > 0:
            raise RuleError("timing step", f"`noise: {self.noise}` needs `noise_scale_us` above 0 "
                            f"(it is {self.noise_scale_us}): a noise of scale 0 blurs nothing",
                            "give the scale in microseconds, e.g. `noise_scale_us: 1000` for 1 ms, "
                            "or set `noise: none`")


def keyed_shift(key: Key, max_shift_days: float) -> int:
    """The key's offset in nanoseconds, uniform over [0, max_shift_days] days."""
    span = math.floor(Fraction(max_shift_days) * NS_PER_DAY)
    word = int.from_bytes(subkey(key, "timing/shift", 8), "big")
    return (word * (span + 1)) >> 64


def _laplace(u: float) -> float:
    centred = u - 0.5
    return math.copysign(-math.log1p(-2.0 * abs(centred)), centred)


def _uniform(u: float) -> float:
    return 2.0 * u - 1.0


DRAWS: dict[str, Callable[[float], float]] = {
    "laplace": _laplace, "gaussian": NormalDist().inv_cdf, "uniform": _uniform}


class Noise:
    """Per-frame noise in nanoseconds: AES of (frame index, original time) under the key's noise
    subkey gives a uniform in (0, 1), turned into the distribution by its inverse CDF."""

    def __init__(self, key: Key, kind: str, scale_us: float) -> None:
        self._cipher = Cipher(algorithms.AES(subkey(key, "timing/noise")), modes.ECB())
        self._draw = DRAWS[kind]
        self._scale_ns = scale_us * 1_000.0

    def draw(self, frames: Sequence[Frame]) -> list[int]:
        blocks = b"".join(BLOCK.pack(f.index & WORD_MASK, f.ts_ns & WORD_MASK) for f in frames)
        encryptor = self._cipher.encryptor()
        stream = encryptor.update(blocks) + encryptor.finalize()
        draw, scale = self._draw, self._scale_ns
        return [round(draw(((word >> 11) + 0.5) * 2.0**-53) * scale) for (word,) in DRAW.iter_unpack(stream)]


class Timing(Transform):
    """Shift, blur and coarsen frame times, keeping their order.

    `shift` hides when the capture was made. `keyed` moves every time by one secret offset between
    0 and `max_shift_days` days: intervals, rates and the relative timing of traces scrubbed with
    the same key stay exact (they stay aligned with each other), and the true date is known only
    to lie within `max_shift_days` before the shown one. `origin` moves the first frame of the
    run to `origin` and every later frame (in every file of the run) by the same amount, so only
    durations are left. Neither touches times carried inside packets (TCP timestamp option, NTP,
    TLS, DNS serials).

    `noise` adds to each frame a random offset, drawn from a keyed PRF of the frame's index and
    original time (the same input and key give the same output), from a Laplace, Gaussian or
    uniform distribution of scale `noise_scale_us`. It blurs inter-arrival times at that scale:
    a periodic sensor's reporting schedule, polling and keystroke rhythms, round-trip times. It
    does NOT hide what shows over many samples (averaging n intervals shrinks the noise by √n,
    so a long-term period or diurnal pattern remains), nor the order of frames, their number or
    sizes (volume), nor anything slower than the scale. Noise much larger than the gaps between
    frames bunches them onto equal times.

    `precision` rounds times down to a unit after shift and noise. Coarse units hide clock-skew
    fingerprints (a host's clock drift, measured from timestamps over a long capture) and
    sub-unit timing.

    Order is kept: output times never decrease in frame order; frames with equal times keep equal
    times; a frame earlier than the latest time seen before it (the input went backwards) gets
    the previous frame's output time. The order state restarts with each file; the `origin`
    offset does not. Times stay within 0 and 2^64 ns; frames that would leave that range are
    clamped to it and counted.
    """

    name = "timing"
    Config = TimingConfig

    def __init__(self, config: TimingConfig, context: Context) -> None:
        super().__init__(config, context)
        self._unit = UNITS[config.precision]
        self._noise = (None if config.noise == "none"
                       else Noise(context.key, config.noise, config.noise_scale_us))
        self._origin = origin_ns(config.origin) if config.shift == "origin" else 0
        self._shift: int | None = None if config.shift == "origin" else 0
        if config.shift == "keyed":
            self._shift = keyed_shift(context.key, config.max_shift_days)
        self._latest_in: int | None = None  # the latest input time in this file so far
        self._last_out = 0  # the previous frame's output time

    @property
    def carries_state(self) -> bool:
        return True  # the order state (and the `origin` shift, from the run's first frame)

    def state(self) -> TimingState:
        """What the frames so far left behind: a worker given it goes on as this one would."""
        return (self._shift, self._latest_in, self._last_out)

    def restore(self, state: TimingState) -> None:
        self._shift, self._latest_in, self._last_out = state

    def advance(self, first: int, times: Sequence[int]) -> None:
        """Move the state past frames numbered from `first` with these original times, as
        `apply` would (the same code: only their index and time matter to it)."""
        for start in range(0, len(times), ADVANCE_BATCH):
            part = times[start:start + ADVANCE_BATCH]
            frames = [Frame(first + start + n, ts_ns, b"", 0, 0) for n, ts_ns in enumerate(part)]
            self.apply(Batch(frames, [], [], list(part)))

    def reset(self) -> None:
        """Forget the order state at the start of a file (the run's shift is kept)."""
        self._latest_in = None
        self._last_out = 0

    @property
    def columnar(self) -> bool:
        return True  # times only

    def apply(self, batch: Batch) -> Batch:
        noise = self._noise.draw(batch.frames) if self._noise else [0] * len(batch)
        unit, times = self._unit, batch.ts_ns
        clamped = held = 0
        for position, (time, extra) in enumerate(zip(times, noise, strict=True)):
            if self._shift is None:
                self._shift = self._origin - time
            wanted = time + self._shift + extra
            if not 0 <= wanted < TIME_LIMIT:
                wanted = min(max(wanted, 0), TIME_LIMIT - 1)
                clamped += 1
            wanted -= wanted % unit
            latest = self._latest_in
            if latest is None or time > latest:
                out = wanted if latest is None else max(wanted, self._last_out)
                self._latest_in = time
            else:
                out = self._last_out  # equal to, or behind, a time already given out
            held += out != wanted
            self._last_out = times[position] = out
        if clamped:
            batch.counts["timestamps clamped to 0 .. 2^64 ns"] += clamped
        if held:
            batch.counts["timestamps held at the previous frame's time"] += held
        return batch
