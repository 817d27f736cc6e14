"""Scaling: packets/s and peak memory against trace size, and an SVG plot of it.

Time is linear in packets when the largest trace's median time over the
smallest's lies within 10% of their packet ratio (4.5..5.5 for 5M over 1M);
memory is flat when the two peaks differ by at most 10%. The plot is written by
hand (no plotting library): one polyline per tool, x on a log scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape

from bench_report import MEMORY_LIMIT_MIB, fmt, memory_mib

LINEAR_TOLERANCE = 0.10  # time ratio within packet ratio * (1 +- this)
MEMORY_TOLERANCE = 0.10  # |peak(largest) / peak(smallest) - 1| <= this
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf")


def by_tool(results: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each tool's measured results, smallest trace first (failed runs left out)."""
    tools: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        if r["median_s"]:
            tools.setdefault(r["name"], []).append(r)
    return {name: sorted(rs, key=lambda r: r["packets"]) for name, rs in tools.items()}


def scaling_summary(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per tool: time ratio largest/smallest against the packet ratio, memory drift."""
    summary = []
    for name, rs in by_tool(results).items():
        if len(rs) < 2:
            continue
        small, large = rs[0], rs[-1]
        packet_ratio = large["packets"] / small["packets"]
        time_ratio = large["median_s"] / small["median_s"]
        band = (packet_ratio * (1 - LINEAR_TOLERANCE), packet_ratio * (1 + LINEAR_TOLERANCE))
        mem_small, mem_large = memory_mib(small), memory_mib(large)
        drift = mem_large / mem_small - 1 if mem_small and mem_large is not None else None
        worst = max((m for m in map(memory_mib, rs) if m is not None), default=None)
        summary.append(
            {
                "tool": name,
                "packets": [small["packets"], large["packets"]],
                "packet_ratio": packet_ratio,
                "time_ratio": time_ratio,
                "linear_band": list(band),
                "linear": "PASS" if band[0] <= time_ratio <= band[1] else "FAIL",
                "memory_mib": [mem_small, mem_large],
                "memory_drift": drift,
                "memory_flat": "-" if drift is None else "PASS" if abs(drift) <= MEMORY_TOLERANCE else "FAIL",
                "peak_memory_mib": worst,
                "memory_limit": "-" if worst is None else "PASS" if worst <= MEMORY_LIMIT_MIB else "FAIL",
            }
        )
    return summary


def size_rows(results: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    columns = ["tool", "packets", "median s", "packets/s", "peak RSS MiB", "tree RSS MiB"]
    rows = [
        [
            r["name"],
            f"{r['packets']:,}",
            "FAILED" if r["failed"] else fmt(r["median_s"], ".3f"),
            fmt(r["packets_per_s"], ",.0f"),
            fmt(r["peak_rss_mib"], ".1f"),
            fmt(r["peak_tree_rss_mib"], ".1f"),
        ]
        for r in sorted(results, key=lambda r: (r["name"], r["packets"]))
    ]
    return columns, rows


def summary_rows(summary: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    columns = ["tool", "time ratio", "linear band", "linear", "memory MiB", "drift", "flat", "<= 256 MiB"]
    rows = [
        [
            s["tool"],
            f"{s['time_ratio']:.2f} (packets x{s['packet_ratio']:g})",
            "{:.2f}..{:.2f}".format(*s["linear_band"]),
            s["linear"],
            " -> ".join(fmt(m, ".1f") for m in s["memory_mib"]),
            fmt(None if s["memory_drift"] is None else s["memory_drift"] * 100, "+.1f") + " %",
            s["memory_flat"],
            s["memory_limit"],
        ]
        for s in summary
    ]
    return columns, rows


# -- SVG -------------------------------------------------------------------------
WIDTH, HEIGHT = 720, 440
LEFT, RIGHT, TOP, BOTTOM = 100, 160, 40, 60


def scaling_svg(results: list[dict[str, Any]], title: str) -> str:
    """Packets/s (y, linear from 0) against packet count (x, log scale), one line per tool."""
    series = {name: [(r["packets"], r["packets_per_s"]) for r in rs] for name, rs in by_tool(results).items()}
    xs = sorted({x for points in series.values() for x, _ in points}) or [1]
    y_max = max((y for points in series.values() for _, y in points), default=1.0) * 1.1
    lo, hi = math.log10(xs[0]), math.log10(xs[-1])
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    lo, hi = lo - (hi - lo) * 0.05, hi + (hi - lo) * 0.05
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (math.log10(x) - lo) / (hi - lo) * plot_w

    def py(y: float) -> float:
        return TOP + plot_h - y / y_max * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2:.1f}" y="22" text-anchor="middle" font-size="14">{escape(title)}</text>',
        *axes(xs, y_max, px, py),
    ]
    for i, (name, points) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"/>')
        parts += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{color}"/>' for x, y in points]
        legend_y = TOP + 10 + 20 * i
        parts.append(
            f'<line x1="{WIDTH - RIGHT + 15}" y1="{legend_y}" x2="{WIDTH - RIGHT + 40}" y2="{legend_y}" '
            f'stroke="{color}" stroke-width="2"/>'
        )
        parts.append(f'<text x="{WIDTH - RIGHT + 46}" y="{legend_y + 4}">{escape(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def axes(
    xs: list[int], y_max: float, px: Callable[[float], float], py: Callable[[float], float]
) -> list[str]:
    """Frame, y grid at round packets/s values, x ticks at the measured sizes."""
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    frame = f'x="{LEFT}" y="{TOP}" width="{right - LEFT}" height="{bottom - TOP}"'
    parts = [f'<rect {frame} fill="none" stroke="black"/>']
    step = nice_step(y_max / 5)
    for k in range(int(y_max / step) + 1):
        y = py(k * step)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{k * step:,.0f}</text>')
    for x in xs:
        parts.append(
            f'<line x1="{px(x):.1f}" y1="{bottom}" x2="{px(x):.1f}" y2="{bottom + 5}" stroke="#000"/>'
        )
        parts.append(f'<text x="{px(x):.1f}" y="{bottom + 18}" text-anchor="middle">{x:,}</text>')
    x_title = "packets in trace (log scale)"
    parts.append(
        f'<text x="{(LEFT + right) / 2:.1f}" y="{HEIGHT - 15}" text-anchor="middle">{x_title}</text>'
    )
    parts.append(
        f'<text x="18" y="{(TOP + bottom) / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 18 {(TOP + bottom) / 2:.1f})">packets/s (median)</text>'
    )
    return parts


def nice_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten, at least ``raw``."""
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
