"""Run one capture through the transforms: read, dissect, cut, transform, fix up, write; count all."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Protocol

import numpy as np

from anontrace.io.capture import Reader
from anontrace.packet.batch import HELD, Batch
from anontrace.packet.checksum import fix_checksums
from anontrace.packet.dissect import dissect
from anontrace.packet.fast import dissect_common
from anontrace.packet.frame import Frame, Interface
from anontrace.packet.table import Table
from anontrace.transforms.base import Transform

BATCH_FRAMES = 4096


class Sink(Protocol):
    """Where output frames go: a capture writer (`io.capture.Writer`), or a worker's record list."""

    def write(self, index: int, interface: Interface, ts_ns: int, data: bytes | bytearray,
              wirelen: int, comment: str | None = None) -> None: ...

    def finish(self, interfaces: list[Interface]) -> None: ...


class Labeler(Protocol):
    """Gives each frame of a batch its label (or None), judged on the ORIGINAL frame."""

    def label(self, batch: Batch) -> list[str | None]: ...


class Observer(Protocol):
    """Sees every batch once it is final and before it is written: `batch.frames` and
    `batch.layers` are the ORIGINAL frames and their dissection, `batch.data` and `batch.ts_ns`
    the output (checksums fixed; the layers' offsets hold in it up to its length), and
    `batch.dropped` the frames left out. `labels` has one entry per frame."""

    def observe(self, batch: Batch, labels: Sequence[str | None]) -> None: ...


@dataclass(slots=True)
class RunStats:
    """Everything a run counts; `frames_in == frames_out + sum(dropped.values())` always."""

    frames_in: int = 0
    frames_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    cut: Counter[str] = field(default_factory=Counter)  # frames cut where the dissector stopped
    counts: Counter[str] = field(default_factory=Counter)  # what the transforms did
    notices: Counter[str] = field(default_factory=Counter)  # what the reader left out or noticed
    seconds: float = 0.0

    def merge(self, other: RunStats) -> None:
        for name in ("frames_in", "frames_out", "bytes_in", "bytes_out", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("dropped", "cut", "counts", "notices"):
            getattr(self, name).update(getattr(other, name))


def batches(frames: Iterator[Frame], size: int) -> Iterator[list[Frame]]:
    while chunk := list(islice(frames, size)):
        yield chunk


def prepare(frames: list[Frame], stats: RunStats, vectorized: bool = True, columns: bool = False) -> Batch:
    """Dissect each frame and start its output from the bytes understood, never more. The
    common frames are dissected from numpy columns of the whole batch (`vectorized`), the others
    one by one; the layers are the same either way. With `columns`, the common frames' output
    is held in the batch's table (see `packet.table`) for transforms that rewrite columns."""
    common = None
    if vectorized:
        layers, common = dissect_common(frames)
    else:
        layers = [dissect(f.data, f.linktype) for f in frames]
    table = Table.of(common) if columns and common is not None else None
    held = [False] * len(frames)
    for position in table.positions.tolist() if table is not None else ():
        held[position] = True
    data = []
    rest = []
    cut = stats.cut
    for position, (frame, found, in_table) in enumerate(zip(frames, layers, held, strict=True)):
        if found.cut is not None:
            cut[found.cut] += 1
        if in_table:
            data.append(HELD)
            continue
        rest.append(position)
        out = bytearray(frame.data)
        if found.cut is not None:
            del out[found.parsed_to:]
        data.append(out)
    return Batch(frames, layers, data, [f.ts_ns for f in frames], table=table, rest=rest)


def fix_batch_checksums(batch: Batch) -> None:
    """Fold every frame's changes into its checksums (dropped frames are left as they are)."""
    dropped = batch.dropped
    if batch.table is not None:
        skip = np.fromiter((p in dropped for p in batch.table.positions.tolist()), np.bool_,
                           len(batch.table))
        batch.table.fix_checksums(skip)
    for position, frame, found, out in batch.others():
        if position not in dropped:
            fix_checksums(frame.data, out, found.checksums)


def run(reader: Reader, writer: Sink, transforms: list[Transform],
        progress: Callable[[int], None] | None = None, labeler: Labeler | None = None,
        observers: Sequence[Observer] = (), vectorized: bool = True, reset: bool = True) -> RunStats:
    """Stream every frame of `reader` through `transforms` into `writer`; `labeler` labels frames
    (the label becomes a pcapng frame comment) and `observers` see each finished batch.
    `vectorized` False takes the frame-by-frame path for every frame (the output is the same);
    with it, when every transform rewrites columns (`Transform.columnar`), so do they;
    `reset` False keeps the transforms' state (a worker restored it for a piece of a file)."""
    stats = RunStats()
    started = time.perf_counter()
    interfaces = reader.interfaces
    for transform in transforms if reset else ():
        transform.reset()
    columns = vectorized and all(transform.columnar for transform in transforms)
    for frames in batches(iter(reader), BATCH_FRAMES):
        batch = prepare(frames, stats, vectorized, columns)
        for transform in transforms:
            batch = transform.apply(batch)
        labels: list[str | None] = labeler.label(batch) if labeler is not None else [None] * len(frames)
        fix_batch_checksums(batch)
        dropped = batch.dropped
        for observer in observers:
            observer.observe(batch, labels)
        for position, (frame, out) in enumerate(zip(frames, batch.data, strict=True)):
            stats.bytes_in += len(frame.data)
            reason = dropped.get(position)
            if reason is not None:
                stats.dropped[reason] += 1
                continue
            writer.write(frame.iface, interfaces[frame.iface], batch.ts_ns[position], out,
                         frame.wirelen, labels[position])
            stats.bytes_out += len(out)
        stats.frames_in += len(frames)
        stats.frames_out += len(frames) - len(dropped)
        stats.counts.update(batch.counts)
        stats.cut.update(batch.cut)
        if progress is not None:
            progress(reader.stream.raw_position())
    writer.finish(interfaces)
    stats.notices.update(reader.notices)
    stats.seconds = time.perf_counter() - started
    return stats
