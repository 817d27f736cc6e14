"""Labels: rule-file label rules and imported ground truth, carried from the original frames to the
shareable trace.

A label is judged on the ORIGINAL frame, so a team can name "traffic of our database servers" by
their real networks without revealing which hosts those are. Ground truth the user already has
(a CSV in original terms) takes precedence over the rules. What the recipient gets is in output
terms: `<out>.labels.csv` numbers the frames as written and gives their output times, and
`<out>.flows.csv` lists flows by their anonymized 5-tuples.
"""

from __future__ import annotations

import csv
import difflib
import io
import ipaddress
import re
import stat
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TextIO

from anontrace.errors import EngineError, UsageError
from anontrace.flows import (
    PORTED,
    PROTOCOL_NUMBERS,
    FiveTuple,
    batch_times,
    original_keys,
    output_side,
    wire_lengths,
)
from anontrace.flowtable import FlowTable
from anontrace.packet.batch import Batch
from anontrace.packet.frame import NS_PER_SECOND
from anontrace.packet.layers import Layers
from anontrace.rules.filters import Filter

MAX_LABEL = 200
MAX_TRUTH_FILE = 64 << 20  # bytes of a ground-truth CSV read at most: far more than any labelling needs
BREAKS = frozenset({"Cc", "Zl", "Zp"})  # control characters (tab, CR, LF, ...), line and paragraph separators
COLUMNS = ("label", "src", "dst", "sport", "dport", "protocol", "start", "end")
MATCHING = COLUMNS[1:]
PROTOCOL_NAMES = {number: name for name, number in PROTOCOL_NUMBERS.items()}
PORTED_NUMBERS = frozenset(PROTOCOL_NUMBERS[name] for name in PORTED)
FLOW_COLUMNS = ("protocol", "src", "sport", "dst", "dport", "first", "last", "packets_fwd", "bytes_fwd",
                "packets_back", "bytes_back", "label")
CACHE_FLOWS = 1 << 16  # flows whose candidate rows are remembered; cleared when full
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DIGITS = re.compile(r"[0-9]+")
EPOCH_TIME = re.compile(r"([0-9]+)(?:\.([0-9]+))?")
RFC3339 = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
                     r"(?:\.([0-9]+))?([Zz]|[+-][0-9]{2}:[0-9]{2})")


def label_problem(text: str) -> str | None:
    """Why `text` cannot be a label (None when it can): labels end up in CSV cells and pcapng
    comments, one line each, read by people."""
    if not text.strip():
        return "a label is non-empty text"
    if any(unicodedata.category(character) in BREAKS for character in text):
        return "a label is one line: no line breaks or control characters"
    if len(text) > MAX_LABEL:
        return f"a label is at most {MAX_LABEL} characters, this one has {len(text)}"
    return None


@dataclass(frozen=True, slots=True)
class LabelRule:
    """`label` for frames `filter` matches; `where` is the rule's `file:line:col`."""

    filter: Filter
    label: str
    where: str


@dataclass(frozen=True, slots=True)
class LabelRules:
    """A rule file's `labels:`: the first matching rule's label, else `default` (None: unlabelled)."""

    rules: tuple[LabelRule, ...]
    default: str | None = None

    def label(self, data: bytes, layers: Layers) -> str | None:
        for rule in self.rules:
            if rule.filter.matches(data, layers):
                return rule.label
        return self.default


@dataclass(frozen=True, slots=True)
class Network:
    """An address or CIDR network as integers, so a frame's packed address is tested with one AND."""

    size: int  # bytes: 4 or 16
    value: int
    mask: int

    def holds(self, address: bytes, number: int) -> bool:
        return len(address) == self.size and number & self.mask == self.value

    @property
    def single(self) -> bool:
        return self.mask == (1 << 8 * self.size) - 1


