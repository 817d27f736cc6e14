"""The scrub job: which outputs come from which inputs, and running them with one set of rules."""

from __future__ import annotations

import dataclasses
import errno
import io
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from anontrace.crypto.macs import MacMapper
from anontrace.crypto.mapping import AddressMapper
from anontrace.errors import OutputError, TraceFormatError, UsageError
from anontrace.io.capture import StagedOutput, make_writer, open_reader, output_format, publication
from anontrace.keys import Key
from anontrace.labels import GroundTruth, Labeling, LabelRecorder
from anontrace.leakage.gates import Gate
from anontrace.leakage.gates import merge as gate_merge
from anontrace.leakage.html import render as render_html
from anontrace.leakage.report import ReportBuilder, names_config, now
from anontrace.leakage.residual import kept_by_mappers
from anontrace.manifest import build_manifest, file_entry
from anontrace.parallel import Engine, KeySpec, Session, Setup, jobs_for, new_run, why_sequential
from anontrace.pipeline import RunStats, run
from anontrace.rules.compile import Rules
from anontrace.signing import sign
from anontrace.transforms.base import Transform
from anontrace.transforms.ip import Ip
from anontrace.transforms.mac import Mac
from anontrace.transforms.timing import Timing

IN_PROCESS = Engine()
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
    engine: str = "this process"  # where the work ran, and why not spread out when it was asked to


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
    for source in sources:
        _readable(source)
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


def _readable(source: str) -> None:
    """Refuse, before any output is made, an input this user may not read: with several inputs,
    the run would otherwise stop part way, after publishing the outputs of the first ones."""
    if source != "-" and Path(source).is_file() and not os.access(source, os.R_OK):
        raise TraceFormatError(source, f"cannot open: {os.strerror(errno.EACCES)}",
                               "the user running anontrace needs read permission on it")


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
          bundle: Bundle = Bundle(), engine: Engine = IN_PROCESS, key_path: str | None = None) -> ScrubResult:
    """Scrub every task with the same transforms, so addresses map the same way in every output.

    Each trace is staged, its leakage report built and its gates checked before anything is
    published: a trace that fails a gate is withheld (only its report is written), and the
    others go on. `engine` says where the frames are transformed (`key_path`, the key file, is
    how workers get the key); the outputs are the same wherever."""
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
    kept = _Kept(ips, macs)
    gates = gate_merge(list(rules.gates), list(bundle.gates))
    published: list[str] = []
    with ExitStack() as stack:
        session = _session(stack, engine, tasks, rules, key, key_path, bundle, transforms, result)
        try:
            for number, task in enumerate(tasks):
                written = _one(task, rules, key, transforms, kept, gates, bundle, progress, published,
                               (session, number) if session is not None else None)
                result.files.append((task, written.stats))
                result.written.append(written)
                result.total.merge(written.stats)
        except BaseException as exc:  # an error or an interruption: say which outputs are whole
            if published:
                exc.add_note(f"finished before it stopped: {', '.join(published)}")
            raise
    if session is not None:
        result.stats.update(session.stats())
    else:
        for transform in transforms:
            result.stats.update(transform.stats())
    result.unmatched_rows = bundle.truth.unmatched() if bundle.truth else []
    return result


def _session(stack: ExitStack, engine: Engine, tasks: list[Task], rules: Rules, key: Key,
             key_path: str | None, bundle: Bundle, transforms: list[Transform],
             result: ScrubResult) -> Session | None:
    """The workers (local or Dask) of a run that is spread out; None for one in this process."""
    if not engine.parallel:
        return None
    reason = why_sequential(transforms, [t.source for t in tasks])
    if reason is not None:
        result.engine = f"this process ({reason})"
        return None
    if not engine.dask and sum(jobs_for(t.source, engine.chunk_bytes) for t in tasks) == 1:
        return None  # one small file: one job, done here sooner than workers start
    if engine.dask and key_path is None:
        raise UsageError("--engine dask", "Dask workers need the key as a file they can read",
                         "give --key-file (or ANONTRACE_KEY_FILE) naming a key file every worker sees")

    def where(path: str) -> str:  # Dask workers may start in another directory
        return os.path.abspath(path) if engine.dask else path

    spec = KeySpec(key.fingerprint, where(key_path) if key_path else None,
                   None if key_path else key.secret)
    setup = Setup(new_run(), rules, spec, bundle.known, bundle.truth)
    backend = engine.backend()
    stack.callback(backend.close)
    result.engine = engine.describe()
    return Session(backend, [where(t.source) for t in tasks], setup, engine.chunk_bytes,
                   window=2 * max(engine.workers, 1) + 1,
                   timings=[t for t in transforms if isinstance(t, Timing)], shared_files=not engine.dask)


