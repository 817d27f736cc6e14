"""Scrub work spread over worker processes on this machine, or over a Dask cluster.

The unit of work is a `Job`: one capture file, or one piece of one (`io.split.Chunk`: a byte
range that starts at a record boundary, with the frame number and reader state it starts with).
A worker runs the ordinary pipeline over it with fresh observers and sends back a `Piece`: the
output records, the counts, and the observers themselves. The main process takes the pieces in
file order, writes their records with the one writer of the output, and merges the observers,
so the trace, its report and its sidecars are those of a run in one process, byte for byte.

Only transforms whose output for a frame depends on nothing but that frame (its bytes and index)
and the key allow this. A transform that carries state from frame to frame (`timing` keeps
output times in order, and its `origin` shift comes from the run's first frame) makes the whole
run sequential, in this process; the summary says so.

Workers get the key the way the user gave it: a key file path, read (and its fingerprint checked)
where the work runs, so the key is never part of a Dask task graph. Only a one-time key, which
has no file, travels to local worker processes, through their pipes; the Dask engine refuses it.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from anontrace.errors import KeyError_
from anontrace.io.capture import open_reader
from anontrace.io.split import Chunk, Digest, chunks, open_chunk, split_size, splittable
from anontrace.keys import Key, read_key_file
from anontrace.labels import GroundTruth, Labeling, LabelRecorder
from anontrace.leakage.report import ReportBuilder, names_config
from anontrace.leakage.residual import (
    IdentifierCollector,
    Section,
    kept_by_mappers,
    merge_residual,
    scan_frames,
    scan_metadata,
)
from anontrace.packet.frame import Interface
from anontrace.pipeline import RunStats, run
from anontrace.pool import LocalPool
from anontrace.rules.compile import Rules
from anontrace.transforms.base import Transform
from anontrace.transforms.ip import Ip
from anontrace.transforms.mac import Mac
from anontrace.transforms.scoped import Scoped
from anontrace.transforms.timing import Timing, TimingState

CHUNK_BYTES = 32 << 20  # a piece of a large file: big enough to amortize a job, small enough to balance
SCAN_BYTES = 1 << 20  # the smallest piece of an output scanned by a worker
Record = tuple[int, int, bytes, int, str | None]  # interface, output time, output bytes, wire length, label


@dataclass(frozen=True, slots=True)
class KeySpec:
    """How a worker gets the key: from the key file at `path` (checked against `fingerprint`), or,
    for a one-time key and local workers only, `secret` itself."""

    fingerprint: str
    path: str | None = None
    secret: bytes | None = field(default=None, repr=False)

    def load(self) -> Key:
        if self.path is None:
            if self.secret is None:
                raise KeyError_("<worker>", "no key reached this worker")
            return Key(self.secret, one_time=True)
        key = read_key_file(Path(self.path))
        if key.fingerprint != self.fingerprint:
            raise KeyError_(self.path, f"on this worker the key file holds key {key.fingerprint}, "
                            f"not {self.fingerprint}", "every worker must read the same key file")
        return key


@dataclass(frozen=True, slots=True)
class Setup:
    """What every job of a run shares."""

    run: str  # names the run, so a worker builds its transforms once per run
    rules: Rules
    key: KeySpec
    known: tuple[bytes, ...] = ()
    truth: GroundTruth | None = None


@dataclass(frozen=True, slots=True)
class Job:
    """One file (`chunk` None: read whole, compressed or small) or one piece of one."""

    task: int
    source: str
    chunk: Chunk | None
    setup: Setup
    states: tuple[TimingState, ...] = ()  # each `timing` step's state where the piece starts

    @property
    def last(self) -> bool:
        return self.chunk is None or self.chunk.end is None

    def describe(self) -> str:
        return self.chunk.describe() if self.chunk is not None else f"{self.source} (the whole file)"


@dataclass(frozen=True, slots=True)
class ScanJob:
    """The residual scan of one piece of a staged output, for the identifiers `collector` saw."""

    chunk: Chunk
    collector: IdentifierCollector
    keep_names: bool
    setup: Setup

    def describe(self) -> str:
        return f"the residual scan of {self.chunk.describe()}"


AnyJob = Job | ScanJob


@dataclass(slots=True)
class Piece:
    """What a worker sends back for a job."""

    records: list[Record]
    interfaces: list[Interface]
    stats: RunStats
    builder: ReportBuilder
    recorder: LabelRecorder
    truth_counts: list[int] | None
    mapped: tuple[list[bytes], list[bytes]]  # addresses and MACs this worker mapped first in this job
    digest: tuple[str, int] | None  # the input's, for a whole-file job


class _Records:
    """The pipeline's writer in a worker: keeps the output records for the main process to write."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def write(self, index: int, interface: Interface, ts_ns: int, data: bytes | bytearray,
              wirelen: int, comment: str | None = None) -> None:
        self.records.append((index, ts_ns, bytes(data), wirelen, comment))

    def finish(self, interfaces: list[Interface]) -> None:
        pass


