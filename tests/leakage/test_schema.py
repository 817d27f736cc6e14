"""The report schema is valid draft 2020-12, accepts reports shaped as the contract says, refuses others."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from anontrace.leakage import schema
from anontrace.leakage.gates import FIGURES
from tests.leakage import sample_reports

SAMPLES: dict[str, Callable[[], dict[str, Any]]] = {
    "pair": sample_reports.pair, "anonymized-only": sample_reports.anonymized_only,
    "failing": sample_reports.failing,
}
VALIDATOR = Draft202012Validator(schema.SCHEMA)


def errors(report: dict[str, Any]) -> list[str]:
    return [error.message for error in VALIDATOR.iter_errors(report)]


def test_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(schema.SCHEMA)
    assert schema.SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_schema_is_the_shipped_file_and_names_format_and_version() -> None:
    shipped = Path(schema.__file__).parent / schema.RESOURCE
    assert schema.load() == json.loads(shipped.read_text(encoding="utf-8")) == schema.SCHEMA
    assert schema.SCHEMA["properties"]["format"] == {"const": schema.FORMAT} == {"const": "anontrace-report"}
    assert schema.SCHEMA["properties"]["version"] == {"const": schema.VERSION} == {"const": 1}


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_reports_are_valid(name: str) -> None:
    assert errors(SAMPLES[name]()) == []


def _set(report: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(report)
    *parents, last = path.split(".")
    target = changed
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return changed


DELETE = object()
BROKEN = {
    "version 2": ("version", 2),
    "unknown mode": ("mode", "original-only"),
    "extra top-level key": ("extra", 1),
    "pair without residual": ("residual", None),
    "pair without original inputs": ("original", None),
    "timing without periodic_exposed": ("risk.timing.periodic_exposed", DELETE),
    "negative frame count": ("coverage.frames_in", -1),
    "unknown encoding": ("residual.by_encoding.base64", 1),
    "fraction above 1": ("risk.services.unique_fraction", 1.5),
    "correlation above 1": ("risk.timing.interarrival_correlation", 1.2),
    "gate value a string": ("gates.0.value", "0"),
    "histogram counts not integers": ("utility.anonymized.histograms.duration_s.counts", [0.5]),
    "created not a timestamp": ("created", "yesterday"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_reports_off_the_contract_are_refused(case: str) -> None:
    path, value = BROKEN[case]
    assert errors(_set(sample_reports.pair(), path, value))


def test_finding_with_unknown_kind_or_frame_zero_is_refused() -> None:
    report = sample_reports.failing()
    assert errors(_set(report, "residual.findings.0.kind", "email"))
    assert errors(_set(report, "residual.findings.0.frame", 0))
    assert errors(_set(report, "residual.findings.0.frame", None)) == []  # file metadata has no frame


def test_anonymized_only_report_must_leave_original_parts_null() -> None:
    report = sample_reports.anonymized_only()
    assert errors(_set(report, "residual", sample_reports.pair()["residual"]))
    assert errors(_set(report, "original", [{"path": "a.pcap", "frames": 1}]))
    assert errors(_set(report, "utility.original", sample_reports.pair()["utility"]["original"]))


def _resolve(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The non-null alternatives a schema node allows, with $refs followed."""
    if "$ref" in node:
        return _resolve(schema.SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]])
    if "anyOf" in node:
        return [found for option in node["anyOf"] for found in _resolve(option)
                if found.get("type") != "null"]
    return [node]


@pytest.mark.parametrize("figure", FIGURES)
def test_every_gate_figure_is_a_number_in_the_schema(figure: str) -> None:
    nodes = [schema.SCHEMA]
    for part in figure.split("."):
        nodes = [option["properties"][part] for node in nodes for option in _resolve(node)
                 if part in option.get("properties", {})]
        assert nodes, f"{figure}: no property {part!r}"
    kinds = {json.dumps(option.get("type")) for node in nodes for option in _resolve(node)}
    assert kinds <= {'"integer"', '"number"', '["number", "null"]'}, kinds


def test_docs_explain_every_section_and_the_version() -> None:
    text = (Path(__file__).parent.parent.parent / "docs" / "report.md").read_text(encoding="utf-8")
    risk = schema.SCHEMA["$defs"]["risk"]["properties"]
    for section in ["residual", "coverage", "utility", *risk]:
        assert f"(`{section}" in text, section
    assert f'"version"` (now {schema.VERSION})' in text
    assert "exits with code **3**" in text
