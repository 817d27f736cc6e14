"""The leakage report: one pass of observers over (original, output) frame pairs, then the
residual scan of the output file, assembled into the versioned JSON the renderers and gates read.

Two ways in, one way through. `scrub` feeds the observers from its own pipeline, where every
output frame sits beside the frame it came from. `anontrace report ORIGINAL ANONYMIZED` rebuilds
those pairs by reading both captures side by side (`pair_batches`), refusing captures whose
frames do not correspond; `anontrace report ANONYMIZED` feeds the anonymized frames as their own
originals and leaves every figure that needs the original empty (null).
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import ne
from typing import Any

import numpy as np

from anontrace import __version__
from anontrace.errors import TraceFormatError
from anontrace.flows import original_frames, written
from anontrace.io.capture import open_reader
from anontrace.leakage.gates import Gate, evaluate
from anontrace.leakage.residual import IdentifierCollector, Section, merge_residual, scan, scan_texts
from anontrace.leakage.risk import RiskCollector
from anontrace.leakage.utility import UtilityCollector
from anontrace.packet.batch import Batch
from anontrace.packet.dissect import dissect
from anontrace.packet.frame import Frame
from anontrace.packet.layers import Layers
from anontrace.pipeline import BATCH_FRAMES, Observer
from anontrace.transforms.names import Names, NamesConfig

FORMAT, VERSION = "anontrace-report", 1
NOT_IN_OUTPUT = "not in the anonymized trace"
MAX_UNMATCHED_FRACTION = 0.5  # more originals than this without a counterpart: not the same capture
MIN_UNMATCHED = 3  # ... unless there are very few (a rule may drop a frame or two of a tiny capture)
# The payload transform counts the frames it cut short among its counts, not among the cuts by
# reason (a cut to the kept length is what it is for, not a failure to understand the frame).
PAYLOAD_CUTS, PAYLOAD_REASON = "payloads cut", "payload"


@dataclass(slots=True)
class Coverage:
    """What happened to each frame: transformed, cut (by the dissector, which stops where it
    understands no more, or by a rule), dropped."""

    frames_in: int = 0
    frames_out: int = 0
    frames_transformed: int = 0
    frames_cut: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    cut_by_dissector: Counter[str] = field(default_factory=Counter)
    cut_by_rules: Counter[str] = field(default_factory=Counter)

    def observe(self, batch: Batch, labels: Sequence[str | None]) -> None:
        dropped, originals = batch.dropped, original_frames(batch)
        self.frames_in += len(batch)
        self.frames_out += len(batch) - len(dropped)
        self.dropped.update(dropped[position] for position in sorted(dropped))  # frame order breaks ties
        kept = written(batch)
        shorter = kept & (np.fromiter(map(len, batch.data), np.int64, len(batch)) < originals.lengths)
        cut = np.flatnonzero(shorter).tolist()
        self.frames_cut += len(cut)
        reasons = (batch.layers[position].cut for position in cut)
        self.cut_by_dissector.update(reason for reason in reasons if reason is not None)
        changed = np.fromiter(map(ne, batch.data, originals.data), np.bool_, len(batch))
        self.frames_transformed += int(np.count_nonzero(changed & kept))
        self.cut_by_rules.update(batch.cut)
        if batch.counts[PAYLOAD_CUTS]:
            self.cut_by_rules[PAYLOAD_REASON] += batch.counts[PAYLOAD_CUTS]

    def merge(self, later: Coverage) -> None:
        """Take in what `later` counted over the frames right after these."""
        for name in ("frames_in", "frames_out", "frames_transformed", "frames_cut"):
            setattr(self, name, getattr(self, name) + getattr(later, name))
        for name in ("dropped", "cut_by_dissector", "cut_by_rules"):
            getattr(self, name).update(getattr(later, name))  # new reasons after, in later's order

    def result(self) -> dict[str, Any]:
        return {"frames_in": self.frames_in, "frames_out": self.frames_out,
                "frames_transformed": self.frames_transformed, "frames_cut": self.frames_cut,
                "frames_dropped": sum(self.dropped.values()),
                "cut_by_dissector": dict(self.cut_by_dissector.most_common()),
                "cut_by_rules": dict(self.cut_by_rules.most_common()),
                "dropped": dict(self.dropped.most_common())}


class ReportBuilder:
    """The observers of one report, and the assembly of their sections.

    Consecutive pieces of a capture may be observed apart (each by a builder made with the same
    arguments, in a worker process) and merged in order: a builder pickles when `kept` is None
    (a worker needs no `kept`: only `finish` reads it)."""

    def __init__(self, pair: bool, kept: Callable[[bytes], bool] | None = None,
                 known: list[bytes] | None = None, names: NamesConfig | None = None) -> None:
        self.pair = pair
        self.kept = kept
        self.keep_names = names is not None and names.policy == "keep"
        self.coverage = Coverage()
        self.identifiers = IdentifierCollector(names) if pair else None
        self.risk = RiskCollector(pair, known=known)
        self.utility = UtilityCollector(pair)

    @property
    def observers(self) -> list[Observer]:
        found: list[Observer] = [self.coverage, self.risk, self.utility]
        return [self.identifiers, *found] if self.identifiers is not None else found

    def merge(self, later: ReportBuilder) -> None:
        """Take in what `later` observed of the frames right after these: afterwards this builder
        reports (and goes on) as one builder that had observed both."""
        self.coverage.merge(later.coverage)
        if self.identifiers is not None and later.identifiers is not None:
            self.identifiers.merge(later.identifiers)
        self.risk.merge(later.risk)
        self.utility.merge(later.utility)

    def finish(self, *, anonymized: str, scan_path: str | None = None, original: str | None = None,
               rules: str | None = None, key_fingerprint: str | None = None,
               gates: Sequence[Gate] = (), created: str | None = None,
               texts: Mapping[str, Iterable[str]] | None = None,
               scanned: Section | None = None) -> dict[str, Any]:
        """The report. `scan_path` is where the anonymized capture can be read now (a staged file
        not yet published under `anonymized`); findings name `anonymized`. `texts` are other
        texts that travel with the trace (the labels), searched too. `scanned` is the residual
        scan of the capture when it was made already (by workers, piece by piece)."""
        residual = None
        if self.identifiers is not None:
            residual = scanned if scanned is not None else \
                scan(scan_path or anonymized, self.identifiers, self.kept, keep_names=self.keep_names)
            for finding in residual["findings"]:
                finding["file"] = anonymized
            if texts:
                residual = merge_residual(residual, scan_texts(texts, self.identifiers, self.kept,
                                                               keep_names=self.keep_names))
        coverage = self.coverage.result()
        report: dict[str, Any] = {
            "format": FORMAT, "version": VERSION, "tool": f"anontrace {__version__}",
            "created": created or now(), "mode": "pair" if self.pair else "anonymized-only",
            "original": [{"path": original, "frames": coverage["frames_in"]}] if original else None,
            "anonymized": [{"path": anonymized, "frames": coverage["frames_out"]}],
            "rules": rules, "key_fingerprint": key_fingerprint,
            "residual": residual, "coverage": coverage,
            "risk": self.risk.result(), "utility": self.utility.result(),
        }
        report["gates"] = evaluate(report, list(gates))
        report["passed"] = all(g["passed"] for g in report["gates"])
        return report


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _kinds(layers: Layers, length: int) -> tuple[str, ...]:
    return tuple(h.kind for h in layers.headers if h.offset < length)


def _corresponds(original: Frame, found: Layers, anonymized: Frame, theirs: Layers) -> bool:
    """Could `anonymized` have been made from `original`? Same link type and length on the wire,
    no more bytes captured, and the same headers where both have them."""
    return (original.linktype == anonymized.linktype and original.wirelen == anonymized.wirelen
            and len(anonymized.data) <= len(original.data)
            and _kinds(found, len(anonymized.data)) == _kinds(theirs, len(anonymized.data)))


class _Pairs:
    """Original frames with their anonymized bytes and times, handed out a batch at a time."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.frames: list[Frame] = []
        self.layers: list[Layers] = []
        self.data: list[bytearray] = []
        self.times: list[int] = []
        self.dropped: dict[int, str] = {}

    def add(self, frame: Frame, found: Layers, theirs: Frame | None) -> None:
        if theirs is None:
            self.dropped[len(self.frames)] = NOT_IN_OUTPUT
        self.frames.append(frame)
        self.layers.append(found)
        self.data.append(bytearray(theirs.data) if theirs is not None else bytearray())
        self.times.append(theirs.ts_ns if theirs is not None else frame.ts_ns)

    def take(self, at_least: int) -> Iterator[Batch]:
        if self.frames and len(self.frames) >= at_least:
            yield Batch(self.frames, self.layers, self.data, self.times, self.dropped)
            self._reset()


