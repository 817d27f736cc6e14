"""Rule-file audit: each finding at the exact line:col of the setting responsible, exit codes, and
text, JSON and SARIF renderings (the SARIF checked against the official 2.1.0 schema)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jsonschema
import pytest

from anontrace.errors import UsageError
from anontrace.rules.audit import (
    INVALID,
    RULES,
    Finding,
    audit,
    exit_code,
    invalid,
    render_json,
    render_sarif,
    render_text,
)
from anontrace.rules.compile import profile_names
from anontrace.transforms import registry
from anontrace.transforms.generalize import Generalize

SCHEMA = json.loads((Path(__file__).parent / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def generalize_available(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rule files may use `generalize` even before the registry lists it."""
    monkeypatch.setattr("anontrace.rules.compile.registry", lambda: {**registry(), "generalize": Generalize})


def write(tmp_path: Path, text: str, name: str = "r.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def where(findings: list[Finding], rule: str, path: str) -> list[str]:
    return [f.where.removeprefix(f"{path}:") for f in findings if f.rule == rule]


STEPS = "version: 1\nsteps:\n"
GATED = "version: 1\nreport: {fail_on: {residual.total: 0}}\nsteps:\n"
GENERALIZE = "  - use: generalize\n"
TIMING = "  - use: timing\n    shift: keyed\n    noise: gaussian\n    noise_scale_us: 100\n"
CASES = [
    ("payload-kept-unscoped", "warning", "  - use: payload\n    keep: 64\n", ["4:11"]),
    ("payload-kept-personal-data", "warning",
     "  - use: payload\n    when: {port: [443, 25]}\n    keep: 64\n", ["4:24"]),
    ("payload-kept-personal-data", "warning",
     "  - use: payload\n    when: {protocol: tcp}\n    keep: 64\n", ["4:11"]),
    ("payload-kept-personal-data", "warning",
     "  - use: names\n    policy: keep\n  - use: payload\n    when: {port: 53}\n    keep: 64\n", ["6:18"]),
    ("payload-identifiers-rewritten", "info",
     "  - use: payload\n    when: {port: 443}\n    keep: 64\n    identifiers: rewrite\n", ["6:18"]),
    ("ip-kept-global-ipv6", "warning", '  - use: ip\n    keep: ["127.0.0.0/8",\n           "2000::/3"]\n',
     ["5:12"]),
    ("ip-kept-global-ipv6", "warning", '  - use: ip\n    keep: ["::ffff:0:0/96", "::1/128"]\n', ["4:12"]),
    ("ip-kept-beyond-special-purpose", "warning",
     '  - use: ip\n    keep: ["127.0.0.0/8", "10.0.0.0/8"]\n    keep_prefix:\n      - fe80::/64\n'
     "      - fc00::/7\n", ["4:27", "7:9"]),
    ("ip-kept-link-local", "warning", '  - use: ip\n    keep: ["fe80::/10"]\n', ["4:12"]),
    ("mac-vendor-kept", "warning", "  - use: mac\n    keep_oui: true\n", ["4:15"]),
    ("mac-group-mapped", "info", "  - use: mac\n    keep_group: false\n", ["4:17"]),
    ("names-kept", "warning", "  - use: names\n    policy: keep\n", ["4:13"]),
    ("names-labels-kept", "info", "  - use: names\n    keep_labels: [arpa, ACME, local, corp]\n", ["4:25"]),
    ("generalize-missing", "warning", "  - use: timing\n    shift: keyed\n", ["1:1"]),
    ("generalize-missing", "warning", "  - use: generalize\n    when: {port: 80}\n", ["3:5"]),
    ("generalize-ttl-kept", "warning", "  - use: generalize\n    ttl: keep\n", ["4:10"]),
    ("generalize-ip-id-kept", "warning", "  - use: generalize\n    ip_id: keep\n", ["4:12"]),
    ("generalize-ports-kept", "warning", "  - use: generalize\n    ports: keep\n", ["4:12"]),
    ("generalize-tcp-options-kept", "warning",
     "  - use: generalize\n    keep_tcp_options: [0, 1, 2, 19, 30]\n", ["4:33"]),
    ("generalize-tcp-timestamps-kept", "warning", "  - use: generalize\n    tcp_timestamps: keep\n",
     ["4:21"]),
    ("generalize-flow-label-kept", "warning", "  - use: generalize\n    flow_label: keep\n", ["4:17"]),
    ("timing-missing", "warning", "  - use: generalize\n", ["1:1"]),
    ("timing-missing", "warning", "  - use: timing\n    when: {protocol: udp}\n    shift: keyed\n", ["3:5"]),
    ("timing-untouched", "warning", "  - use: payload\n  - use: timing\n    precision: ns\n", ["4:5"]),
    ("timing-noise-small", "info",
     "  - use: timing\n    noise: laplace\n    noise_scale_us: 50\n", ["5:21"]),
    ("residual-gate-missing", "info", "  - use: generalize\n", ["1:1"]),
    ("residual-gate-missing", "info",
     "  - use: generalize\nreport:\n  fail_on: {coverage.frames_cut: 0}\n", ["4:1"]),
    ("residual-gate-missing", "info",
     "  - use: generalize\nreport:\n  fail_on:\n    residual.distinct: 4\n    residual.total: 2.5\n",
     ["7:5"]),
]


@pytest.mark.parametrize("rule,severity,steps,expected", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_finding_points_at_its_setting(tmp_path: Path, rule: str, severity: str, steps: str,
                                            expected: list[str]) -> None:
    path = write(tmp_path, STEPS + steps)
    findings = audit([path])
    assert where(findings, rule, path) == expected
    found = [f for f in findings if f.rule == rule]
    assert all(f.severity == severity and f.message and f.hint for f in found)
    assert not invalid(findings)


def test_links_across_runs_reminds_of_the_key_file(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nlinks_across_runs: true\nsteps: []\n")
    findings = audit([path])
    assert where(findings, "links-across-runs-needs-key", path) == ["2:1"]
    assert "--key-file" in next(f.hint for f in findings if f.rule == "links-across-runs-needs-key")
    assert where(audit([write(tmp_path, "version: 1\nsteps: []\n", "b.yaml")]),
                 "links-across-runs-needs-key", str(tmp_path / "b.yaml")) == []


def test_inherited_promise_to_link_points_at_the_first_line(tmp_path: Path) -> None:
    if "research" not in profile_names():
        pytest.skip("no research profile shipped")
    path = write(tmp_path, "version: 1\nextends: research\n")
    assert where(audit([path]), "links-across-runs-needs-key", path) == ["1:1"]


def test_every_rule_id_has_a_case() -> None:
    assert {c[0] for c in CASES} | {"links-across-runs-needs-key", INVALID} == set(RULES)


@pytest.mark.parametrize("steps", [
    "",  # every transform at its defaults, generalize and timing given
    "  - use: ip\n    keep: ['127.0.0.0/8', '2001:db8::/32', '198.51.100.0/24']\n"
    "    keep_prefix: ['fe80::/64', '169.254.0.0/16']\n",
    "  - use: payload\n    when: {port: [443, 53]}\n    keep: 64\n",  # DNS is fine while names are hashed
    "  - use: payload\n    when: {protocol: [icmp, icmpv6]}\n    keep: 64\n",
    "  - use: payload\n    keep: 0\n    identifiers: rewrite\n",
    "  - use: names\n    keep_labels: [ARPA, in-addr]\n",
])
def test_safe_settings_give_no_finding(tmp_path: Path, steps: str) -> None:
    path = write(tmp_path, GATED + GENERALIZE + TIMING + steps)
    assert audit([path]) == []


@pytest.mark.parametrize("report", ["{fail_on: {residual.distinct: 0}}",
                                    "{fail_on: {residual.total: 0.5, risk.scans.sweeps: 3}}"])
def test_a_gate_that_stops_any_residual_identifier_gives_no_finding(tmp_path: Path, report: str) -> None:
    path = write(tmp_path, f"version: 1\nreport: {report}\nsteps:\n" + GENERALIZE + TIMING)
    assert audit([path]) == []


def test_residual_gate_is_inherited_or_replaced_with_the_report_section(tmp_path: Path) -> None:
    inherits = write(tmp_path, "version: 1\nextends: strict\n", "a.yaml")
    assert where(audit([inherits]), "residual-gate-missing", inherits) == []
    replaces = write(tmp_path, "version: 1\nextends: strict\nreport:\n  fail_on: {}\n", "b.yaml")
    assert where(audit([replaces]), "residual-gate-missing", replaces) == ["3:1"]


def test_settings_merged_from_a_profile_point_at_the_file_that_wrote_them(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nextends: default\nsteps:\n  - use: mac\n    keep_oui: true\n"
                           "  - use: payload\n    keep: 32\n")
    findings = audit([path])
    assert where(findings, "mac-vendor-kept", path) == ["5:15"]
    assert where(findings, "payload-kept-unscoped", path) == ["7:11"]
    assert where(findings, "generalize-missing", path) == []  # the default generalizes
    assert where(findings, "timing-missing", path) == ["1:1"]


@pytest.mark.parametrize("name", profile_names())
def test_shipped_profiles_are_valid(name: str) -> None:
    findings = audit([name])
    assert [f for f in findings if f.severity == "error"] == []
    assert exit_code(findings, "error") == 0
    assert all(f.where.startswith(f"<{name}>:") for f in findings)
    assert [f for f in findings if f.rule == "residual-gate-missing"] == []
    if name == "strict":
        assert [f.rule for f in findings if f.severity == "warning"] == []


@pytest.mark.parametrize("text,expected", [
    ("version: 1\nsteps: [\n  - use: ip\n", "3:3"),
    ("version: 1\nsteps: []\nversion: 1\n", "3:1"),
    ("version: 1\nsteps:\n  - use: ipp\n", "3:10"),
])
def test_invalid_file_is_one_located_error(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    findings = audit([path])
    assert [(f.severity, f.rule) for f in findings] == [("error", INVALID)]
    assert findings[0].where == f"{path}:{expected}" and findings[0].message and findings[0].hint
    assert invalid(findings)


def test_unreadable_rule_files_are_one_error_each(tmp_path: Path) -> None:
    binary = tmp_path / "latin1.yaml"
    binary.write_bytes(b"version: 1\ndescription: caf\xe9\n")
    good = write(tmp_path, "version: 1\nsteps:\n  - use: payload\n    keep: 8\n")
    findings = audit([str(tmp_path), str(binary), "no-such-profile", good])
    errors = [(f.where, f.rule) for f in findings if f.severity == "error"]
    assert errors == [(str(tmp_path), INVALID), (str(binary), INVALID), ("no-such-profile", INVALID)]
    assert "directory" in findings[0].message and "shipped rule files" in findings[2].hint
    assert where(findings, "payload-kept-unscoped", good) == ["4:11"]  # the audit went on


def finding(severity: str, rule: str = "names-kept") -> Finding:
    return Finding(severity, rule, "m", "r.yaml:4:13", "h")  # type: ignore[arg-type]


@pytest.mark.parametrize("findings,codes", [
    ([], (0, 0, 0)),
    ([finding("info")], (0, 0, 1)),
    ([finding("warning"), finding("info")], (0, 1, 1)),
    ([finding("error", INVALID)], (2, 2, 2)),
    ([finding("info"), finding("error", INVALID)], (2, 2, 2)),
])
def test_exit_codes_for_each_threshold(findings: list[Finding], codes: tuple[int, int, int]) -> None:
    assert tuple(exit_code(findings, level) for level in ("error", "warning", "info")) == codes


def test_unknown_threshold_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown severity 'notice'"):
        exit_code([], "notice")


def test_findings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        finding("info").severity = "error"  # type: ignore[misc]


def test_text_rendering() -> None:
    text = render_text([finding("warning"), Finding("error", INVALID, "is a directory", "rules", "")])
    assert text == ("r.yaml:4:13: warning: m [names-kept]\n    hint: h\n"
                    "rules: error: is a directory [invalid-rule-file]\n"
                    "2 findings: 1 error, 1 warning, 0 info\n")
    assert render_text([]) == "no findings\n"


def test_json_rendering(tmp_path: Path) -> None:
    document = json.loads(render_json([finding("info"), Finding("error", INVALID, "x", str(tmp_path), "y")]))
    assert document["version"] == 1
    assert document["counts"] == {"error": 1, "warning": 0, "info": 1}
    first, second = document["findings"]
    assert first == {"severity": "info", "rule": "names-kept", "message": "m", "where": "r.yaml:4:13",
                     "hint": "h", "file": "r.yaml", "line": 4, "column": 13}
    assert (second["file"], second["line"], second["column"]) == (str(tmp_path), None, None)


def sarif_of(tmp_path: Path) -> dict[str, object]:
    path = write(tmp_path, STEPS + "  - use: mac\n    keep_group: false\n  - use: payload\n    keep: 8\n")
    findings = audit([path, str(tmp_path), "default"])
    log: dict[str, object] = json.loads(render_sarif(findings))
    return log


def test_sarif_validates_against_the_official_schema(tmp_path: Path) -> None:
    log = sarif_of(tmp_path)
    validator = jsonschema.validators.validator_for(SCHEMA)(SCHEMA, format_checker=jsonschema.FormatChecker())
    validator.validate(log)
    broken = json.loads(json.dumps(log))
    broken["runs"][0]["results"][0]["level"] = "info"  # SARIF says "note"
    assert not validator.is_valid(broken)


def test_sarif_content(tmp_path: Path) -> None:
    log = sarif_of(tmp_path)
    assert (log["$schema"], log["version"]) == (
        "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json", "2.1.0")
    run = log["runs"][0]  # type: ignore[index]
    driver = run["tool"]["driver"]
    assert driver["name"] == "anontrace" and [r["id"] for r in driver["rules"]] == list(RULES)
    assert all(r["shortDescription"]["text"] for r in driver["rules"])
    results = {(r["ruleId"], r["level"]): r for r in run["results"]}
    note = results[("mac-group-mapped", "note")]
    physical = note["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"]["uri"] == (tmp_path / "r.yaml").as_uri()
    assert physical["region"] == {"startLine": 4, "startColumn": 17}
    assert driver["rules"][note["ruleIndex"]]["id"] == "mac-group-mapped"
    assert "hint:" in note["message"]["text"]
    assert ("payload-kept-unscoped", "warning") in results
    error = results[(INVALID, "error")]
    assert "region" not in error["locations"][0]["physicalLocation"]
    profile = results[("generalize-missing", "warning")]["locations"][0]["physicalLocation"]
    assert profile["artifactLocation"]["uri"] in ((tmp_path / "r.yaml").as_uri(), "%3Cdefault%3E")
