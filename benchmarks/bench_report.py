"""Results: per-tool summaries, time ratios, the issue's targets, and tables.

A target is a ratio of median wall times measured side by side (or a memory
peak) with a limit; it is PASS, FAIL, info (no limit), or skipped with the
reason (a tool missing, failed, or not measured).
"""

from __future__ import annotations

import os
import platform
import shlex
import statistics
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench_tools import Tool

MB = 1_000_000
MEMORY_LIMIT_MIB = 256.0
ISSUE_PACKETS = 1_000_000


def summarize(tool: Tool) -> dict[str, Any]:
    times = [run.seconds for run in tool.runs]
    median = statistics.median(times) if times else None
    trace = tool.trace
    return {
        "name": tool.name,
        "packets": trace.packets,
        "command": shlex.join(tool.argv),
        "does": tool.spec.does,
        "package": tool.spec.package,
        "version": tool.spec.version,
        "failed": tool.failed,
        "times_s": times,
        "median_s": median,
        "min_s": min(times) if times else None,
        "packets_per_s": trace.packets / median if median else None,
        "mb_per_s": trace.size / MB / median if median else None,
        "peak_rss_mib": max(run.rss_kib for run in tool.runs) / 1024 if tool.runs else None,
        "peak_tree_rss_mib": max(run.tree_kib for run in tool.runs) / 1024 if tool.runs else None,
        "output_bytes": tool.output_bytes,
        "output_packets": tool.output_packets,
    }


def memory_mib(result: dict[str, Any]) -> float | None:
    """The figure the memory target is checked on: the tree's sampled peak, never
    below the largest process's exact peak (a short spike can fall between samples)."""
    figures = [f for f in (result["peak_tree_rss_mib"], result["peak_rss_mib"]) if f is not None]
    return max(figures) if figures else None


def add_ratios(results: list[dict[str, Any]]) -> list[str]:
    """Add ``anontrace_over`` = {anontrace tool: its time / this tool's time} to every
    result (> 1: anontrace is slower); return the anontrace tools' names."""
    anons = [r for r in results if r["name"].startswith("anontrace") and r["median_s"]]
    for r in results:
        r["anontrace_over"] = {
            a["name"]: a["median_s"] / r["median_s"] if r["median_s"] else None for a in anons
        }
    return [a["name"] for a in anons]


# -- targets ---------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """``tool``'s time over ``peer``'s (or its memory when ``peer`` is None) <= ``limit``."""

    what: str
    tool: str
    peer: str | None
    limit: float | None  # None: reported for information
    aim: float | None = None


TARGETS = (
    Target("1 worker vs tcprewrite --seed=42 --fixcsum", "anontrace-1", "tcprewrite", 0.5),
    Target("2 workers vs pktanon (HMAC, payload cut)", "anontrace-2", "pktanon", 1.0, aim=0.8),
    Target("1 worker vs editcap -s 96", "anontrace-1", "editcap", 3.0),
    Target("2 workers vs editcap -s 96", "anontrace-2", "editcap", None),
    Target("peak memory MiB, 1 worker (tree)", "anontrace-1", None, MEMORY_LIMIT_MIB),
    Target("peak memory MiB, 2 workers (tree)", "anontrace-2", None, MEMORY_LIMIT_MIB),
)


def check_targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_name = {r["name"]: r for r in results}
    single = "anontrace-1" not in by_name and "anontrace" in by_name  # scrub without --workers
    return [
        check_target(replace(t, tool="anontrace") if single and t.tool == "anontrace-1" else t, by_name)
        for t in TARGETS
    ]


def check_target(target: Target, by_name: dict[str, dict[str, Any]]) -> dict[str, Any]:
    row: dict[str, Any] = {"target": target.what, "tool": target.tool, "peer": target.peer}
    row |= {"limit": target.limit, "aim": target.aim, "measured": None}
    names = [name for name in (target.tool, target.peer) if name]
    missing = [name for name in names if name not in by_name]
    failed = [name for name in names if name in by_name and not by_name[name]["median_s"]]
    if missing or failed:
        why = f"{missing[0]} missing" if missing else f"{failed[0]} failed"
        if target.tool in missing and target.tool == "anontrace-2":
            why = "anontrace-2 not run (no --workers)"
        return row | {"status": f"skipped: {why}"}
    tool = by_name[target.tool]
    if target.peer is None:
        measured = memory_mib(tool)
    else:
        measured = tool["median_s"] / by_name[target.peer]["median_s"]
    return row | {"measured": measured, "status": verdict(measured, target)}


