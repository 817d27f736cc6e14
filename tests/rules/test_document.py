"""YAML loading with line:col marks; aliases, duplicate keys and syntax errors refused."""

from __future__ import annotations

import pytest

from anontrace.errors import RuleError
from anontrace.rules.document import MAX_NESTING, load


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
        load(bomb, "bomb.yaml")  # expanded, it would hold 9 * 3**20 items
    assert "aliases are not allowed" in error.value.what
    assert error.value.where == "bomb.yaml:2:8"  # the first alias, where it is written


def test_empty_document() -> None:
    assert load("", "empty.yaml").value is None


def test_times_stay_text() -> None:
    from anontrace.rules.document import load

    assert load("origin: 2000-01-01T00:00:00Z\n", "r.yaml").value == {"origin": "2000-01-01T00:00:00Z"}


# Found by fuzzing (fuzz/rules.py) and the resource-bomb review of issue 7: each of these raised
# something other than RuleError (ReaderError, RecursionError, ValueError, OverflowError).


def test_a_character_yaml_forbids_is_located() -> None:
    with pytest.raises(RuleError) as error:
        load("version: 1\nsteps:\x08\n", "r.yaml")
    assert error.value.where == "r.yaml:2:7" and "U+0008 is not allowed" in error.value.what


def test_nesting_up_to_the_limit_loads_and_deeper_is_refused_where_it_goes_too_deep() -> None:
    value: list[object] = []
    for _ in range(MAX_NESTING - 1):
        value = [value]
    assert load("[" * MAX_NESTING + "]" * MAX_NESTING, "r.yaml").value == value
    with pytest.raises(RuleError) as error:
        load("[" * 100_000, "r.yaml")  # was RecursionError in PyYAML's composer
    assert error.value.where == f"r.yaml:1:{MAX_NESTING + 1}"
    assert f"nested more than {MAX_NESTING} deep" in error.value.what


@pytest.mark.parametrize("number", ["1" * 5000, "0x" + "f" * 4000, "0x1" + "0" * 16],
                         ids=["5000 digits", "16000 bits", "65 bits"])
def test_an_integer_wider_than_64_bits_is_refused_where_it_is_written(number: str) -> None:
    with pytest.raises(RuleError) as error:
        load(f"version: 1\nsteps:\n  - use: payload\n    keep: {number}\n", "r.yaml")
    assert error.value.where == "r.yaml:4:11" and "is too large" in error.value.what


def test_the_widest_integer_allowed_loads() -> None:
    assert load("keep: 0xffffffffffffffff\n", "r.yaml").value == {"keep": 2**64 - 1}


def test_a_key_that_looks_like_an_impossible_date_stays_text() -> None:
    assert load("2001-99-99: 1\n", "r.yaml").value == {"2001-99-99": 1}  # was ValueError: month


@pytest.mark.parametrize(("value", "kind"), [
    ("!!int", "int"),  # found by fuzz/rules.py as "\n!!int ": IndexError inside PyYAML
    ("!!int '-'", "int"), ("!!int 0x", "int"), ("!!float ''", "float"), ("!!bool maybe", "bool"),
])
def test_a_tagged_value_yaml_cannot_construct_is_refused_where_it_is_written(value: str, kind: str) -> None:
    with pytest.raises(RuleError) as error:
        load(f"version: 1\ndescription: {value}\n", "r.yaml")
    assert error.value.where == "r.yaml:2:14" and f"is not a valid {kind} value" in error.value.what