class _Kept:
    """Whether the run's rules keep an identifier (it maps to itself). When workers did the
    mapping, this process's mappers have not seen the identifiers: `warm` maps them all at once
    (one Crypto-PAn pass) rather than one by one as the report asks."""

    def __init__(self, ips: AddressMapper, macs: MacMapper) -> None:
        self._kept = kept_by_mappers(ips, macs)
        self._ips, self._macs = ips, macs

    def __call__(self, raw: bytes) -> bool:
        return self._kept(raw)

    def warm(self, identifiers: Iterable[bytes]) -> None:
        raws = list(identifiers)
        self._ips.map_many(raw for raw in raws if len(raw) != 6)
        self._macs.map_many(raw for raw in raws if len(raw) == 6)


def _one(task: Task, rules: Rules, key: Key, transforms: list[Transform], kept: _Kept,
         gates: list[Gate], bundle: Bundle, progress: Callable[[Task, int, int], None] | None,
         published: list[str], spread: tuple[Session, int] | None = None) -> Written:
    """Stage, report, gate and publish one output; `published` gets its name once its bundle
    (or its report alone, when withheld) is in place."""
    size = Path(task.source).stat().st_size if task.source != "-" else 0
    report_progress = (lambda done: progress(task, done, size)) if progress else None
    beside = task.target != "-"
    labeling = Labeling(rules.labels, bundle.truth)
    builder = ReportBuilder(pair=True, kept=kept, known=list(bundle.known) or None,
                            names=names_config(transforms))
    created = now()
    with ExitStack() as stack:
        reader = open_reader(task.source)
        stack.callback(reader.stream.close)
        trace = stack.enter_context(StagedOutput(task.target))
        labels_file = stack.enter_context(StagedOutput(task.target + LABELS)) if beside else None
        labels_text = _text(labels_file)
        recorder = LabelRecorder(labels_text)
        try:
            capture_format = output_format(task.target, reader.format)[0]
            writer = make_writer(trace.stream, task.target, capture_format, reader)
            if spread is not None:
                stats, source_digest = spread[0].run(spread[1], writer, builder, recorder, bundle.truth,
                                                     report_progress)
            else:
                stats = run(reader, writer, transforms, report_progress, labeling,
                            [*builder.observers, recorder])
                source_digest = reader.stream.digest()
        finally:
            reader.stream.close()
        trace.seal()
        scanned = None
        if spread is not None and builder.identifiers is not None:
            kept.warm(builder.identifiers.addresses)
            scanned = spread[0].scan(trace.temporary, builder.identifiers, kept, builder.keep_names)
        report = builder.finish(scanned=scanned, anonymized=_name(task.target), scan_path=trace.temporary,
                                original=_name(task.source), rules=rules.source,
                                key_fingerprint=key.fingerprint, gates=gates, created=created,
                                texts={"labels": list(recorder.counts)})
        report["labels"] = {"counts": dict(recorder.counts.most_common())}
        report = without_directories(report, rules.source)
        reports = _stage_report(stack, task, report, bundle.report)
        written = Written(task, stats, report, [r.path for r in reports], False)
        if not report["passed"] or not beside:
            with publication([r.path for r in reports] + [task.target]):
                for staged in reports:
                    staged.publish()
                if beside:  # withheld
                    written.removed = _remove_stale(task.target, (LABELS, FLOWS, MANIFEST, ""))
                    published.append(task.target + " (withheld: report only)")
            if report["passed"]:  # to stdout: copied there only now, and not with signals held
                trace.publish()
                written.published = True
                published.append("<stdout>")
            return written
        assert labels_file is not None
        _seal_text(labels_file, labels_text)
        flows_file = stack.enter_context(StagedOutput(task.target + FLOWS))
        flows_text = _text(flows_file)
        recorder.write_flows(flows_text)
        _seal_text(flows_file, flows_text)
        sidecars = [("labels", labels_file), ("flows", flows_file)]
        sidecars += [(_role(r.path), r) for r in reports if _beside(r.path, task.target)]
        manifest = build_manifest(
            rules=dataclasses.replace(rules, gates=tuple(gates)), key_fingerprint=key.fingerprint,
            one_time_key=key.one_time,
            inputs=[{"path": "<stdin>" if task.source == "-" else Path(task.source).name,
                     "sha256": source_digest[0], "bytes": source_digest[1], "frames": stats.frames_in}],
            files=[file_entry(role, Path(f.temporary), Path(f.path).name)
                   for role, f in [("trace", trace), *sidecars]],
            frames={"in": stats.frames_in, "out": stats.frames_out, "dropped": dict(stats.dropped),
                    "cut": dict(Counter(report["coverage"]["cut_by_dissector"])
                                + Counter(report["coverage"]["cut_by_rules"]))},
            labels=dict(recorder.counts.most_common()), report_passed=report["passed"], created=created)
        manifest = without_directories(manifest, rules.source)
        if bundle.sign_key is not None:
            manifest = sign(manifest, bundle.sign_key)
        manifest_file = stack.enter_context(StagedOutput(task.target + MANIFEST))
        manifest_file.stream.write((json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode())
        manifest_file.seal()
        # Everything is complete on disk; publish it all as one step, the trace last.
        outputs = [*reports, labels_file, flows_file, manifest_file, trace]
        with publication(staged.path for staged in outputs):
            if bundle.report is not None:
                _remove_stale(task.target, (REPORT_JSON, REPORT_HTML))
            for staged in outputs:
                staged.publish()
            published.append(task.target)
        written.published = True
        written.files = [*(r.path for r in reports), labels_file.path, flows_file.path, manifest_file.path]
        return written


LABELS, FLOWS, MANIFEST = ".labels.csv", ".flows.csv", ".manifest.json"
REPORT_JSON, REPORT_HTML = ".report.json", ".report.html"


def _remove_stale(target: str, suffixes: tuple[str, ...]) -> list[str]:
    """Remove an earlier run's files under this output's names. A withheld trace must not leave
    an earlier trace (and its labels, flows and manifest) beside a report that says FAILED: a
    batch job would take it for this run's; nor may a report moved elsewhere leave the earlier
    one beside a new trace."""
    removed = []
    for suffix in suffixes:
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


LOCATION = re.compile(r"^(.*[/\\])([^/\\]+:\d+:\d+)$")


def without_directories(value: Any, source: str) -> Any:
    """The report and manifest travel with the trace: the rule file (`source`) and the locations
    in rule files (`file:line:col` of gates and steps) are named by file name, not by where the
    files sit on the sending side."""
    if isinstance(value, dict):
        return {key: without_directories(item, source) for key, item in value.items()}
    if isinstance(value, list):
        return [without_directories(item, source) for item in value]
    if isinstance(value, str):
        if value == source:
            return Path(value).name
        if match := LOCATION.match(value):
            return match.group(2)
    return value


def check_report_path(where: str | None, tasks: list[Task]) -> None:
    """Refuse, before any work is done, a `--report` path whose directory is missing, or that
    would overwrite an input or a file of the bundle."""
    if where is None or where == "-":
        return
    _writable_parent(Path(where))
    html = where.removesuffix(".json") + ".html"
    for task in tasks:
        taken = [task.target + suffix for suffix in ("", LABELS, FLOWS, MANIFEST)]
        for path in (where, html):
            if path in taken or (task.source != "-" and Path(path).exists()
                                 and Path(path).samefile(task.source)):
                what = "part of the bundle" if path in taken else "an input"
                raise UsageError("--report", f"{path} is {what}", "write the report somewhere else")


def _name(path: str) -> str:
    """How the report and manifest name a file: its name only (directories stay at home)."""
    return path if path == "-" else Path(path).name


def _beside(path: str, target: str) -> bool:
    """Whether a report sits in the trace's directory, and so belongs to its bundle."""
    return Path(path).absolute().parent == Path(target).absolute().parent


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


def _stage_report(stack: ExitStack, task: Task, report: dict[str, Any],
                  where: str | None) -> list[StagedOutput]:
    """The report (JSON and HTML) staged where asked, sealed, not yet published; `--report -`
    prints the JSON now (and stages only the HTML, beside the trace)."""
    text = json.dumps(report, indent=2) + "\n"
    json_path: str | None
    if where == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        json_path, html_path = None, task.target + REPORT_HTML
    elif where is not None:
        json_path, html_path = where, where.removesuffix(".json") + ".html"
    else:
        json_path, html_path = task.target + REPORT_JSON, task.target + REPORT_HTML
    if task.target == "-" and where in (None, "-"):
        return []
    staged = []
    for path, content in ((json_path, text), (html_path, render_html(report))):
        if path is not None:
            output = stack.enter_context(StagedOutput(path))
            output.stream.write(content.encode())
            output.seal()
            staged.append(output)
    return staged
