"""The scrub job: which outputs come from which inputs, and running them with one set of rules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from anontrace.errors import OutputError, UsageError
from anontrace.io.capture import atomic_output, make_writer, open_reader, output_format
from anontrace.keys import Key
from anontrace.pipeline import RunStats, run
from anontrace.rules.compile import Rules

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


def scrub(tasks: list[Task], rules: Rules, key: Key,
          progress: Callable[[Task, int, int], None] | None = None) -> ScrubResult:
    """Scrub every task with the same transforms, so addresses map the same way in every output."""
    transforms = rules.build(key)
    result = ScrubResult(key.fingerprint, key.one_time, rules.source)
    directories = {Path(t.target).parent for t in tasks} if len(tasks) > 1 else set()
    for directory in directories:
        try:
            directory.mkdir(exist_ok=True)
        except OSError as exc:
            raise OutputError(str(directory), f"cannot create output directory: {exc.strerror}",
                              "its parent directory must exist and be writable") from None
    for task in tasks:
        reader = open_reader(task.source)
        size = Path(task.source).stat().st_size if task.source != "-" else 0
        report = (lambda done, t=task, n=size: progress(t, done, n)) if progress else None
        try:
            with atomic_output(task.target) as out:
                capture_format = output_format(task.target, reader.format)[0]
                writer = make_writer(out, task.target, capture_format, reader)
                stats = run(reader, writer, transforms, report)
        finally:
            reader.stream.close()
        result.files.append((task, stats))
        result.total.merge(stats)
    for transform in transforms:
        result.stats.update(transform.stats())
    return result
