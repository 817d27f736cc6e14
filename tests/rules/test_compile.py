"""Rule-file validation: every mistake is refused with file:line:col and a way to fix it."""

from __future__ import annotations

import os
import re
import signal
from importlib.resources import files
from pathlib import Path

import pytest

from anontrace.errors import RuleError
from anontrace.keys import Key
from anontrace.leakage.gates import Gate
from anontrace.rules.compile import MAX_RULE_FILE, PROFILES, Rules, parse_rules, profile_names, read_rules
from anontrace.transforms import registry
from anontrace.transforms.generalize import Generalize
from anontrace.transforms.ip import Ip
from anontrace.transforms.mac import Mac
from anontrace.transforms.names import Names
from anontrace.transforms.payload import Payload
from anontrace.transforms.scoped import Scoped


def refused(text: str) -> RuleError:
    with pytest.raises(RuleError) as error:
        parse_rules(text, "r.yaml")
    return error.value


def test_shipped_default_profile() -> None:
    assert "default" in profile_names()
    rules = read_rules(None)
    assert [s.transform for s in rules.steps] == [Ip, Mac, Names, Generalize, Payload]
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
    assert "unknown transform 'ipp'" in error.what
    assert f"available: {', '.join(registry())}" in error.hint


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
        ("version: 1\nsteps:\n  - use: ip\n  - use: ip\n", "appears twice (first at r.yaml:3:5"),
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


def test_when_scopes_a_step_and_the_first_match_wins(tmp_path: Path) -> None:
    rules = parse_rules(
        "version: 1\nsteps:\n"
        "  - use: payload\n    keep: 64\n    when: {protocol: udp, port: 53}\n"
        "  - use: payload\n    keep: 8\n    when: {network: 10.0.0.0/8, direction: outbound}\n", "r.yaml")
    assert [s.when is not None for s in rules.steps] == [True, True]
    assert rules.steps[0].when is not None and rules.steps[0].when.ports == (53,)
    assert rules.steps[0].locations == {"keep": "r.yaml:4:11"}
    payload = rules.build(Key(bytes(32)))[-1]
    assert isinstance(payload, Scoped) and len(payload.choices) == 3  # + the catch-all cut
    assert payload.choices[-1][0] is None and payload.choices[-1][1].config.keep == 0


