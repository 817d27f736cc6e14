"""Rule-file validation: every mistake is refused with file:line:col and a way to fix it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from anontrace.errors import RuleError
from anontrace.keys import Key
from anontrace.rules.compile import parse_rules, profile_names, read_rules
from anontrace.transforms.ip import Ip
from anontrace.transforms.mac import Mac
from anontrace.transforms.names import Names
from anontrace.transforms.payload import Payload


def refused(text: str) -> RuleError:
    with pytest.raises(RuleError) as error:
        parse_rules(text, "r.yaml")
    return error.value


def test_shipped_default_profile() -> None:
    assert "default" in profile_names()
    rules = read_rules(None)
    assert [s.transform for s in rules.steps] == [Ip, Mac, Names, Payload]
    assert rules.source == "<default>"
    assert read_rules("default") == rules


def test_payload_is_cut_unless_a_step_keeps_it() -> None:
    rules = parse_rules("version: 1\nsteps:\n  - use: ip\n", "r.yaml")
    transforms = rules.build(Key(bytes(32)))
    assert isinstance(transforms[-1], Payload) and transforms[-1].config.keep == 0


def test_settings_are_typed_and_frozen() -> None:
    rules = parse_rules(
        "version: 1\nsteps:\n  - use: payload\n    keep: 64\n  - use: ip\n    keep: ['10.0.0.0/8']\n",
        "r.yaml",
    )
    assert rules.steps[0].config.keep == 64
    assert rules.steps[1].config.keep == ("10.0.0.0/8",)
    assert rules.steps[1].config.keep_prefix == Ip.Config().keep_prefix
    assert rules.steps[1].where == "r.yaml:5:5"


def test_unknown_key_with_did_you_mean() -> None:
    error = refused("version: 1\nsteps:\n  - use: payload\n    kep: 3\n")
    assert error.where == "r.yaml:4:5"
    assert error.what == "steps.0.kep: unknown key" and error.hint == "did you mean 'keep'?"


def test_unknown_top_level_key() -> None:
    error = refused("version: 1\nstep: []\n")
    assert (error.where, error.hint) == ("r.yaml:2:1", "did you mean 'steps'?")


def test_unknown_transform_lists_available() -> None:
    error = refused("version: 1\nsteps:\n  - use: ipp\n")
    assert error.where == "r.yaml:3:10"
    assert "unknown transform 'ipp'" in error.what and "available: ip, mac, names, payload" in error.hint


@pytest.mark.parametrize(
    "value,message",
    [
        ("'64'", "expected a whole number, got str '64'"),
        ("true", "expected a whole number, got bool True"),
        ("-1", "must be at least 0, got -1"),
    ],
)
def test_wrong_types_and_ranges(value: str, message: str) -> None:
    error = refused(f"version: 1\nsteps:\n  - use: payload\n    keep: {value}\n")
    assert error.where == "r.yaml:4:11" and error.what == f"steps.0.keep: {message}"


def test_bad_network_is_refused() -> None:
    error = refused("version: 1\nsteps:\n  - use: ip\n    keep: ['10.0.0.1/8']\n")
    assert error.where == "r.yaml:4:11" and "'10.0.0.1/8' is not a network" in error.what


def test_list_of_text_expected() -> None:
    error = refused("version: 1\nsteps:\n  - use: ip\n    keep: 10.0.0.0/8\n")
    assert "expected a list of text values" in error.what


@pytest.mark.parametrize(
    "text,where",
    [
        ("version: 1\nkey: 00ff\n", "r.yaml:2:1"),
        ("version: 1\nsteps:\n  - use: ip\n    key_file: /etc/k\n", "r.yaml:4:5"),
    ],
)
def test_keys_are_refused(text: str, where: str) -> None:
    error = refused(text)
    assert error.where == where and "keys do not belong in rule files" in error.what
    assert "--key-file" in error.hint


@pytest.mark.parametrize(
    "text,message",
    [
        ("steps: []\n", "`version: 1` is missing"),
        ("version: 2\nsteps: []\n", "version: unsupported version 2"),
        ("- use: ip\n", "a rule file is a mapping"),
        ("version: 1\nsteps: {use: ip}\n", "steps: must be a list"),
        ("version: 1\nsteps:\n  - ip\n", "a step is a mapping starting with `use: TRANSFORM`"),
        ("version: 1\nsteps:\n  - use: ip\n  - use: ip\n", "appears twice (first at r.yaml:3:5)"),
    ],
)
def test_structure_errors(text: str, message: str) -> None:
    assert message in refused(text).what


def test_unknown_profile_name_and_unreadable_path(tmp_path: Path) -> None:
    with pytest.raises(RuleError) as error:
        read_rules("strictest")
    assert "no such shipped rule file" in error.value.what and "default" in error.value.hint
    with pytest.raises(RuleError) as error:
        read_rules(str(tmp_path / "missing.yaml"))
    assert "cannot read rule file" in error.value.what


def test_rule_file_from_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("version: 1\nsteps:\n  - use: payload\n    keep: 8\n")
    assert read_rules(str(path)).steps[0].config.keep == 8


def test_identifier_transforms_run_even_when_a_rule_file_leaves_them_out() -> None:
    rules = parse_rules("version: 1\nsteps:\n  - use: payload\n    keep: 8\n", "r.yaml")
    transforms = rules.build(Key(bytes(32)))
    assert [type(t) for t in transforms] == [Ip, Mac, Names, Payload]
    assert transforms[-1].config.keep == 8


def test_names_policy_and_payload_mode_are_checked() -> None:
    with pytest.raises(RuleError, match="must be one of hash, keep, remove"):
        parse_rules("version: 1\nsteps:\n  - use: names\n    policy: scramble\n", "r.yaml")
    expected = re.escape("r.yaml:5:18: steps.0.identifiers: must be one of cut, rewrite")
    with pytest.raises(RuleError, match=expected):
        parse_rules("version: 1\nsteps:\n  - use: payload\n    keep: 9\n    identifiers: keep\n", "r.yaml")
