"""A capture observed in consecutive pieces, as `scrub --workers` does it: each piece runs through
the pipeline with fresh observers, which are pickled and unpickled (as from a worker process) and
merged in order into the first piece's; and the same capture observed in one run, to compare."""

from __future__ import annotations

import io
import pickle
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet
from scapy.utils import EDecimal

from anontrace import pipeline
from anontrace.io.capture import Reader, make_writer, open_reader
from anontrace.keys import Key
from anontrace.labels import GroundTruth, Labeling, LabelRecorder
from anontrace.leakage.report import ReportBuilder, names_config
from anontrace.leakage.residual import kept_by_mappers
from anontrace.packet.batch import Batch
from anontrace.packet.frame import Frame, Interface
from anontrace.rules.compile import Rules, parse_rules
from anontrace.transforms.base import Context, Transform
from anontrace.transforms.ip import Ip
from anontrace.transforms.mac import Mac

KEY = Key(bytes(range(32)))
CREATED = "2024-01-02T03:04:05Z"
RULES = """version: 1
extends: default
labels:
  - when: {protocol: tcp, port: 443}
    label: web
  - when: {protocol: udp}
    label: datagram
  - when: {protocol: icmp}
    label: ping
"""
TRUTH = ("label,src,dst,sport,dport,protocol,start,end\n"
         "truth dns,,,,53,udp,,\n"
         "truth early,,,,,tcp,0,1700000000.5\n"
         "truth nothing,192.0.2.254,198.51.100.254,,,,,\n"
         "truth ipv6,::/0,,,,,,\n")


class DropSome(Transform):
    """Test transform: leaves out one frame in 50 (by its index in the capture)."""

    name = "drop_some"

    def apply(self, batch: Batch) -> Batch:
        for position, frame in enumerate(batch.frames):
            if frame.index % 50 == 13:
                batch.drop(position, "one in 50")
        return batch


class Jitter(Transform):
    """Test transform: moves each output time by a few microseconds, a function of the frame index
    alone, so that output intervals differ from the original ones."""

    name = "jitter"

    def apply(self, batch: Batch) -> Batch:
        for position, frame in enumerate(batch.frames):
            batch.ts_ns[position] += (frame.index * 7919) % 5000
        return batch


@dataclass
class Setup:
    """What every run of a comparison shares: rules, transforms (built once, as a run builds them
    once for all its workers) and the ground truth read from `TRUTH`."""

    rules: Rules
    transforms: list[Transform]
    truth_path: Path

    @classmethod
    def make(cls, folder: Path) -> Setup:
        rules = parse_rules(RULES, "pieces.yaml")
        context = Context(KEY)
        transforms = [*rules.build(KEY), DropSome(None, context), Jitter(None, context)]
        path = folder / "truth.csv"
        path.write_text(TRUTH)
        return cls(rules, transforms, path)

    def builder(self, main: bool) -> ReportBuilder:
        """The first piece's builder knows which identifiers the rules keep; a worker's does not."""
        kept = None
        if main:
            ips = next(t for t in self.transforms if isinstance(t, Ip)).mapper
            macs = next(t for t in self.transforms if isinstance(t, Mac)).mapper
            kept = kept_by_mappers(ips, macs)
        return ReportBuilder(pair=True, kept=kept, names=names_config(self.transforms))


@dataclass
class Observed:
    """What a run leaves behind for the comparison."""

    report: dict[str, Any]
    labels_csv: str
    flows_csv: str
    unmatched: list[int]
    label_counts: list[tuple[str, int]]


class _Stream:
    def raw_position(self) -> int:
        return 0


class PieceReader:
    """The shape of `io.capture.Reader` the pipeline uses, over frames already read."""

    def __init__(self, frames: Sequence[Frame], interfaces: list[Interface]) -> None:
        self.frames = frames
        self.interfaces = interfaces
        self.notices: Counter[str] = Counter()
        self.stream = _Stream()

    def __iter__(self) -> Iterator[Frame]:
        return iter(self.frames)


class NullWriter:
    def write(self, *args: object) -> None:
        pass

    def finish(self, interfaces: object) -> None:
        pass


def read_all(path: Path) -> tuple[list[Frame], list[Interface]]:
    reader = open_reader(str(path))
    try:
        return list(reader), list(reader.interfaces)
    finally:
        reader.stream.close()


def whole(setup: Setup, source: Path, output: Path) -> Observed:
    """One run over the whole capture, its output written to `output` (for the residual scan)."""
    reader: Reader = open_reader(str(source))
    builder, truth, labels = setup.builder(True), GroundTruth.read(setup.truth_path), io.StringIO()
    recorder = LabelRecorder(labels)
    try:
        with output.open("wb") as stream:
            writer = make_writer(stream, str(output), reader.format, reader)
            pipeline.run(reader, writer, setup.transforms, labeler=Labeling(setup.rules.labels, truth),
                         observers=[*builder.observers, recorder])
    finally:
        reader.stream.close()
    return _observed(builder, recorder, truth, labels, output)


@dataclass
class _Piece:
    builder: ReportBuilder
    recorder: LabelRecorder
    truth: GroundTruth


def _run_piece(setup: Setup, frames: Sequence[Frame], interfaces: list[Interface], main: bool,
               truth: GroundTruth, labels: io.StringIO | None) -> _Piece:
    builder = setup.builder(main)
    recorder = LabelRecorder(labels)
    pipeline.run(PieceReader(frames, interfaces), NullWriter(), setup.transforms,  # type: ignore[arg-type]
                 labeler=Labeling(setup.rules.labels, truth), observers=[*builder.observers, recorder])
    piece = _Piece(builder, recorder, truth)
    return piece if main else pickle.loads(pickle.dumps(piece))  # as a worker sends it back