_BUILT: dict[str, list[Transform]] = {}  # per worker process: the transforms of the current run


def _transforms(setup: Setup) -> list[Transform]:
    found = _BUILT.get(setup.run)
    if found is None:
        _BUILT.clear()  # a Dask worker serves run after run: keep only the current one
        found = _BUILT[setup.run] = setup.rules.build(setup.key.load())
    return found


def work(job: Job | ScanJob) -> Piece | Section:
    """Run one job in a worker: a scrub, or a residual scan."""
    if isinstance(job, ScanJob):
        ips, macs = _mappers(_transforms(job.setup))  # what the rules keep: the same key, the same answer
        return scan_frames(open_chunk(job.chunk), job.collector, kept_by_mappers(ips, macs),
                           keep_names=job.keep_names)
    return scrub_piece(job)


def scrub_piece(job: Job) -> Piece:
    """Scrub one job: the pipeline over its frames, with fresh observers."""
    transforms = _transforms(job.setup)
    ips, macs = _mappers(transforms)
    before = (len(ips.lookup()), len(macs.lookup()))
    truth = job.setup.truth.fresh() if job.setup.truth is not None else None  # counts this job only
    builder = ReportBuilder(pair=True, known=list(job.setup.known) or None, names=names_config(transforms))
    recorder = LabelRecorder(None)
    sink = _Records()
    reader = open_chunk(job.chunk) if job.chunk is not None else open_reader(job.source)
    try:
        for transform in transforms:
            transform.reset()
        for timing, state in zip(_timings(transforms), job.states, strict=True):
            timing.restore(state)
        stats = run(reader, sink, transforms, None, Labeling(job.setup.rules.labels, truth),
                    [*builder.observers, recorder], reset=False)
        digest = reader.stream.digest() if job.chunk is None else None
    finally:
        reader.stream.close()
    mapped = (list(itertools.islice(ips.lookup(), before[0], None)),
              list(itertools.islice(macs.lookup(), before[1], None)))
    return Piece(sink.records, list(reader.interfaces), stats, builder, recorder,
                 truth.counts if truth is not None else None, mapped, digest)


def _timings(transforms: list[Transform]) -> list[Timing]:
    return [t for t in transforms if isinstance(t, Timing)]


def _mappers(transforms: list[Transform]) -> tuple[Any, Any]:
    ips = next(t for t in transforms if isinstance(t, Ip)).mapper
    macs = next(t for t in transforms if isinstance(t, Mac)).mapper
    return ips, macs


# ------------------------------------------------------------------------------------------
# Backends: where jobs run


class Backend(Protocol):
    def submit(self, number: int, job: Job | ScanJob) -> None: ...

    def result(self, number: int) -> Any: ...

    def close(self) -> None: ...


