"""YAML loading with line:col marks; aliases, duplicate keys and syntax errors refused."""

from __future__ import annotations

import pytest

from anontrace.errors import RuleError
from anontrace.rules.document import load


def test_marks_values_and_keys() -> None:
    document = load("version: 1\nsteps:\n  - use: ip\n    keep: []\n", "r.yaml")
    assert document.value == {"version": 1, "steps": [{"use": "ip", "keep": []}]}
    assert document.where(("steps", 0, "keep")) == "r.yaml:4:11"
    assert document.where(("steps", 0, "keep"), key=True) == "r.yaml:4:5"
    assert document.where(("steps", 0, "missing")) == "r.yaml:3:5"


def test_syntax_error_is_located() -> None:
    with pytest.raises(RuleError) as error:
        load("version: 1\nsteps: [\n", "bad.yaml")
    assert error.value.where.startswith("bad.yaml:3:")
    assert "not valid YAML" in error.value.what


def test_duplicate_key_is_refused() -> None:
    with pytest.raises(RuleError) as error:
        load("version: 1\nversion: 2\n", "dup.yaml")
    assert error.value.where == "dup.yaml:2:1"
    assert "appears twice (first at dup.yaml:1:1)" in error.value.what


def test_aliases_are_refused_before_expansion() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(20)
    )
    with pytest.raises(RuleError) as error:
        load(bomb, "bomb.yaml")
    assert "aliases are not allowed" in error.value.what


def test_empty_document() -> None:
    assert load("", "empty.yaml").value is None


def test_times_stay_text() -> None:
    from anontrace.rules.document import load

    assert load("origin: 2000-01-01T00:00:00Z\n", "r.yaml").value == {"origin": "2000-01-01T00:00:00Z"}
