#!/usr/bin/env python3
"""Wall-time and memory benchmark: ``anontrace scrub`` against peer tools.

All tools run as subprocesses on the same synthetic trace (see make_trace.py)
in the same invocation, interleaved round by round (A B C A B C ...), so that
machine noise hits every tool alike. anontrace runs twice per round, with one
and with two workers (``anontrace-1``, ``anontrace-2``) when ``scrub`` has
``--workers``. Reported per tool: median wall time, packets/s, MB/s of input,
peak RSS of the largest process and of the whole process tree, the time ratios
to anontrace, and the issue's targets as PASS/FAIL.

    python benchmarks/bench_scrub.py --packets 1000000
    python benchmarks/bench_scrub.py --packets 20000 --repeat 3 --anontrace "python -m anontrace"
    python benchmarks/bench_scrub.py --scaling 1000000,5000000

Nothing is installed by this script: a missing tool is skipped with a hint.
Benchmarks are not tests and never run in the test suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

from bench_measure import Runner, measure
from bench_report import add_ratios, check_targets, machine_info, print_comparison, print_table, summarize
from bench_scaling import scaling_summary, scaling_svg, size_rows, summary_rows
from bench_tools import ToolSpec, peer_specs, setup_anontrace
from bench_trace import HERE, ensure_trace


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(part.replace("_", "")) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma list of packet counts: {text!r}") from None
    if len(sizes) < 2 or sizes[0] < 1:
        raise argparse.ArgumentTypeError(f"need at least two distinct packet counts >= 1, got {text!r}")
    return sizes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000, help="trace size")
    parser.add_argument(
        "--scaling",
        type=parse_sizes,
        default=None,
        metavar="N,M,...",
        help="scaling mode: run anontrace on a trace of each size, e.g. 1000000,5000000",
    )
    parser.add_argument("--scaling-peers", action="store_true", help="in scaling mode, run the peers too")
    parser.add_argument("--seed", type=int, default=1, help="trace generator seed")
    parser.add_argument("--repeat", type=int, default=5, help="measured rounds (median)")
    parser.add_argument("--warmup", type=int, default=1, help="unrecorded rounds first")
    parser.add_argument("--workdir", type=Path, default=HERE / ".work")
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="results file (default WORKDIR/results.json, or WORKDIR/scaling.json with --scaling)",
    )
    parser.add_argument(
        "--anontrace",
        default="anontrace",
        help="command to run anontrace, e.g. 'python -m anontrace'",
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    parser.add_argument("--sample-ms", type=float, default=20.0, help="tree RSS sampling period (0: off)")
    parser.add_argument("--keep-outputs", action="store_true", help="keep the tools' last outputs")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0 or args.packets < 1 or args.sample_ms < 0:
        parser.error("need --repeat >= 1, --warmup >= 0, --packets >= 1, --sample-ms >= 0")
    if args.scaling_peers and not args.scaling:
        parser.error("--scaling-peers needs --scaling")
    return args


def tool_specs(args: argparse.Namespace, workdir: Path, peers: bool) -> tuple[list[ToolSpec], bool]:
    """The specs to run, and whether anontrace has --workers."""
    anon = setup_anontrace(args.anontrace, workdir)
    specs = anon.specs() if anon else []
    if peers:
        specs += peer_specs(workdir)
    return specs, bool(anon and anon.has_workers)


def run_all(
    args: argparse.Namespace, workdir: Path, specs: list[ToolSpec], sizes: list[int]
) -> tuple[list[dict[str, Any]], Runner, list[dict[str, Any]]]:
    """Every spec on every size, interleaved; (results, runner, traces as JSON)."""
    traces = [ensure_trace(workdir, n, args.seed) for n in sizes]
    tools = [spec.bind(trace, workdir) for trace in traces for spec in specs]
    runner = Runner(workdir, args.timeout, interval=args.sample_ms / 1000)
    measure(tools, args.repeat, args.warmup, runner, args.keep_outputs)
    return [summarize(t) for t in tools], runner, [t.as_json() for t in traces]


def report_header(args: argparse.Namespace, runner: Runner, has_workers: bool) -> dict[str, Any]:
    return {
        "machine": machine_info(),
        "repeat": args.repeat,
        "warmup": args.warmup,
        "anontrace_has_workers": has_workers,
        "rss_method": runner.method,
        "tree_rss_method": runner.tree_method,
    }


def compare(
    args: argparse.Namespace, workdir: Path, specs: list[ToolSpec], has_workers: bool
) -> tuple[dict[str, Any], bool]:
    """Tools side by side on one trace: timing table, targets table; (report, all ran)."""
    results, runner, traces = run_all(args, workdir, specs, [args.packets])
    anons = add_ratios(results)
    targets = check_targets(results)
    print_comparison(results, targets, anons)
    print(f"peak RSS: {runner.method}.\ntree RSS: {runner.tree_method}.")
    report = report_header(args, runner, has_workers)
    report |= {"trace": traces[0], "tools": results, "targets": targets}
    return report, all(not r["failed"] for r in results)


def scaling(
    args: argparse.Namespace, workdir: Path, specs: list[ToolSpec], has_workers: bool
) -> tuple[dict[str, Any], bool]:
    """anontrace (and optionally the peers) on each size: rates, linearity, memory, plot."""
    results, runner, traces = run_all(args, workdir, specs, args.scaling)
    summary = scaling_summary(results)
    sizes = ", ".join(f"{n:,}" for n in args.scaling)
    print_table(f"scaling: {sizes} packets, median of {args.repeat} runs", *size_rows(results))
    print_table("linear time, flat memory (largest trace vs smallest)", *summary_rows(summary))
    print("time ratio = median time on the largest trace / on the smallest; linear within 10%")
    print("of the packet ratio. Memory = tree peak (never below the largest process's), MiB.")
    svg_path = workdir / "scaling.svg"
    svg = scaling_svg(results, f"anontrace scrub: packets/s against trace size ({args.repeat} runs)")
    ElementTree.fromstring(svg)  # refuse to write a plot that does not parse
    svg_path.write_text(svg)
    print(f"plot written to {svg_path}")
    report = report_header(args, runner, has_workers)
    report |= {"traces": traces, "tools": results, "scaling": summary, "plot": str(svg_path)}
    return report, all(not r["failed"] for r in results)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    specs, has_workers = tool_specs(args, workdir, peers=not args.scaling or args.scaling_peers)
    if not specs:
        print("nothing to benchmark: no tool available", file=sys.stderr)
        return 1
    run = scaling if args.scaling else compare
    report, ok = run(args, workdir, specs, has_workers)
    default = "scaling.json" if args.scaling else "results.json"
    json_path: Path = args.json or workdir / default
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results written to {json_path}")
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
