"""The JSON Schema and docs/rules.md are generated from the declarations and stay in step."""

from __future__ import annotations

import dataclasses
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest
import yaml

from anontrace.leakage.gates import FIGURES
from anontrace.rules.compile import profile_names, read_rules
from anontrace.rules.schema import reference, schema
from anontrace.transforms import registry

DOCS = Path(__file__).resolve().parents[2] / "docs" / "rules.md"
EXAMPLES = Path(__file__).resolve().parents[2] / "rules" / "examples"


def test_docs_rules_md_is_up_to_date() -> None:
    assert DOCS.read_text(encoding="utf-8") == reference(), \
        "docs/rules.md is stale: run `anontrace rules docs > docs/rules.md`"


def test_reference_documents_every_setting_of_every_transform() -> None:
    text = reference()
    for name, transform in registry().items():
        assert f"## `{name}`" in text
        for field in dataclasses.fields(transform.Config):
            assert f"| `{field.name}` |" in text


def test_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())


@pytest.mark.parametrize("profile", profile_names())
def test_shipped_profiles_validate_against_the_schema(profile: str) -> None:
    text = files("anontrace.profiles").joinpath(f"{profile}.yaml").read_text(encoding="utf-8")
    jsonschema.validate(yaml.safe_load(text), schema())


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_validate_against_the_schema_and_the_validator(example: Path) -> None:
    jsonschema.validate(yaml.safe_load(example.read_text(encoding="utf-8")), schema())
    read_rules(str(example))


def test_reference_documents_labels_report_and_every_figure() -> None:
    text = reference()
    assert "**`labels:`**" in text and "**`report: fail_on:`**" in text
    assert all(f"`{name}`" in text for name in FIGURES)


@pytest.mark.parametrize("document", [
    {"version": 2},
    {"version": 1, "labels": [{"when": {"port": 53}}]},
    {"version": 1, "labels": [{"label": "dns"}]},
    {"version": 1, "labels": [{"when": {"port": 53}, "label": "a\nb"}]},
    {"version": 1, "labels": [{"when": {"port": 53}, "label": " "}]},
    {"version": 1, "labels": [{"when": {"port": 53}, "label": "x" * 201}]},
    {"version": 1, "labels": [{"default": "x", "label": "y"}]},
    {"version": 1, "labels": {"default": "x"}},
    {"version": 1, "report": {"fail_on": {"residual.totl": 0}}},
    {"version": 1, "report": {"fail_on": {"residual.total": "0"}}},
    {"version": 1, "report": {"fail-on": {"residual.total": 0}}},
    {"version": 1, "steps": [{"use": "ip", "kep": []}]},
    {"version": 1, "steps": [{"use": "nope"}]},
    {"version": 1, "steps": [{"use": "payload", "keep": -1}]},
    {"version": 1, "steps": [{"use": "names", "policy": "scramble"}]},
    {"version": 1, "steps": [{"use": "payload", "when": {"port": 70000}}]},
    {"version": 1, "key": "00"},
])
def test_schema_refuses_what_the_validator_refuses(document: dict[str, object]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema())