# ------------------------------------------------------------------------------------------
# A run: jobs in file order, results taken in the same order


@dataclass(slots=True)
class _Task:
    number: int
    source: str
    digest: Digest | None = None  # for a split file, filled by the walk that splits it


class Session:
    """Feeds a backend the jobs of every task in order, keeping at most `window` in flight, and
    hands each task's pieces back in order, merged (see `run`)."""

    def __init__(self, backend: Backend, sources: list[str], setup: Setup, chunk_bytes: int,
                 window: int, timings: Sequence[Timing] = (), shared_files: bool = True) -> None:
        self._backend = backend
        self._chunk_bytes = chunk_bytes
        self._shared_files = shared_files  # whether workers can read this process's staged files
        self._setup = setup
        self._timings = list(timings)  # this process's own `timing` steps, walked along the files
        self._tasks = [_Task(number, source) for number, source in enumerate(sources)]
        self._jobs = self._all_jobs(chunk_bytes)
        self._window = window
        self._queue: deque[tuple[int, Job]] = deque()
        self._numbers = itertools.count()
        self.mapped: tuple[set[bytes], set[bytes]] = (set(), set())

    def _all_jobs(self, chunk_bytes: int) -> Iterator[Job]:
        for task in self._tasks:
            source = task.source
            if self._timings:  # every file is walked, for its frames' times
                yield from self._timed_jobs(task, chunk_bytes)
            elif jobs_for(source, chunk_bytes) > 1:
                task.digest = Digest()
                for chunk in chunks(source, chunk_bytes, task.digest):
                    yield Job(task.number, source, chunk, self._setup)
            else:
                yield Job(task.number, source, None, self._setup)

    def _timed_jobs(self, task: _Task, chunk_bytes: int) -> Iterator[Job]:
        """The pieces of a file with the state each `timing` step has where the piece starts:
        this process runs the steps over the frames' times alone (as one process would, a new
        file restarting the order state), the workers the whole frames."""
        for timing in self._timings:
            timing.reset()
        task.digest, clock = Digest(), list[int]()
        for chunk in chunks(task.source, chunk_bytes, task.digest, clock):
            states = tuple(timing.state() for timing in self._timings)
            yield Job(task.number, task.source, chunk, self._setup, states)
            times = clock[:chunk.frames] if chunk.frames is not None else clock
            for timing in self._timings:
                timing.advance(chunk.first, times)
            del clock[:len(times)]

    def _fill(self) -> None:
        while len(self._queue) < self._window:
            job = next(self._jobs, None)
            if job is None:
                return
            number = next(self._numbers)
            self._backend.submit(number, job)
            self._queue.append((number, job))

    def pieces(self, task: int) -> Iterator[tuple[Job, Piece]]:
        """The pieces of task `task`, in order (the tasks must be asked for in order)."""
        while True:
            self._fill()
            number, job = self._queue.popleft()
            if job.task != task:
                raise RuntimeError(f"jobs of task {job.task} came before those of task {task}")
            piece = self._backend.result(number)
            self._fill()
            yield job, piece
            if job.last:
                return

    def run(self, task: int, writer: Any, builder: ReportBuilder, recorder: LabelRecorder,
            truth: GroundTruth | None,
            progress: Callable[[int], None] | None) -> tuple[RunStats, tuple[str, int]]:
        """Write task `task`'s output records with `writer` and merge its pieces' observers into
        `builder` and `recorder` (and their ground-truth counts into `truth`), as one run would."""
        stats = RunStats()
        started = time.perf_counter()
        interfaces: list[Interface] = []
        digest: tuple[str, int] | None = None
        for job, piece in self.pieces(task):
            interfaces = piece.interfaces
            for iface, ts_ns, data, wirelen, comment in piece.records:
                writer.write(iface, interfaces[iface], ts_ns, data, wirelen, comment)
            stats.merge(piece.stats)
            builder.merge(piece.builder)
            recorder.merge(piece.recorder)
            if truth is not None and piece.truth_counts is not None:
                truth.add_counts(piece.truth_counts)
            self.mapped[0].update(piece.mapped[0])
            self.mapped[1].update(piece.mapped[1])
            digest = piece.digest
            if progress is not None:
                progress(job.chunk.end if job.chunk is not None and job.chunk.end is not None
                         else split_size(job.source))
        writer.finish(interfaces)
        stats.seconds = time.perf_counter() - started
        found = self._tasks[task].digest
        if found is not None:
            digest = found.hexdigest()
        assert digest is not None
        return stats, digest

    def scan(self, path: str, collector: IdentifierCollector, kept: Callable[[bytes], bool],
             keep_names: bool) -> Section | None:
        """The residual scan of the staged output at `path`: its frames piece by piece in the
        workers (each works out what the rules keep from its own mappings), its metadata here.
        None where the workers cannot read it (Dask workers elsewhere, a compressed output)."""
        if not self._shared_files or not splittable(path):
            return None
        target = min(self._chunk_bytes, max(SCAN_BYTES, split_size(path) // (2 * self._window) + 1))
        numbers = []
        for chunk in chunks(path, target):
            number = next(self._numbers)
            self._backend.submit(number, ScanJob(chunk, collector, keep_names, self._setup))
            numbers.append(number)
        found: Section = scan_metadata(path, collector, kept, keep_names=keep_names)
        sections = [self._backend.result(number) for number in numbers]
        for section in reversed(sections):
            found = merge_residual(section, found)
        return found

    def stats(self) -> dict[str, int]:
        """The run-wide figures the transforms would give in one process."""
        return {"distinct addresses mapped": len(self.mapped[0]), "distinct MACs mapped": len(self.mapped[1])}


@dataclass(frozen=True, slots=True)
class Engine:
    """How a scrub runs: `workers` local processes (1: in this process), or a Dask cluster
    (`dask`; at `scheduler`, or a local cluster of `workers` processes)."""

    workers: int = 1
    dask: bool = False
    scheduler: str | None = None
    chunk_bytes: int = CHUNK_BYTES
    timeout: float = 10.0  # seconds to reach a Dask scheduler

    @property
    def parallel(self) -> bool:
        return self.dask or self.workers > 1

    def describe(self) -> str:
        if self.dask:
            return f"dask ({self.scheduler or f'local cluster of {self.workers} workers'})"
        return f"{self.workers} worker processes" if self.workers > 1 else "this process"

    def backend(self) -> Backend:
        if self.dask:
            from anontrace.dask_engine import DaskBackend  # Dask is imported only when asked for
            return DaskBackend(self.scheduler, self.workers, self.timeout)
        return LocalPool(self.workers, work, "anontrace.parallel")


def why_sequential(transforms: list[Transform], sources: list[str]) -> str | None:
    """Why a run must go frame after frame in this process (None: it may be spread out). A
    `timing` step's state is carried from piece to piece by walking the files' record times, so
    it needs files that can be walked; a stateful step under `when:` cannot be carried at all."""
    if "-" in sources:
        return "the input is stdin"
    stateful = sorted({inner.name for t in transforms if t.carries_state and not isinstance(t, Timing)
                       for inner in (t.steps() if isinstance(t, Scoped) else [t]) if inner.carries_state})
    if stateful:
        return f"the {', '.join(stateful)} step (under `when:`) carries state from frame to frame"
    if _timings(transforms) and not all(splittable(source) for source in sources):
        return "the timing step carries state from frame to frame, and compressed inputs cannot be walked"
    return None


def jobs_for(source: str, chunk_bytes: int) -> int:
    """1 for a file read whole by one job, 2 or more (not counted exactly) for one split."""
    return 2 if splittable(source) and split_size(source) > chunk_bytes else 1


def default_workers() -> int:
    """The machine's cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def new_run() -> str:
    return uuid.uuid4().hex