def pair_batches(original: str, anonymized: str) -> Iterator[Batch]:
    """Batches of (original frame, anonymized bytes and time), matching each anonymized frame to
    the next original frame it could have come from; originals passed over are marked dropped.
    Raises TraceFormatError when the two captures do not correspond."""
    originals = open_reader(original)
    outputs = open_reader(anonymized)
    pairs = _Pairs()
    try:
        source = iter(originals)
        for theirs in outputs:
            their_layers = dissect(theirs.data, theirs.linktype)
            while True:
                frame = next(source, None)
                if frame is None:
                    raise TraceFormatError(f"{anonymized}: frame {theirs.index + 1}",
                                           f"has no counterpart in {original}: the two captures do "
                                           "not correspond", "give the capture this one was made from")
                found = dissect(frame.data, frame.linktype)
                if _corresponds(frame, found, theirs, their_layers):
                    pairs.add(frame, found, theirs)
                    break
                pairs.add(frame, found, None)
            yield from pairs.take(BATCH_FRAMES)
        for frame in source:
            pairs.add(frame, dissect(frame.data, frame.linktype), None)
            yield from pairs.take(BATCH_FRAMES)
        yield from pairs.take(1)
    finally:
        originals.stream.close()
        outputs.stream.close()


def solo_batches(anonymized: str) -> Iterator[Batch]:
    """Batches of the anonymized frames standing in for their own originals."""
    reader = open_reader(anonymized)
    frames: list[Frame] = []
    try:
        for frame in reader:
            frames.append(frame)
            if len(frames) >= BATCH_FRAMES:
                yield _solo(frames)
                frames = []
        if frames:
            yield _solo(frames)
    finally:
        reader.stream.close()


