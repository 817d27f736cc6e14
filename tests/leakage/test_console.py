"""The terminal summary fits one screen, leads with the verdict and failing gates, prints values as text."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from anontrace.leakage import console
from tests.leakage import sample_reports


def shown(report: dict[str, Any]) -> list[str]:
    screen = Console(file=io.StringIO(), width=100, record=True, color_system=None)
    console.summary(report, screen)
    return [line.rstrip() for line in screen.export_text().splitlines()]


def row(lines: list[str], name: str) -> str:
    """The value cell of the table row whose label is `name`."""
    found = [line.split("│")[2].strip() for line in lines if line.count("│") == 3
             and line.split("│")[1].strip() == name]
    assert len(found) == 1, (name, lines)
    return found[0]


def test_passed_pair_report() -> None:
    lines = shown(sample_reports.pair())
    assert len(lines) <= 30
    assert lines[0].strip() == "leakage report: PASSED  (pair)"
    assert row(lines, "gates") == "1 set, 0 failed"
    assert row(lines, "residual identifiers") == "0 found"
    assert row(lines, "kept by the rules") == "2"
    assert row(lines, "frames in / out") == "1,000 / 994"
    assert row(lines, "frames cut") == "204 (most: ipv4: protocol 20)"
    assert row(lines, "frames dropped") == "6 (most: filter: udp)"
    assert row(lines, "unique fingerprints") == "4 of 11 (36%), original 6 of 11 (55%)"
    assert row(lines, "ipv4 bits revealed") == "mean 12.5, max 30 (3 known hosts)"
    assert row(lines, "clock skew exposed") == "2 of 5 hosts"
    assert row(lines, "scan sweeps") == "1, 20 addresses exposed"
    assert row(lines, "timing") == "correlation 0.97, 2 periodic flows exposed"
    assert row(lines, "flows") == "20 -> 19 (95% kept)"
    assert row(lines, "bytes") == "900,000 -> 800,000"
    assert row(lines, "median flow duration (s)") == "0.4 -> 0.4"


def test_failing_report_lists_only_the_failing_gates() -> None:
    lines = shown(sample_reports.failing())
    assert len(lines) <= 30
    assert lines[0].strip() == "leakage report: FAILED  (pair)"
    assert row(lines, "gates") == "3 set, 2 failed"
    assert row(lines, "failed: residual.total") == "250 > 0  [rules.yaml:12:5]"
    assert row(lines, "failed: risk.timing.periodic_exposed") == "2 > 0  [--fail-on]"
    assert not [line for line in lines if "unique_fraction" in line]
    assert row(lines, "residual identifiers") == "250 occurrences, 250 distinct (ipv4 249, name 1)"


def test_anonymized_only_report_says_what_was_not_measured() -> None:
    lines = shown(sample_reports.anonymized_only())
    assert len(lines) <= 30
    assert row(lines, "gates") == "none set"
    assert row(lines, "residual identifiers") == "not measured (needs the original capture)"
    assert row(lines, "unique service sets") == "2 of 8 (25%), original not measured"
    assert row(lines, "timing") == "correlation not measured, 2 periodic flows exposed"
    assert row(lines, "flows") == "19"
    assert row(lines, "frames cut") == "0"


def test_many_failing_gates_still_fit_one_screen() -> None:
    report = sample_reports.failing()
    report["gates"] = [{"figure": f"risk.scans.sweeps{i}", "limit": 0, "value": i + 1, "passed": False,
                        "source": "--fail-on"} for i in range(9)]
    report["gates"][8]["value"] = None
    lines = shown(report)
    assert len(lines) <= 30
    assert row(lines, "gates") == "9 set, 9 failed"
    assert len([line for line in lines if "failed: risk.scans.sweeps" in line]) == 5
    assert row(lines, "failed: risk.scans.sweeps4") == "5 > 0  [--fail-on]"
    assert row(lines, "...") == "4 more failed gates"
    assert "failed: risk.scans.sweeps5" not in "\n".join(lines)


def test_a_gate_on_an_unmeasured_figure_says_so() -> None:
    report = sample_reports.anonymized_only()
    report["gates"] = [{"figure": "residual.total", "limit": 0, "value": None, "passed": False,
                        "source": "--fail-on"}]
    assert row(shown(report), "failed: residual.total") == "not measured (limit 0)  [--fail-on]"


def test_values_are_printed_as_text_not_markup() -> None:
    report = sample_reports.failing()
    report["gates"][0]["source"] = "[red]rules[/red].yaml:12:5"
    report["mode"] = "[bold]pair"
    lines = shown(report)
    assert row(lines, "failed: residual.total") == "250 > 0  [[red]rules[/red].yaml:12:5]"
    assert lines[0].strip() == "leakage report: FAILED  ([bold]pair)"


def test_null_sections_do_not_break_the_summary() -> None:
    report = sample_reports.anonymized_only()
    report.update(coverage=None, risk=None, utility=None, gates=None)
    lines = shown(report)
    for name in ("coverage", "unique fingerprints", "ipv6 bits revealed", "scan sweeps", "flows"):
        assert row(lines, name) == "not measured"
