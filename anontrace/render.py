"""What the CLI shows: a progress bar and the run summary on stderr, the summary as JSON."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from anontrace.scrub import ScrubResult, Task

Advance = Callable[[Task, int, int], None]


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Advance | None]:
    """A progress bar over input bytes on stderr, one line per input; None when disabled."""
    if not enabled:
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        bars: dict[str, Any] = {}

        def advance(task: Task, done: int, total: int) -> None:
            if task.source not in bars:
                bars[task.source] = progress.add_task(task.source, total=total or None)
            progress.update(bars[task.source], completed=done)

        yield advance


def summary_json(result: ScrubResult) -> dict[str, Any]:
    """The run summary as plain data, for scripts."""
    total = result.total
    return {
        "key_fingerprint": result.key_fingerprint,
        "one_time_key": result.one_time_key,
        "rules": result.rules,
        "frames_in": total.frames_in,
        "frames_out": total.frames_out,
        "frames_dropped": dict(total.dropped),
        "frames_cut": dict(total.cut),
        "transforms": {**dict(total.counts), **result.stats},
        "input_notices": dict(total.notices),
        "bytes_in": total.bytes_in,
        "bytes_out": total.bytes_out,
        "seconds": round(total.seconds, 3),
        "engine": result.engine,
        "files": [{"input": task.source, "output": task.target, "frames_in": stats.frames_in,
                   "frames_out": stats.frames_out} for task, stats in result.files],
    }


def summary_table(result: ScrubResult) -> None:
    """A one-screen summary on stderr."""
    total = result.total
    rate = total.frames_in / total.seconds if total.seconds else 0.0
    table = Table(title="anontrace scrub", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("files", str(len(result.files)))
    table.add_row("frames in / out", f"{total.frames_in:,} / {total.frames_out:,}")
    for reason, count in total.dropped.most_common():
        table.add_row(f"  dropped: {reason}", f"{count:,}")
    table.add_row("frames cut (dissection stopped, or a rule)", f"{sum(total.cut.values()):,}")
    for reason, count in total.cut.most_common(8):
        table.add_row(f"  {reason}", f"{count:,}")
    if len(total.cut) > 8:
        table.add_row("  other reasons", f"{sum(c for _, c in total.cut.most_common()[8:]):,}")
    for name, count in {**dict(total.counts), **result.stats}.items():
        table.add_row(name, f"{count:,}")
    for notice, count in total.notices.most_common():
        table.add_row(f"input: {notice}", f"{count:,}")
    table.add_row("time", f"{total.seconds:.2f} s ({rate:,.0f} frames/s)")
    table.add_row("ran in", result.engine)
    table.add_row("key fingerprint", result.key_fingerprint + (" (one-time)" if result.one_time_key else ""))
    Console(stderr=True).print(table)
