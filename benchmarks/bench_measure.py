"""Running a command once: wall time, peak RSS of its largest process, and the
sampled peak of its whole process tree's summed RSS; and interleaving tools.

Two memory figures, because ``anontrace scrub --workers N`` forks workers:
- the largest process: ``wait4()``'s ru_maxrss, which Linux takes as the maximum
  over the process and every descendant it has reaped. Exact, but per process.
- the tree: the sum of the RSS of the command and all its descendants, sampled
  every ``interval`` seconds from ``/proc`` (no psutil). Pages shared between
  processes count once per process, so the sum is an upper bound at each sample;
  a spike shorter than the interval can be missed.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench_tools import Run, Tool
from bench_trace import count_packets

PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def gnu_time() -> str | None:
    """Path of GNU time, if installed (Debian package ``time``)."""
    path = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    if path is None:
        return None
    probe = subprocess.run([path, "--version"], capture_output=True, text=True)
    return path if "GNU" in probe.stdout + probe.stderr else None


def reset_own_peak_rss() -> None:
    """Lower this process's RSS high-water mark to its current RSS (Linux >= 4.0).

    A child's ru_maxrss starts at the high-water mark of the process it was forked
    from, so a fat parent inflates every child's figure.
    """
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def proc_table() -> Iterator[tuple[int, int, int]]:
    """(pid, parent pid, RSS KiB) of every process, from /proc/<pid>/stat."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # the process ended between listdir and open
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()  # the command name may hold spaces
        yield int(name), int(fields[1]), int(fields[21]) * PAGE_KIB


def tree_rss_kib(root: int, include_root: bool) -> int:
    """Summed RSS of ``root``'s descendants (and of ``root`` itself if asked)."""
    rss: dict[int, int] = {}
    children: dict[int, list[int]] = {}
    for pid, ppid, kib in proc_table():
        rss[pid] = kib
        children.setdefault(ppid, []).append(pid)
    total = rss.get(root, 0) if include_root else 0
    todo = list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, ()))
    return total


@dataclass
class TreeSampler:
    """Samples a process tree's summed RSS in a thread until stopped; keeps the peak."""

    root: int
    include_root: bool
    interval: float
    peak_kib: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> TreeSampler:
        if self.interval > 0:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, tree_rss_kib(self.root, self.include_root))
            self._stop.wait(self.interval)


@dataclass
class Runner:
    """Runs a command once; measures wall time, largest-process and tree peak RSS.

    With GNU time the command is started by ``time -f %M``, a ~1 MiB C process
    whose own wait4() on the command gives its true peak RSS (and which is left out
    of the tree sum). Without it we use our own os.wait4(), whose ru_maxrss cannot
    go below this Python process's RSS (``floor_kib``, measured on ``true``).
    """

    workdir: Path
    timeout: float
    interval: float = 0.02
    time_bin: str | None = field(default_factory=gnu_time)
    floor_kib: int = 0

    def __post_init__(self) -> None:
        if self.time_bin is None:
            self.floor_kib = self.run(["true"], self.workdir / "stderr-true.txt")[0].rss_kib

    @property
    def method(self) -> str:
        if self.time_bin:
            return f"GNU time %M ({self.time_bin}): wait4 in a small C launcher"
        floor = f"{self.floor_kib / 1024:.1f} MiB"
        return f"os.wait4 in the harness; a value <= {floor} means 'at most {floor}'"

    @property
    def tree_method(self) -> str:
        if self.interval <= 0:
            return "not sampled (--sample-ms 0)"
        return (
            f"sum of /proc/<pid>/stat RSS over the process tree, sampled every "
            f"{self.interval * 1000:g} ms; shared pages count once per process"
        )

    def run(self, argv: list[str], stderr_path: Path) -> tuple[Run, int]:
        """The run's figures and the command's exit code."""
        rss_file = self.workdir / "rss.txt"
        prefix = [self.time_bin, "-f", "%M", "-o", str(rss_file)] if self.time_bin else []
        rss_file.unlink(missing_ok=True)
        reset_own_peak_rss()
        with stderr_path.open("wb") as err:
            started = time.perf_counter()
            proc = subprocess.Popen(
                [*prefix, *argv],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,  # so a timeout can kill the launcher and the tool
            )
            killer = threading.Timer(self.timeout, os.killpg, (proc.pid, signal.SIGKILL))
            killer.start()
            with TreeSampler(proc.pid, include_root=not prefix, interval=self.interval) as sampler:
                _, status, usage = os.wait4(proc.pid, 0)  # rusage of this very child
            elapsed = time.perf_counter() - started
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        rss_kib = usage.ru_maxrss
        if self.time_bin:
            lines = rss_file.read_text().split() if rss_file.exists() else []
            rss_kib = int(lines[-1]) if lines and lines[-1].isdigit() else -1
        return Run(elapsed, rss_kib, sampler.peak_kib), proc.returncode


def measure(tools: list[Tool], repeat: int, warmup: int, runner: Runner, keep_outputs: bool) -> None:
    """Interleave the tools round by round; the warm-up rounds are not recorded.

    Outputs are deleted after every run (a 5M-packet copy is 2.8 GB), except that
    the last round's are counted first, and kept with ``keep_outputs``.
    """
    rounds = warmup + repeat
    for rnd in range(rounds):
        label = f"warm-up {rnd + 1}" if rnd < warmup else f"round {rnd - warmup + 1}/{repeat}"
        for tool in tools:
            if tool.failed:
                continue
            stderr_path = runner.workdir / f"stderr-{tool.label}.txt"
            remove_output(tool.output)
            run, code = runner.run(tool.argv, stderr_path)
            if code != 0 or not tool.output.exists():
                tail = stderr_path.read_text(errors="replace").strip().splitlines()[-5:]
                why = f"timed out after {runner.timeout:g}s" if run.seconds >= runner.timeout else ""
                tool.failed = (why or f"exit {code}") + ": " + " | ".join(tail)
                remove_output(tool.output)
                print(f"FAIL {tool.label}: {shlex.join(tool.argv)}\n  {tool.failed}", file=sys.stderr)
                continue
            print(
                f"{label:>12}  {tool.label:<22} {run.seconds:8.3f}s  {run.rss_kib / 1024:8.1f} MiB"
                f"  tree {run.tree_kib / 1024:8.1f} MiB",
                file=sys.stderr,
            )
            if rnd >= warmup:
                tool.runs.append(run)
            last = rnd == rounds - 1
            if last:
                tool.output_bytes = tool.output.stat().st_size
                tool.output_packets = count_packets(tool.output)
            if not (last and keep_outputs):
                remove_output(tool.output)


def remove_output(output: Path) -> None:
    """The output and anything written beside it (anontrace's labels, flows, report...)."""
    output.unlink(missing_ok=True)
    for sidecar in output.parent.glob(output.name + ".*"):
        sidecar.unlink(missing_ok=True)