def _solo(frames: list[Frame]) -> Batch:
    return Batch(frames, [dissect(f.data, f.linktype) for f in frames],
                 [bytearray(f.data) for f in frames], [f.ts_ns for f in frames])


def names_config(transforms: Sequence[object]) -> NamesConfig | None:
    """The settings of a run's `names` transform (what it rewrites is what the report seeks)."""
    return next((t.config for t in transforms if isinstance(t, Names)), None)


def report_files(original: str | None, anonymized: str, *, kept: Callable[[bytes], bool] | None = None,
                 rules: str | None = None, key_fingerprint: str | None = None,
                 gates: Sequence[Gate] = (), known: list[bytes] | None = None,
                 names: NamesConfig | None = None) -> dict[str, Any]:
    """The report for a pair of captures (or for an anonymized capture alone)."""
    builder = ReportBuilder(original is not None, kept, known, names)
    batches = pair_batches(original, anonymized) if original is not None else solo_batches(anonymized)
    observers = builder.observers
    for batch in batches:
        labels: list[str | None] = [None] * len(batch)
        for observer in observers:
            observer.observe(batch, labels)
    coverage = builder.coverage
    unmatched = coverage.dropped[NOT_IN_OUTPUT]
    if original is not None and coverage.frames_in and (
            coverage.frames_out == 0 or (unmatched > MAX_UNMATCHED_FRACTION * coverage.frames_in
                                         and unmatched > MIN_UNMATCHED)):
        raise TraceFormatError(anonymized, f"only {coverage.frames_out} of {coverage.frames_in} frames "
                               f"of {original} have a counterpart: the two captures do not correspond",
                               "give the capture this one was made from")
    return builder.finish(anonymized=anonymized, original=original, rules=rules,
                          key_fingerprint=key_fingerprint, gates=gates)
