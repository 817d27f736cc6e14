"""The leakage report's one-screen summary for the terminal: the verdict first, then a line per figure.

It is what a person running `scrub` or `report` reads before deciding to open the HTML page, so
it says whether the trace passed and why not, and leaves tables to the page. Every value is
handed to rich as `Text`, never as markup: a file name like `cap[red].pcap` stays as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from anontrace.leakage.gates import value_at

GATES_SHOWN = 5
NOT_MEASURED = "not measured"


def _n(value: Any) -> str:
    if value is None:
        return NOT_MEASURED
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{int(value):,}"


def _unique(section: Mapping[str, Any] | None) -> str:
    if section is None:
        return NOT_MEASURED
    fraction = section.get("unique_fraction") or 0.0
    return f"{_n(section.get('unique'))} of {_n(section.get('hosts'))} ({fraction:.0%})"


def _gates(report: Mapping[str, Any]) -> list[tuple[str, Text]]:
    gates = report.get("gates") or []
    failed = [g for g in gates if not g.get("passed")]
    rows = [("gates", Text(f"{len(gates)} set, {len(failed)} failed" if gates else "none set"))]
    for gate in failed[:GATES_SHOWN]:
        value = gate.get("value")
        said = f"{NOT_MEASURED} (limit {_n(gate.get('limit'))})" if value is None else \
            f"{_n(value)} > {_n(gate.get('limit'))}"
        rows.append((f"  failed: {gate.get('figure')}", Text(f"{said}  [{gate.get('source')}]", style="red")))
    if len(failed) > GATES_SHOWN:
        rows.append(("  ...", Text(f"{len(failed) - GATES_SHOWN} more failed gates", style="red")))
    return rows


def _residual(residual: Mapping[str, Any] | None) -> list[tuple[str, Text]]:
    if residual is None:
        return [("residual identifiers", Text(f"{NOT_MEASURED} (needs the original capture)"))]
    total = residual.get("total", 0)
    if total == 0:
        found = Text("0 found", style="bold green")
    else:
        kinds = ", ".join(f"{kind} {n:,}" for kind, n in (residual.get("by_kind") or {}).items() if n)
        found = Text(f"{total:,} occurrences, {_n(residual.get('distinct'))} distinct ({kinds})",
                     style="bold red")
    return [("residual identifiers", found),
            ("  kept by the rules", Text(_n(residual.get("kept_by_rule", 0))))]


def _coverage(coverage: Mapping[str, Any] | None) -> list[tuple[str, Text]]:
    if coverage is None:
        return [("coverage", Text(NOT_MEASURED))]

    def top(*keys: str) -> str:
        reasons = [(n, r) for key in keys for r, n in (coverage.get(key) or {}).items()]
        return f" (most: {max(reasons)[1]})" if reasons else ""

    return [("frames in / out", Text(f"{_n(coverage.get('frames_in'))} / {_n(coverage.get('frames_out'))}")),
            ("frames cut", Text(_n(coverage.get("frames_cut")) + top("cut_by_dissector", "cut_by_rules"))),
            ("frames dropped", Text(_n(coverage.get("frames_dropped")) + top("dropped")))]


def _risk(risk: Mapping[str, Any] | None) -> list[tuple[str, Text]]:
    rows = []
    for key, name in (("fingerprints", "unique fingerprints"), ("services", "unique service sets")):
        section = value_at(risk, key)
        rows.append((name, Text(f"{_unique(section)}, original {_unique(value_at(section, 'original'))}"
                                if section is not None else NOT_MEASURED)))
    for family in ("ipv4", "ipv6"):
        disclosure = value_at(risk, f"prefix_disclosure.{family}")
        rows.append((f"{family} bits revealed", Text(NOT_MEASURED if disclosure is None else
                     f"mean {_n(disclosure.get('mean_bits'))}, max {_n(disclosure.get('max_bits'))} "
                     f"({_n(disclosure.get('known_hosts'))} known hosts)")))
    skew, scans, timing = (value_at(risk, key) for key in ("clock_skew", "scans", "timing"))
    rows.append(("clock skew exposed", Text(NOT_MEASURED if skew is None else
                 f"{_n(skew.get('exposed_hosts'))} of {_n(skew.get('hosts_with_timestamps'))} hosts")))
    rows.append(("scan sweeps", Text(NOT_MEASURED if scans is None else
                 f"{_n(scans.get('sweeps'))}, {_n(scans.get('addresses_exposed'))} addresses exposed")))
    rows.append(("timing", Text(NOT_MEASURED if timing is None else
                 f"correlation {_n(timing.get('interarrival_correlation'))}, "
                 f"{_n(timing.get('periodic_exposed'))} periodic flows exposed")))
    return rows


def _utility(utility: Mapping[str, Any] | None) -> list[tuple[str, Text]]:
    before, after = value_at(utility, "original"), value_at(utility, "anonymized")

    def change(path: str) -> Text:
        was = "" if before is None else f"{_n(value_at(before, path))} -> "
        return Text(NOT_MEASURED if after is None else was + _n(value_at(after, path)))

    kept = value_at(utility, "flows_kept_fraction")
    flows = change("flows")
    if kept is not None:
        flows.append(f" ({kept:.0%} kept)")
    return [("flows", flows), ("packets", change("packets")), ("bytes", change("bytes")),
            ("median packets per flow", change("packets_per_flow.median")),
            ("median flow duration (s)", change("duration_s.median"))]


def summary(report: Mapping[str, Any], console: Console) -> None:
    """Print the report's summary (about 25 lines) on `console`."""
    passed = bool(report.get("passed"))
    verdict = Text("PASSED" if passed else "FAILED", style="bold green" if passed else "bold red")
    table = Table(title=Text.assemble("leakage report: ", verdict, f"  ({report.get('mode')})"),
                  show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    rows = (_gates(report) + _residual(report.get("residual")) + _coverage(report.get("coverage"))
            + _risk(report.get("risk")) + _utility(report.get("utility")))
    for name, value in rows:
        table.add_row(Text(name), value)
    console.print(table)