@pytest.mark.parametrize(("text", "where", "what"), [
    ("  - use: ip\n    when: {port: 53}\n", "r.yaml:4:11", "takes no `when:`"),
    ("  - use: payload\n    keep: 1\n  - use: payload\n    keep: 2\n    when: {port: 1}\n",
     "r.yaml:5:10", "which applies to all traffic"),
    ("  - use: payload\n    when: {protocol: sctp}\n", "r.yaml:4:22", "unknown protocol 'sctp'"),
    ("  - use: payload\n    when: {port: 70000}\n", "r.yaml:4:18", "ports are whole numbers"),
    ("  - use: payload\n    when: {network: 10.0.0.1/8}\n", "r.yaml:4:21", "not a network"),
    ("  - use: payload\n    when: {direction: inbound}\n", "r.yaml:4:23", "relative to the `network`"),
    ("  - use: payload\n    when: {protocl: tcp}\n", "r.yaml:4:12", "did you mean 'protocol'"),
])
def test_bad_when_is_refused_with_its_location(text: str, where: str, what: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rules("version: 1\nsteps:\n" + text, "r.yaml")
    assert caught.value.where == where and what in caught.value.what + caught.value.hint


def test_extends_merges_setting_by_setting(tmp_path: Path) -> None:
    child = tmp_path / "child.yaml"
    child.write_text("version: 1\nextends: default\nsteps:\n  - use: payload\n    keep: 32\n"
                     "  - use: mac\n    keep_oui: true\n")
    rules = read_rules(str(child))
    by_name = {s.transform.name: s for s in rules.steps}
    assert by_name["payload"].config.keep == 32 and by_name["payload"].config.identifiers == "cut"
    assert by_name["mac"].config.keep_oui is True and by_name["mac"].config.keep_group is True
    assert by_name["mac"].locations["keep_oui"] == f"{child}:7:15"
    assert by_name["mac"].locations["keep_group"].startswith("<default>:")
    assert by_name["ip"].config == read_rules("default").steps[0].config


def test_extends_cycles_and_bad_targets_are_located(tmp_path: Path) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("version: 1\nextends: b.yaml\n")
    second.write_text("version: 1\nextends: a.yaml\n")
    with pytest.raises(RuleError) as caught:
        read_rules(str(first))
    assert "cycle" in caught.value.what and caught.value.where.endswith(":2:10")
    with pytest.raises(RuleError, match="is a directory"):
        read_rules(str(tmp_path))
    third = tmp_path / "c.yaml"
    third.write_text("version: 1\nextends: 3\n")
    with pytest.raises(RuleError, match="must name a shipped profile"):
        read_rules(str(third))


def test_links_across_runs_is_read() -> None:
    assert parse_rules("version: 1\nlinks_across_runs: true\n", "r.yaml").links_across_runs
    with pytest.raises(RuleError, match="true or false"):
        parse_rules("version: 1\nlinks_across_runs: 'yes'\n", "r.yaml")


LABELS = ("version: 1\nlabels:\n  - when: {network: 10.1.0.0/16, protocol: tcp}\n    label: database\n"
          "  - when: {port: 53}\n    label: dns\n  - default: other\n")


def test_labels_compile_in_order_with_their_default() -> None:
    labels = parse_rules(LABELS, "r.yaml").labels
    assert labels is not None and labels.default == "other"
    assert [(r.label, r.where) for r in labels.rules] == [("database", "r.yaml:3:5"), ("dns", "r.yaml:5:5")]
    first, second = (r.filter for r in labels.rules)
    assert (first.protocols, [str(n) for n in first.networks], first.ports) == (("tcp",), ["10.1.0.0/16"], ())
    assert (second.protocols, second.networks, second.ports) == ((), (), (53,))


def test_labels_and_gates_are_optional_and_the_constructor_keeps_its_order() -> None:
    rules = parse_rules("version: 1\nlabels: []\n", "r.yaml")
    assert rules.labels is None and rules.gates == ()
    only_default = parse_rules("version: 1\nlabels:\n  - default: everything\n", "r.yaml").labels
    assert only_default is not None and (only_default.rules, only_default.default) == ((), "everything")
    positional = Rules("s", "d", (), True, "ab")
    assert (positional.links_across_runs, positional.digest, positional.labels, positional.gates) == (
        True, "ab", None, ())


@pytest.mark.parametrize(("text", "where", "what"), [
    ("labels: {port: 53}\n", "2:9", "labels: must be a list"),
    ("labels:\n  - dns\n", "3:5", "a label item is a mapping"),
    ("labels:\n  - when: {port: 53}\n", "3:5", "`label:` is missing"),
    ("labels:\n  - label: dns\n", "3:5", "`when:` is missing"),
    ("labels:\n  - when: {port: 53}\n    lable: dns\n", "4:5", "did you mean 'label'?"),
    ("labels:\n  - when: {port: 53}\n    label: 53\n", "4:12", "a label is text, got int 53"),
    ("labels:\n  - when: {port: 53}\n    label: ''\n", "4:12", "non-empty"),
    ("labels:\n  - when: {port: 53}\n    label: '  '\n", "4:12", "non-empty"),
    ("labels:\n  - when: {port: 53}\n    label: \"a\\nb\"\n", "4:12", "one line"),
    ("labels:\n  - when: {port: 53}\n    label: \"a\\tb\"\n", "4:12", "control characters"),
    ("labels:\n  - when: {port: 53}\n    label: " + "x" * 201 + "\n", "4:12", "at most 200 characters"),
    ("labels:\n  - default: other\n    label: dns\n", "3:5", "nothing else"),
    ("labels:\n  - default: other\n  - when: {port: 53}\n    label: dns\n", "4:5", "must be last"),
    ("labels:\n  - default: [a]\n", "3:14", "a label is text"),
    ("labels:\n  - when: {network: 10.0.0.1/8}\n    label: x\n", "3:21", "not a network"),
    ("labels:\n  - when: {}\n    label: x\n", "3:11", "`when:` is a mapping"),
    ("report: [residual.total]\n", "2:9", "must be a mapping with `fail_on:`"),
    ("report:\n  fail-on: {residual.total: 0}\n", "3:3", "did you mean 'fail_on'?"),
    ("report:\n  fail_on: [residual.total]\n", "3:12", "must be a mapping of report figure"),
    ("report:\n  fail_on:\n    residual.totl: 0\n", "4:5", "did you mean 'residual.total'?"),
    ("report:\n  fail_on:\n    latency: 0\n", "4:5", "figures: residual.total, residual.distinct"),
    ("report:\n  fail_on:\n    residual.total: zero\n", "4:21", "the limit is a number, got 'zero'"),
    ("report:\n  fail_on:\n    residual.total: true\n", "4:21", "the limit is a number, got True"),
    ("report:\n  fail_on:\n    residual.total: .inf\n", "4:21", "the limit is a number, got inf"),
    ("report:\n  fail_on:\n    residual.total: .nan\n", "4:21", "the limit is a number, got nan"),
    ("report:\n  fail_on:\n    residual.total:\n", "4:20", "the limit is a number, got None"),
])
def test_bad_labels_and_report_sections_are_located(text: str, where: str, what: str) -> None:
    error = refused("version: 1\n" + text)
    assert error.where == f"r.yaml:{where}"
    assert what in f"{error.what} {error.hint}"


def test_gates_compile_with_the_location_of_their_figure() -> None:
    rules = parse_rules("version: 1\nreport:\n  fail_on:\n    residual.total: 0\n"
                        "    risk.fingerprints.unique_fraction: 0.25\n", "r.yaml")
    assert rules.gates == (Gate("residual.total", 0.0, "r.yaml:4:5"),
                           Gate("risk.fingerprints.unique_fraction", 0.25, "r.yaml:5:5"))
    assert all(type(g.limit) is float for g in rules.gates)
    assert parse_rules("version: 1\nreport: {}\n", "r.yaml").gates == ()


@pytest.mark.parametrize("name", ["default", "strict", "research"])
def test_shipped_profiles_gate_on_residual_identifiers(name: str) -> None:
    text = files(PROFILES).joinpath(f"{name}.yaml").read_text(encoding="utf-8").splitlines()
    line = text.index("    residual.total: 0") + 1
    assert read_rules(name).gates == (Gate("residual.total", 0.0, f"<{name}>:{line}:5"),)


def test_labels_and_report_inherit_or_replace_through_extends(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text("version: 1\nlabels:\n  - when: {port: 53}\n    label: dns\n"
                    "report:\n  fail_on: {residual.total: 0, risk.scans.sweeps: 2}\n")
    inherits = tmp_path / "inherits.yaml"
    inherits.write_text("version: 1\nextends: base.yaml\n")
    replaces = tmp_path / "replaces.yaml"
    replaces.write_text("version: 1\nextends: base.yaml\nlabels:\n  - default: all\n"
                        "report:\n  fail_on: {coverage.frames_cut: 5}\n")
    clears = tmp_path / "clears.yaml"
    clears.write_text("version: 1\nextends: base.yaml\nlabels: []\nreport: {}\n")
    inherited = read_rules(str(inherits))
    assert inherited.labels is not None and inherited.labels.default is None
    assert [(r.label, r.where) for r in inherited.labels.rules] == [("dns", f"{base}:3:5")]
    assert inherited.gates == (Gate("residual.total", 0.0, f"{base}:6:13"),
                               Gate("risk.scans.sweeps", 2.0, f"{base}:6:32"))
    replaced = read_rules(str(replaces))
    assert replaced.labels is not None and (replaced.labels.rules, replaced.labels.default) == ((), "all")
    assert replaced.gates == (Gate("coverage.frames_cut", 5.0, f"{replaces}:6:13"),)
    cleared = read_rules(str(clears))
    assert (cleared.labels, cleared.gates) == (None, ())
    child = tmp_path / "child.yaml"
    child.write_text("version: 1\nextends: default\n")
    from_profile = read_rules(str(child))
    assert from_profile.gates == read_rules("default").gates and from_profile.labels is None


# Found by fuzzing (fuzz/rules.py) and the resource-bomb review of issue 7: each of these raised
# something other than RuleError, or never returned.


@pytest.mark.parametrize("use", ["[1]", "{a: 1}"])
def test_a_transform_name_that_is_not_text_is_refused(use: str) -> None:
    error = refused(f"version: 1\nsteps:\n  - use: {use}\n")  # was TypeError: unhashable type
    assert error.where == "r.yaml:3:10" and "unknown transform" in error.what


def test_extends_of_a_device_is_refused_without_reading_it(tmp_path: Path) -> None:
    # /dev/zero was read to the end (memory exhausted); /dev/null shows the refusal without the bomb
    child = tmp_path / "child.yaml"
    child.write_text("version: 1\nextends: /dev/null\n")
    with pytest.raises(RuleError) as error:
        read_rules(str(child))
    assert error.value.where == "/dev/null" and "not a regular file" in error.value.what


def test_extends_of_a_pipe_is_refused_without_opening_it(tmp_path: Path) -> None:
    pipe = tmp_path / "pipe.yaml"
    os.mkfifo(pipe)  # opening it for reading waits for a writer: the test would hang, so a timer
    child = tmp_path / "child.yaml"
    child.write_text(f"version: 1\nextends: {pipe}\n")

    def waited(signum: int, frame: object) -> None:
        raise TimeoutError("read_rules waited on the pipe")

    previous = signal.signal(signal.SIGALRM, waited)
    signal.alarm(10)
    try:
        with pytest.raises(RuleError, match="not a regular file"):
            read_rules(str(child))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("name", ["/" + "a" * 5000, "/a\0b.yaml"], ids=["too long", "NUL"])
def test_extends_of_an_impossible_path_is_a_rule_error(name: str) -> None:
    escaped = name.replace("\0", "\\0")  # YAML's escape for NUL inside double quotes
    with pytest.raises(RuleError) as error:  # were OSError (name too long) and ValueError (NUL)
        parse_rules(f'version: 1\nextends: "{escaped}"\n', "r.yaml")
    assert error.value.where == name and "cannot read rule file" in error.value.what


def test_a_rule_file_larger_than_the_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("version: 1\n" + "#" * MAX_RULE_FILE)
    with pytest.raises(RuleError, match="larger than 1024 KiB"):
        read_rules(str(path))