@dataclass(frozen=True, slots=True)
class TruthRow:
    """One ground-truth row: `line` in the CSV, and the conditions it gives (None: any)."""

    line: int
    label: str
    src: Network | None = None
    dst: Network | None = None
    sport: int | None = None
    dport: int | None = None
    protocol: int | None = None
    start: int | None = None  # ns, inclusive
    end: int | None = None  # ns, inclusive

    def flow_matches(self, key: FiveTuple, source: int, destination: int) -> bool:
        """Whether the row names the flow of `key`, in either direction (times aside)."""
        if self.protocol is not None and key.protocol != self.protocol:
            return False
        return (self._ends(key.source, source, key.source_port, key.destination, destination,
                           key.destination_port)
                or self._ends(key.destination, destination, key.destination_port, key.source, source,
                              key.source_port))

    def _ends(self, a: bytes, a_number: int, a_port: int, b: bytes, b_number: int, b_port: int) -> bool:
        return ((self.src is None or self.src.holds(a, a_number))
                and (self.sport is None or self.sport == a_port)
                and (self.dst is None or self.dst.holds(b, b_number))
                and (self.dport is None or self.dport == b_port))

    def in_time(self, ts_ns: int) -> bool:
        return (self.start is None or ts_ns >= self.start) and (self.end is None or ts_ns <= self.end)


class GroundTruth:
    """Labels the user already has, in ORIGINAL terms, one CSV row per flow (or set of flows).

    A row names a flow: its src/sport and dst/dport match a frame in either direction, so the
    replies are labelled with it. The first matching row wins. `counts[i]` is how many frames row
    `i` labelled; `unmatched()` gives the rows that labelled none (they matched nothing, or only
    frames an earlier row had taken), so a mistyped row is reported, not silently ignored.
    """

    def __init__(self, rows: Sequence[TruthRow], source: str = "") -> None:
        self.rows = tuple(rows)
        self.source = source
        self.counts = [0] * len(self.rows)
        self._pairs: dict[tuple[bytes, bytes], list[int]] = {}
        self._general: list[int] = []
        for index, row in enumerate(self.rows):
            if row.src is not None and row.dst is not None and row.src.single and row.dst.single:
                ends = (row.src.value.to_bytes(row.src.size), row.dst.value.to_bytes(row.dst.size))
                self._pairs.setdefault((min(ends), max(ends)), []).append(index)
            else:
                self._general.append(index)
        self._candidates: dict[FiveTuple, tuple[int, ...]] = {}

    @classmethod
    def read(cls, path: str | Path) -> GroundTruth:
        """Read and check a ground-truth CSV; every problem is a `UsageError` at `path:line:column`."""
        return cls(_Parser(str(path)).rows(), str(path))

    def match(self, key: FiveTuple, ts_ns: int) -> str | None:
        """The label of the first row naming this frame's flow and time, counted for that row."""
        for index in self._candidates_for(key):
            row = self.rows[index]
            if row.in_time(ts_ns):
                self.counts[index] += 1
                return row.label
        return None

    def merge(self, later: GroundTruth) -> None:
        """Count the frames a copy of this ground truth (in a worker, over another piece of the
        capture, made by `fresh`) labelled."""
        self.add_counts(later.counts)

    def add_counts(self, counts: Sequence[int]) -> None:
        """Count frames labelled elsewhere, row by row (what a worker's copy sends back)."""
        self.counts = [mine + theirs for mine, theirs in zip(self.counts, counts, strict=True)]

    def fresh(self) -> GroundTruth:
        """The same rows with nothing counted yet: the copy a worker labels its piece with."""
        return GroundTruth(self.rows, self.source)

    def unmatched(self) -> list[int]:
        """Line numbers of the rows that labelled no frame."""
        return [row.line for row, count in zip(self.rows, self.counts, strict=True) if count == 0]

    def _candidates_for(self, key: FiveTuple) -> tuple[int, ...]:
        """The rows naming `key`'s flow, in file order (remembered per flow: most frames of a flow
        follow its first)."""
        canonical = key.canonical()
        found = self._candidates.get(canonical)
        if found is None:
            if len(self._candidates) >= CACHE_FLOWS:
                self._candidates.clear()
            ends = (key.source, key.destination)
            indexes = [*self._pairs.get((min(ends), max(ends)), ()), *self._general]
            source, destination = int.from_bytes(key.source), int.from_bytes(key.destination)
            found = tuple(sorted(i for i in indexes if self.rows[i].flow_matches(key, source, destination)))
            self._candidates[canonical] = found
        return found