def in_pieces(setup: Setup, frames: list[Frame], interfaces: list[Interface], splits: Sequence[int],
              scan: Path, order: Sequence[int] | None = None) -> Observed:
    """The capture's frames cut at `splits`, each piece observed apart, merged in `order` (by
    default the pieces' own) into the observers of the first one merged; `scan` is the output
    file the residual scan reads (the whole run's: the pieces write nothing)."""
    bounds = [0, *splits, len(frames)]
    order = list(order) if order is not None else list(range(len(bounds) - 1))
    truth, labels = GroundTruth.read(setup.truth_path), io.StringIO()
    pieces = {number: _run_piece(setup, frames[bounds[number]:bounds[number + 1]], interfaces,
                                 number == order[0], truth if number == order[0] else truth.fresh(),
                                 labels if number == order[0] else None)
              for number in order}
    first = pieces[order[0]]
    for number in order[1:]:
        first.builder.merge(pieces[number].builder)
        first.recorder.merge(pieces[number].recorder)
        truth.merge(pieces[number].truth)
    return _observed(first.builder, first.recorder, truth, labels, scan)


def _observed(builder: ReportBuilder, recorder: LabelRecorder, truth: GroundTruth, labels: io.StringIO,
              scan: Path) -> Observed:
    report = builder.finish(anonymized="out", scan_path=str(scan), original="in", created=CREATED,
                            texts={"labels": list(recorder.counts)})
    flows = io.StringIO()
    recorder.write_flows(flows)
    return Observed(report, labels.getvalue(), flows.getvalue(), truth.unmatched(),
                    list(recorder.counts.items()))


SECOND = 1_000_000_000
SWEEPER, SENSOR, SINK, TIMED = "10.0.0.66", "10.0.0.88", "10.0.0.99", "10.0.0.77"
CLIENT, SERVER, OTHER_CLIENT, OTHER_SERVER = "10.0.0.50", "10.0.0.53", "10.0.1.50", "10.0.1.53"


def tricky_packets() -> list[Packet]:
    """Two minutes of traffic whose measures depend on what came before, in time order: a DNS
    exchange whose reply comes 60 s after its query, and another one at once (so both servers
    serve the same port, unless a piece starting at the late reply took the client for a server);
    a host replying to 10.9.0.7 before it sweeps 40 other hosts (so a piece starting at the reply
    would see a contact that is none); a sensor reporting every 2 s; a host's TCP clock sampled
    every 4 s, its TSval wrapping past 2**32."""
    ether = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    timed: list[tuple[int, Packet]] = [
        (0, ether / IP(src=CLIENT, dst=SERVER) / UDP(sport=40000, dport=53)),
        (60 * SECOND, ether / IP(src=SERVER, dst=CLIENT) / UDP(sport=53, dport=40000)),
        (61 * SECOND, ether / IP(src=OTHER_CLIENT, dst=OTHER_SERVER) / UDP(sport=40001, dport=53)),
        (61 * SECOND + 1, ether / IP(src=OTHER_SERVER, dst=OTHER_CLIENT) / UDP(sport=53, dport=40001)),
        (1 * SECOND, ether / IP(src="10.9.0.7", dst=SWEEPER) / UDP(sport=161, dport=5000)),
        (70 * SECOND, ether / IP(src=SWEEPER, dst="10.9.0.7") / UDP(sport=5000, dport=161)),
    ]
    targets = [f"10.9.0.{n}" for n in range(1, 42) if n != 7]
    timed += [(71 * SECOND + n * SECOND // 10, ether / IP(src=SWEEPER, dst=target) / ICMP())
              for n, target in enumerate(targets)]
    timed += [(2 * SECOND * n + 500 * n, ether / IP(src=SENSOR, dst=SINK) / UDP(sport=7000, dport=5683))
              for n in range(20)]
    start = (1 << 32) - 30_000  # ticks at 1 kHz, 250 ppm fast: the TSval wraps after 30 s
    timed += [(4 * SECOND * n + SECOND // 3, ether / IP(src=TIMED, dst=SERVER)
               / TCP(sport=45000, dport=443, flags="A", options=[("NOP", None), ("NOP", None),
                     ("Timestamp", ((start + n * 4001) % (1 << 32), 0))]))
              for n in range(30)]
    timed.sort(key=lambda item: item[0])
    for ts_ns, packet in timed:
        packet.time = EDecimal(Decimal(1_700_000_000) + Decimal(ts_ns) / 10**9)
    return [packet for _, packet in timed]


def split_plans(count: int, seed: int, single_frames_up_to: int = 60) -> dict[str, list[int]]:
    """Where to cut a capture of `count` frames: after its first frame, before its last, every
    1000 frames, at a few seeded random points, and (for a small capture) after every frame."""
    plans: dict[str, list[int]] = {}
    if count >= 2:
        plans["after the first"] = [1]
        plans["before the last"] = [count - 1]
        chosen = random.Random(seed).sample(range(1, count), min(4, count - 1))
        plans["random"] = sorted(chosen)
    if count > 1000:
        plans["every 1000"] = list(range(1000, count, 1000))
    if 2 <= count <= single_frames_up_to:
        plans["every frame"] = list(range(1, count))
    return plans
