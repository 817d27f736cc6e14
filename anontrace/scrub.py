"""The scrub job: which outputs come from which inputs, and running them with one set of rules."""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from anontrace.errors import OutputError, UsageError
from anontrace.io.capture import StagedOutput, make_writer, open_reader, output_format
from anontrace.keys import Key
from anontrace.labels import GroundTruth, Labeling, LabelRecorder
from anontrace.leakage.gates import Gate
from anontrace.leakage.gates import merge as gate_merge
from anontrace.leakage.html import render as render_html
from anontrace.leakage.report import PAYLOAD_CUTS, PAYLOAD_REASON, ReportBuilder, names_config, now
from anontrace.leakage.residual import kept_by_mappers
from anontrace.manifest import build_manifest, file_entry, write_manifest
from anontrace.pipeline import RunStats, run
from anontrace.rules.compile import Rules
from anontrace.signing import sign
from anontrace.transforms.base import Transform
from anontrace.transforms.ip import Ip
from anontrace.transforms.mac import Mac

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".dmp", ".ntar")


@dataclass(frozen=True, slots=True)
class Task:
    """One input capture and the output it becomes."""

    source: str
    target: str


@dataclass(slots=True)
class ScrubResult:
    """What a scrub did, per input and in total."""

    key_fingerprint: str
    one_time_key: bool
    rules: str
    files: list[tuple[Task, RunStats]] = field(default_factory=list)
    total: RunStats = field(default_factory=RunStats)
    stats: dict[str, int] = field(default_factory=dict)
    written: list[Written] = field(default_factory=list)
    unmatched_rows: list[int] = field(default_factory=list)  # ground-truth rows that labelled no frame