def verdict(measured: float | None, target: Target) -> str:
    if target.limit is None:
        return "info"
    if measured is None:
        return "skipped: not measured"
    if measured > target.limit:
        return "FAIL"
    if target.aim is None:
        return "PASS"
    return f"PASS (aim {target.aim:g} {'met' if measured <= target.aim else 'missed'})"


# -- tables ----------------------------------------------------------------------
def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def timing_rows(results: list[dict[str, Any]], anons: list[str]) -> tuple[list[str], list[list[str]]]:
    columns = ["tool", "median s", "min s", "packets/s", "MB/s", "peak RSS MiB", "tree RSS MiB"]
    columns += [f"{a}/tool" for a in anons]
    rows = []
    for r in results:
        if r["failed"] or r["median_s"] is None:
            rows.append([r["name"], "FAILED", *["-"] * (len(columns) - 2)])
            continue
        rows.append(
            [
                r["name"],
                fmt(r["median_s"], ".3f"),
                fmt(r["min_s"], ".3f"),
                fmt(r["packets_per_s"], ",.0f"),
                fmt(r["mb_per_s"], ".1f"),
                fmt(r["peak_rss_mib"], ".1f"),
                fmt(r["peak_tree_rss_mib"], ".1f"),
                *(fmt(r["anontrace_over"].get(a), ".2f") for a in anons),
            ]
        )
    return columns, rows


def target_rows(targets: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    columns = ["target", "measure", "measured", "limit", "status"]
    rows = []
    for t in targets:
        measure = f"{t['tool']} MiB" if t["peer"] is None else f"{t['tool']} / {t['peer']}"
        limit = "-" if t["limit"] is None else f"<= {t['limit']:g}"
        rows.append([t["target"], measure, fmt(t["measured"], ".2f"), limit, t["status"]])
    return columns, rows


TEXT_COLUMNS = frozenset({"tool", "target", "measure", "status", "linear", "flat", "<= 256 MiB"})


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    """With rich if it is importable, else plain aligned text."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(columns)]
        print(title)
        for row in (columns, *rows):
            cells = zip(columns, row, widths, strict=True)
            print("  ".join(v.ljust(w) if c in TEXT_COLUMNS else v.rjust(w) for c, v, w in cells))
        return
    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="left" if col in TEXT_COLUMNS else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=None if sys.stdout.isatty() else 140).print(table)


def print_comparison(results: list[dict[str, Any]], targets: list[dict[str, Any]], anons: list[str]) -> None:
    packets = results[0]["packets"]
    title = f"anontrace scrub vs peers: {packets:,} packets, median of {len(results[0]['times_s'])} runs"
    print_table(title, *timing_rows(results, anons))
    print("anontrace-N/tool = anontrace's median time / the tool's (> 1: anontrace is slower).")
    print("peak RSS = largest process (wait4); tree RSS = sampled peak of the process tree's sum.")
    print("The tools do different work:")
    for r in results:
        print(f"  {r['name']:<12} {r['does']}")
    note = "" if packets == ISSUE_PACKETS else f"; the issue's targets are set on {ISSUE_PACKETS:,} packets"
    print_table(f"issue 6 targets ({packets:,} packets{note})", *target_rows(targets))
    print("Memory is checked on the tree's peak (never below the largest process's).")


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_model": None,
        "mem_total_kib": None,
    }
    for path, prefix, key in (
        ("/proc/cpuinfo", "model name", "cpu_model"),
        ("/proc/meminfo", "MemTotal", "mem_total_kib"),
    ):
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            continue
        value = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith(prefix)), None)
        info[key] = int(value.split()[0]) if key == "mem_total_kib" and value else value
    return info