class Labeling:
    """The pipeline's `Labeler`: per frame, the first matching ground-truth row's label, else the
    first matching label rule's, else the rules' default, else None. Judged on the ORIGINAL frame,
    frame by frame, so the result does not depend on how frames are batched. A frame the
    transforms dropped gets no label and counts for no ground-truth row: a row that named only
    dropped frames labelled nothing in the trace, and is reported as unmatched."""

    def __init__(self, rules: LabelRules | None, truth: GroundTruth | None) -> None:
        self.rules = rules
        self.truth = truth

    def label(self, batch: Batch) -> list[str | None]:
        labels: list[str | None] = []
        keys = original_keys(batch) if self.truth is not None else [None] * len(batch)
        for position, (frame, layers, key) in enumerate(zip(batch.frames, batch.layers, keys, strict=True)):
            found = None
            if position in batch.dropped:
                labels.append(None)
                continue
            if self.truth is not None and key is not None:
                found = self.truth.match(key, frame.ts_ns)
            if found is None and self.rules is not None:
                found = self.rules.label(frame.data, layers)
            labels.append(found)
        return labels


def seconds(ts_ns: int) -> str:
    """Integer nanoseconds as decimal seconds with 9 fractional digits (exact, no float)."""
    whole, fraction = divmod(abs(ts_ns), NS_PER_SECOND)
    return f"{'-' if ts_ns < 0 else ''}{whole}.{fraction:09d}"


class LabelRecorder:
    """The pipeline's `Observer` for labels: streams `frame,timestamp,label` rows for the labelled
    frames as written (1-based output frame number, output time) and tallies flows by their
    OUTPUT 5-tuples, each with the label of its first labelled frame.

    Without a stream (in a worker, over a piece of a capture: it cannot know how many frames the
    pieces before wrote) the rows are kept, numbered from the piece's first frame, until `merge`
    hands them to the recorder of the pieces before."""

    def __init__(self, stream: TextIO | None) -> None:
        self._rows = csv.writer(stream, lineterminator="\n") if stream is not None else None
        if self._rows is not None:
            self._rows.writerow(("frame", "timestamp", "label"))
        self.rows: list[tuple[int, str, str]] = []  # without a stream: (frame, timestamp, label)
        self.flows = FlowTable()
        self.counts: Counter[str] = Counter()
        self.frames = 0  # frames written so far

    def _row(self, number: int, timestamp: str, label: str) -> None:
        if self._rows is not None:
            self._rows.writerow((number, timestamp, label))
        else:
            self.rows.append((number, timestamp, label))

    def merge(self, later: LabelRecorder) -> None:
        """Take in what `later`, a recorder without a stream, saw of the frames right after these:
        its rows numbered on from the frames counted here (written to the stream, if any)."""
        if later._rows is not None:
            raise EngineError("labels", "a recorder that wrote its rows to a stream cannot follow another",
                              "record the later pieces without a stream")
        for number, timestamp, label in later.rows:
            self._row(self.frames + number, timestamp, label)
        self.frames += later.frames
        self.counts.update(later.counts)
        self.flows.merge(later.flows)

    def observe(self, batch: Batch, labels: Sequence[str | None]) -> None:
        labelled = any(label is not None for label in labels)
        self.flows.add_keys(output_side(batch), batch_times(batch)[1], wire_lengths(batch),
                            labels if labelled else None)
        dropped = batch.dropped
        if labelled:
            number = self.frames
            for position, label in enumerate(labels):
                if position in dropped:
                    continue
                number += 1
                if label is not None:
                    self.counts[label] += 1
                    self._row(number, seconds(batch.ts_ns[position]), label)
        self.frames += len(batch) - len(dropped)

    def write_flows(self, stream: TextIO) -> None:
        """`<out>.flows.csv`: one row per flow, in order of first appearance."""
        rows = csv.writer(stream, lineterminator="\n")
        rows.writerow(FLOW_COLUMNS)
        texts: dict[bytes, str] = {}  # each address is written by many flows: spelled once
        for flow in self.flows:
            key = flow.key
            source, destination = texts.get(key.source), texts.get(key.destination)
            if source is None:
                source = texts[key.source] = str(ipaddress.ip_address(key.source))
            if destination is None:
                destination = texts[key.destination] = str(ipaddress.ip_address(key.destination))
            rows.writerow((PROTOCOL_NAMES.get(key.protocol, str(key.protocol)), source, key.source_port,
                           destination, key.destination_port, seconds(flow.first_ns), seconds(flow.last_ns),
                           flow.forward_packets, flow.forward_bytes, flow.backward_packets,
                           flow.backward_bytes, flow.label or ""))


