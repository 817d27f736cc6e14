"""Gates: a report figure above its limit, or not measured at all, fails."""

from __future__ import annotations

import pytest

from anontrace.errors import UsageError
from anontrace.leakage.gates import FIGURES, Gate, evaluate, figure, merge, parse_option

REPORT = {"residual": {"total": 2, "distinct": 1}, "risk": {"fingerprints": {"unique_fraction": 0.25},
                                                            "timing": {"interarrival_correlation": None}},
          "passed": True}


def test_figures_are_read_by_dotted_path() -> None:
    assert figure(REPORT, "residual.total") == 2
    assert figure(REPORT, "risk.fingerprints.unique_fraction") == 0.25
    assert figure(REPORT, "risk.timing.interarrival_correlation") is None
    assert figure(REPORT, "risk.services.unique") is None  # section absent
    assert figure(REPORT, "passed") is None  # a boolean is not a figure


def test_a_gate_fails_above_its_limit_and_when_not_measured() -> None:
    results = evaluate(REPORT, [Gate("residual.total", 2, "r.yaml:3:5"),
                                Gate("residual.distinct", 0, "--fail-on"),
                                Gate("risk.timing.interarrival_correlation", 1.0, "--fail-on")])
    assert [(r["value"], r["passed"]) for r in results] == [(2, True), (1, False), (None, False)]
    assert results[0]["source"] == "r.yaml:3:5"


def test_option_syntax() -> None:
    assert parse_option("residual.total=0") == Gate("residual.total", 0.0, "--fail-on")
    assert parse_option(" risk.fingerprints.unique_fraction = 0.5") == \
        Gate("risk.fingerprints.unique_fraction", 0.5, "--fail-on")
    for bad, message in (("residual.total", "FIGURE=LIMIT"), ("residual.totl=0", "unknown report figure"),
                         ("residual.total=none", "not a number"), ("residual.total=inf", "not a finite"),
                         ("residual.total=nan", "not a finite"),
                         ("residual.total=-Infinity", "not a finite")):
        with pytest.raises(UsageError, match=message):
            parse_option(bad)


def test_command_line_replaces_the_rule_files_gate_on_the_same_figure() -> None:
    rules = [Gate("residual.total", 0, "r.yaml:3:5"), Gate("risk.scans.sweeps", 0, "r.yaml:4:5")]
    merged = merge(rules, [Gate("residual.total", 5, "--fail-on")])
    assert merged == [Gate("risk.scans.sweeps", 0, "r.yaml:4:5"), Gate("residual.total", 5, "--fail-on")]


def test_every_figure_is_documented() -> None:
    assert all(description for description in FIGURES.values())
    assert all(name.count(".") >= 1 for name in FIGURES)