def _is_capture(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz").removesuffix(".zst")
    return path.is_file() and name.endswith(CAPTURE_SUFFIXES)


def plan(inputs: list[str], output: str) -> list[Task]:
    """Pair inputs with outputs: one file to one file; several inputs or a directory to a directory."""
    if "-" in inputs and len(inputs) > 1:
        raise UsageError("-", "stdin can only be the single input")
    sources: list[str] = []
    many = len(inputs) > 1
    for name in inputs:
        path = Path(name)
        if name != "-" and not path.exists():
            raise UsageError(name, "no such file or directory")
        if path.is_dir() and name != "-":
            found = sorted(str(p) for p in path.iterdir() if _is_capture(p))
            if not found:
                raise UsageError(name, "directory holds no capture files",
                                 f"captures end in {', '.join(CAPTURE_SUFFIXES)} (optionally .gz/.zst)")
            sources += found
            many = True
        else:
            sources.append(name)
    if not many:
        if output != "-" and Path(output).is_dir():
            return _into_directory(sources, output)
        _distinct(sources[0], output)
        _writable_parent(Path(output))
        return [Task(sources[0], output)]
    if output == "-":
        raise UsageError(output, "several inputs need an output directory, not stdout")
    if Path(output).exists() and not Path(output).is_dir():
        raise UsageError(output, "several inputs need an output directory; this is a file")
    _writable_parent(Path(output))
    return _into_directory(sources, output)


def _writable_parent(target: Path) -> None:
    """Refuse an output whose directory is missing, before any work is done."""
    if target != Path("-") and not target.absolute().parent.is_dir():
        raise OutputError(str(target), "the output's directory does not exist",
                          f"create {target.absolute().parent} first")


def _into_directory(sources: list[str], directory: str) -> list[Task]:
    if "-" in sources:
        raise UsageError(directory, "stdin has no file name to reuse; give an output file name")
    tasks = [Task(s, str(Path(directory) / Path(s).name)) for s in sources]
    names = [Path(t.target).name for t in tasks]
    for task in tasks:
        if names.count(Path(task.target).name) > 1:
            raise UsageError(task.source, f"two inputs are named {Path(task.target).name!r}",
                             "their outputs would overwrite each other; scrub them separately")
        _distinct(task.source, task.target)
    return tasks


def _distinct(source: str, target: str) -> None:
    if source != "-" and target != "-" and Path(target).exists() and Path(source).samefile(target):
        raise UsageError(target, "output would overwrite the input")


@dataclass(frozen=True, slots=True)
class Bundle:
    """What is written beside each trace, and how: labels from a ground-truth CSV, where the
    report goes (`None`: beside the trace; `-`: stdout; else a path), the gates the report must
    pass, the addresses an adversary is assumed to know, and the key that signs the manifest."""

    truth: GroundTruth | None = None
    report: str | None = None
    gates: tuple[Gate, ...] = ()
    known: tuple[bytes, ...] = ()
    sign_key: Ed25519PrivateKey | None = None


@dataclass(slots=True)
class Written:
    """One scrubbed trace: whether it was published, its report, and the files beside it."""

    task: Task
    stats: RunStats
    report: dict[str, Any]
    files: list[str]
    published: bool
    removed: list[str] = field(default_factory=list)  # an earlier bundle's files, when withheld


def scrub(tasks: list[Task], rules: Rules, key: Key,
          progress: Callable[[Task, int, int], None] | None = None,
          bundle: Bundle = Bundle()) -> ScrubResult:
    """Scrub every task with the same transforms, so addresses map the same way in every output.

    Each trace is staged, its leakage report built and its gates checked before anything is
    published: a trace that fails a gate is withheld (only its report is written), and the
    others go on."""
    transforms = rules.build(key)
    result = ScrubResult(key.fingerprint, key.one_time, rules.source)
    directories = {Path(t.target).parent for t in tasks} if len(tasks) > 1 else set()
    for directory in directories:
        try:
            directory.mkdir(exist_ok=True)
        except OSError as exc:
            raise OutputError(str(directory), f"cannot create output directory: {exc.strerror}",
                              "its parent directory must exist and be writable") from None
    ips = next(t for t in transforms if isinstance(t, Ip)).mapper
    macs = next(t for t in transforms if isinstance(t, Mac)).mapper
    kept = kept_by_mappers(ips, macs)
    gates = gate_merge(list(rules.gates), list(bundle.gates))
    for task in tasks:
        written = _one(task, rules, key, transforms, kept, gates, bundle, progress)
        result.files.append((task, written.stats))
        result.written.append(written)
        result.total.merge(written.stats)
    for transform in transforms:
        result.stats.update(transform.stats())
    result.unmatched_rows = bundle.truth.unmatched() if bundle.truth else []
    return result


def _one(task: Task, rules: Rules, key: Key, transforms: list[Transform], kept: Callable[[bytes], bool],
         gates: list[Gate], bundle: Bundle, progress: Callable[[Task, int, int], None] | None) -> Written:
    reader = open_reader(task.source)
    size = Path(task.source).stat().st_size if task.source != "-" else 0
    report_progress = (lambda done: progress(task, done, size)) if progress else None
    beside = task.target != "-"
    labeling = Labeling(rules.labels, bundle.truth)
    builder = ReportBuilder(pair=True, kept=kept, known=list(bundle.known) or None,
                            names=names_config(transforms))
    created = now()
    with ExitStack() as stack:
        trace = stack.enter_context(StagedOutput(task.target))
        labels_file = stack.enter_context(StagedOutput(task.target + LABELS)) if beside else None
        labels_text = _text(labels_file)
        recorder = LabelRecorder(labels_text)
        try:
            capture_format = output_format(task.target, reader.format)[0]
            writer = make_writer(trace.stream, task.target, capture_format, reader)
            stats = run(reader, writer, transforms, report_progress, labeling,
                        [*builder.observers, recorder])
            source_digest = reader.stream.digest()
        finally:
            reader.stream.close()
        trace.seal()
        report = builder.finish(anonymized=_name(task.target), scan_path=trace.temporary,
                                original=_name(task.source),
                                rules=rules.source, key_fingerprint=key.fingerprint, gates=gates,
                                created=created)
        report["labels"] = {"counts": dict(recorder.counts.most_common())}
        report = without_directories(report)
        files = _publish_report(stack, task, report, bundle.report)
        written = Written(task, stats, report, files, False)
        if not report["passed"] or not beside:
            if report["passed"]:
                trace.publish()
                written.published = True
            elif beside:
                written.removed = _remove_stale(task.target)
            return written
        assert labels_file is not None
        _seal_text(labels_file, labels_text)
        flows_file = stack.enter_context(StagedOutput(task.target + FLOWS))
        flows_text = _text(flows_file)
        recorder.write_flows(flows_text)
        _seal_text(flows_file, flows_text)
        roles = [("labels", labels_file), ("flows", flows_file)]
        entries = [_listed("trace", trace.temporary, task.target, task.target)]
        entries += [_listed(role, f.temporary, f.path, task.target) for role, f in roles]
        entries += [_listed(_role(path), path, path, task.target) for path in files]
        listed = [entry for entry in entries if entry is not None]
        manifest = build_manifest(
            rules=rules, key_fingerprint=key.fingerprint, one_time_key=key.one_time,
            inputs=[{"path": "<stdin>" if task.source == "-" else Path(task.source).name,
                     "sha256": source_digest[0], "bytes": source_digest[1], "frames": stats.frames_in}],
            files=listed, frames={"in": stats.frames_in, "out": stats.frames_out,
                                  "dropped": dict(stats.dropped), "cut": _cuts(stats)},
            labels=dict(recorder.counts.most_common()), report_passed=report["passed"], created=created)
        manifest = without_directories(manifest)
        if bundle.sign_key is not None:
            manifest = sign(manifest, bundle.sign_key)
        for _, staged in roles:
            staged.publish()
        write_manifest(Path(task.target + MANIFEST), manifest)
        trace.publish()
        written.published = True
        written.files = [*files, *(f.path for _, f in roles), task.target + MANIFEST]
        return written


LABELS, FLOWS, MANIFEST = ".labels.csv", ".flows.csv", ".manifest.json"
REPORT_JSON, REPORT_HTML = ".report.json", ".report.html"


def _remove_stale(target: str) -> list[str]:
    """A withheld trace must not leave an earlier run's trace (and its labels, flows and manifest)
    under the final name, beside a report that says FAILED: a batch job would take it for this
    run's. Remove them."""
    removed = []
    for suffix in ("", LABELS, FLOWS, MANIFEST):
        path = Path(target + suffix)
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise OutputError(str(path), f"withheld, but an earlier output is in the way: {exc.strerror}",
                              "remove it by hand: it is not this run's") from None
        removed.append(str(path))
    return removed


RULE_FILE = re.compile(r"^(?:.*[/\\])?([^/\\]+\.ya?ml(?::\d+:\d+)?)$")


def without_directories(value: Any) -> Any:
    """The report and manifest travel with the trace: rule files in them (`source`, gate and step
    locations) are named by file name, not by where they sit on the sending side."""
    if isinstance(value, dict):
        return {key: without_directories(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_directories(item) for item in value]
    if isinstance(value, str) and (match := RULE_FILE.match(value)):
        return match.group(1)
    return value


def _cuts(stats: RunStats) -> dict[str, int]:
    """Frames cut short, by reason: where dissection stopped, by a rule, and to the kept payload."""
    cuts = dict(stats.cut)
    if stats.counts[PAYLOAD_CUTS]:
        cuts[PAYLOAD_REASON] = cuts.get(PAYLOAD_REASON, 0) + stats.counts[PAYLOAD_CUTS]
    return cuts


def check_report_path(where: str | None) -> None:
    """Refuse a `--report` path whose directory is missing, before any work is done."""
    if where is not None and where != "-":
        _writable_parent(Path(where))


def _name(path: str) -> str:
    """How the report and manifest name a file: its name only (directories stay at home)."""
    return {"-": "<stdout>"}.get(path, Path(path).name) if path != "-" else "-"


def _role(path: str) -> str:
    return "report-html" if path.endswith(".html") else "report-json"


class _Discard(io.TextIOBase):
    """Where labels go when there is no file to put them in (the trace goes to stdout)."""

    def write(self, text: str) -> int:
        return len(text)


def _text(staged: StagedOutput | None) -> TextIO:
    if staged is None:
        return _Discard()  # type: ignore[return-value]
    return io.TextIOWrapper(staged.stream, encoding="utf-8", newline="", write_through=True)


def _seal_text(staged: StagedOutput, text: TextIO) -> None:
    text.flush()
    if isinstance(text, io.TextIOWrapper):
        text.detach()  # the staged file is closed by `seal`, not by the wrapper
    staged.seal()


def _listed(role: str, path: str, name: str, target: str) -> dict[str, Any] | None:
    """A manifest entry for a file beside the trace: hashed from `path` (the staged file, the same
    bytes as will be published), named relative to the trace's directory. A report written
    elsewhere (`--report PATH`) is not part of the bundle."""
    if Path(name).absolute().parent != Path(target).absolute().parent:
        return None
    return file_entry(role, Path(path), Path(name).name)


def _publish_report(stack: ExitStack, task: Task, report: dict[str, Any], where: str | None) -> list[str]:
    """Write the report (JSON and HTML) where asked; return the paths written."""
    text = json.dumps(report, indent=2) + "\n"
    if where == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        if task.target == "-":
            return []
        html_path = task.target + REPORT_HTML
        json_path = None
    elif where is not None:
        json_path = where
        html_path = where.removesuffix(".json") + ".html"
    elif task.target == "-":
        return []
    else:
        json_path, html_path = task.target + REPORT_JSON, task.target + REPORT_HTML
    written = []
    for path, content in ((json_path, text), (html_path, render_html(report))):
        if path is None:
            continue
        staged = stack.enter_context(StagedOutput(path))
        staged.stream.write(content.encode())
        staged.publish()
        written.append(path)
    return written