class _Parser:
    """Reads a ground-truth CSV, refusing anything doubtful at its `path:line:column`."""

    def __init__(self, path: str) -> None:
        self.path = path

    def error(self, line: int, column: int, what: str, hint: str = "") -> UsageError:
        return UsageError(f"{self.path}:{line}:{column}", what, hint)

    def rows(self) -> list[TruthRow]:
        reader = csv.reader(io.StringIO(self._text(), newline=""), strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise self.error(1, 1, "the file is empty", "the first row names the columns: "
                                 + ",".join(COLUMNS))
            columns = self._header(header)
            rows: list[TruthRow] = []
            line = reader.line_num + 1
            for fields in reader:
                if any(field.strip() for field in fields):
                    rows.append(self._row(line, columns, fields))
                line = reader.line_num + 1
        except csv.Error as exc:
            raise self.error(reader.line_num, 1, f"not valid CSV: {exc}") from None
        return rows

    def _text(self) -> str:
        """The file's text: a regular file (a device or a pipe may never end, and opening a pipe
        waits for a writer, so the type is checked first) read no further than MAX_TRUTH_FILE."""
        path = Path(self.path)
        try:
            info = path.stat()
            if not stat.S_ISREG(info.st_mode):
                raise UsageError(self.path, "cannot read the labels file: not a regular file",
                                 "give a CSV file, not a directory, device or pipe")
            if info.st_size > MAX_TRUTH_FILE:
                raise self._too_large()
            with path.open("rb") as stream:
                raw = stream.read(MAX_TRUTH_FILE + 1)
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
            raise UsageError(self.path, "cannot read the labels file: "
                             f"{getattr(exc, 'strerror', None) or exc}") from None
        if len(raw) > MAX_TRUTH_FILE:  # it grew after the check
            raise self._too_large()
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            before = raw[:exc.start]
            line_start = before.rfind(b"\n") + 1
            prefix = before[line_start:].decode("utf-8", errors="replace")
            column = len(next(csv.reader([prefix]), [""])) or 1
            raise self.error(before.count(b"\n") + 1, column, "not UTF-8 text",
                             "save the file as UTF-8") from None

    def _too_large(self) -> UsageError:
        return UsageError(self.path, f"the labels file is larger than {MAX_TRUTH_FILE >> 20} MiB",
                          "one row per flow (or set of flows) is enough: give rows, not frames")

    def _header(self, header: list[str]) -> list[str]:
        columns = [name.strip().lower() for name in header]
        for index, name in enumerate(columns):
            if name not in COLUMNS:
                close = difflib.get_close_matches(name, COLUMNS, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"columns: {', '.join(COLUMNS)}"
                raise self.error(1, index + 1, f"unknown column {header[index]!r}", hint)
            if columns.index(name) != index:
                raise self.error(1, index + 1, f"column {name!r} appears twice")
        if "label" not in columns:
            raise self.error(1, 1, "no `label` column", "the first row names the columns: "
                             + ",".join(COLUMNS))
        if not any(name in MATCHING for name in columns):
            raise self.error(1, 1, "no column to match frames on",
                             f"add one or more of {', '.join(MATCHING)}")
        return columns

    def _row(self, line: int, columns: list[str], fields: list[str]) -> TruthRow:
        if len(fields) > len(columns):
            raise self.error(line, len(columns) + 1, f"{len(fields)} fields, but the header names "
                             f"{len(columns)} columns")
        given = {name: (index + 1, fields[index].strip()) for index, name in enumerate(columns)
                 if index < len(fields) and fields[index].strip()}
        label_column = columns.index("label") + 1
        if "label" not in given:
            raise self.error(line, label_column, "empty label", "every row gives a label")
        problem = label_problem(given["label"][1])
        if problem:
            raise self.error(line, label_column, problem)
        if not any(name in given for name in MATCHING):
            raise self.error(line, 1, "the row gives nothing to match frames on",
                             f"fill one or more of {', '.join(n for n in MATCHING if n in columns)}")
        src, dst = (self._network(line, *given[n]) if n in given else None for n in ("src", "dst"))
        sport, dport = (self._port(line, *given[n]) if n in given else None for n in ("sport", "dport"))
        protocol = self._protocol(line, *given["protocol"]) if "protocol" in given else None
        ports = [name for name in ("sport", "dport") if name in given]
        if ports and protocol is not None and protocol not in PORTED_NUMBERS:
            raise self.error(line, given[ports[0]][0], f"{ports[0]} given for protocol "
                             f"{given['protocol'][1]}, which has no ports", "ports go with tcp or udp")
        start, end = (self._time(line, *given[n]) if n in given else None for n in ("start", "end"))
        if start is not None and end is not None and end < start:
            raise self.error(line, given["end"][0], "end is before start")
        return TruthRow(line, given["label"][1], src, dst, sport, dport, protocol, start, end)

    def _network(self, line: int, column: int, text: str) -> Network:
        try:
            network = ipaddress.ip_network(text)
        except ValueError as exc:
            raise self.error(line, column, f"{text!r} is not an IPv4/IPv6 address or CIDR network ({exc})",
                             "for example 192.0.2.7, 10.1.0.0/16 or 2001:db8::/32") from None
        size = 4 if network.version == 4 else 16
        return Network(size, int(network.network_address), int(network.netmask))

    def _port(self, line: int, column: int, text: str) -> int:
        if not DIGITS.fullmatch(text) or int(text) > 65535:
            raise self.error(line, column, f"{text!r} is not a port", "a whole number from 0 to 65535")
        return int(text)

    def _protocol(self, line: int, column: int, text: str) -> int:
        name = text.lower()
        if name in PROTOCOL_NUMBERS:
            return PROTOCOL_NUMBERS[name]
        if DIGITS.fullmatch(name) and int(name) <= 255:
            return int(name)
        raise self.error(line, column, f"unknown protocol {text!r}",
                         f"one of {', '.join(PROTOCOL_NUMBERS)}, or an IP protocol number 0-255")

    def _time(self, line: int, column: int, text: str) -> int:
        hint = "RFC 3339 (2024-01-02T03:04:05.123Z, or +01:00 for the offset) or seconds since 1970"
        epoch, stamp = EPOCH_TIME.fullmatch(text), RFC3339.fullmatch(text)
        if epoch is None and stamp is None:
            raise self.error(line, column, f"{text!r} is not a time", hint)
        fraction = (epoch.group(2) if epoch else stamp.group(7) if stamp else None) or ""
        if len(fraction) > 9:
            raise self.error(line, column, f"{text!r} has more than 9 fractional digits", hint)
        nanoseconds = int(fraction.ljust(9, "0"))
        if epoch:
            return int(epoch.group(1)) * NS_PER_SECOND + nanoseconds
        assert stamp is not None
        year, month, day, hour, minute, second = (int(stamp.group(i)) for i in range(1, 7))
        zone = stamp.group(8).upper()
        try:
            if zone != "Z" and int(zone[4:6]) > 59:
                raise ValueError("offset minutes must be in 0..59")
            sign = -1 if zone[0] == "-" else 1
            offset = timedelta(0) if zone == "Z" else sign * timedelta(hours=int(zone[1:3]),
                                                                       minutes=int(zone[4:6]))
            moment = datetime(year, month, day, hour, minute, second, tzinfo=timezone(offset))
        except ValueError as exc:
            raise self.error(line, column, f"{text!r} is not a valid time ({exc})", hint) from None
        return (moment - EPOCH) // timedelta(seconds=1) * NS_PER_SECOND + nanoseconds
