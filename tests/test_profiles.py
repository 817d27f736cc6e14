"""Every shipped profile scrubs every capture we have, and publishes it with no original identifier left.

Issue 5: residual identifiers must be 0 for the shipped profiles on every capture we have. Each
profile's own `report: fail_on: {residual.total: 0}` gate withholds a trace that leaks, so a leak
shows here twice: the trace is not published, and the report's residual count and findings say
what was left where. tests/test_corpus.py judges the default rules' outputs with tshark; this file
runs every profile in-process through `scrub.plan` and `scrub.scrub` with one fixed key and reads
the reports. The corpus takes about a second per profile, so each profile's runs are made once,
on first use, and the per-capture tests read them.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from anontrace.keys import Key
from anontrace.rules.compile import profile_names, read_rules
from anontrace.scrub import Written, plan, scrub
from tests.test_corpus import CAPTURES, KEY_HEX

PROFILES = profile_names()
KINDS = ("ipv4", "ipv6", "mac", "name")
SHOWN_FINDINGS = 10  # a failure message lists this many findings, then says how many more


@dataclass(frozen=True, slots=True)
class Outcome:
    """One capture scrubbed with one profile: what it wrote, or the error that stopped it."""

    written: Written | None
    error: str  # traceback of an exception scrub raised; empty when it returned


Runs = dict[Path, Outcome]


def scrub_corpus(profile: str, directory: Path) -> Runs:
    """Scrub each capture on its own (one failing capture must not hide the others' results)."""
    rules, key = read_rules(profile), Key(bytes.fromhex(KEY_HEX))
    runs: Runs = {}
    for param in CAPTURES:
        source: Path = param.values[0]  # type: ignore[attr-defined]
        target = directory / profile / source.parent.name / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            runs[source] = Outcome(scrub(plan([str(source)], str(target)), rules, key).written[0], "")
        except Exception as exc:  # any failure, typed or not, is reported by the capture's own test
            runs[source] = Outcome(None, "".join(traceback.format_exception(exc)))
    return runs


@pytest.fixture(scope="module")
def corpus_by_profile(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Runs]:
    """The corpus scrubbed with a profile, made the first time a test asks for that profile."""
    directory = tmp_path_factory.mktemp("profiles")
    made: dict[str, Runs] = {}

    def runs(profile: str) -> Runs:
        if profile not in made:
            made[profile] = scrub_corpus(profile, directory)
        return made[profile]

    return runs


def reports(runs: Runs) -> list[dict[str, Any]]:
    return [outcome.written.report for outcome in runs.values() if outcome.written is not None]


def describe(findings: list[dict[str, Any]], truncated: bool) -> str:
    """The report's findings, one a line: what was left, how encoded, where, and where it came from."""
    lines = [f"{f['kind']} {f['value']} ({f['encoding']}) in output frame {f['frame']} at byte "
             f"{f['offset']}; original frame {f['first_seen']['frame']}, {f['first_seen']['where']}"
             for f in findings[:SHOWN_FINDINGS]]
    more = len(findings) - SHOWN_FINDINGS
    if more > 0 or truncated:
        lines.append(f"... and {max(more, 0)} more{' (the report capped its list)' if truncated else ''}")
    return "\n".join(lines)


def test_every_shipped_profile_is_covered() -> None:
    """The three profiles the documentation promises are the ones shipped (else this file shrinks)."""
    assert PROFILES == ["default", "research", "strict"]


@pytest.mark.parametrize("source", CAPTURES)
@pytest.mark.parametrize("profile", PROFILES)
def test_published_without_residual(corpus_by_profile: Callable[[str], Runs], profile: str,
                                    source: Path) -> None:
    outcome = corpus_by_profile(profile)[source]
    assert outcome.written is not None, outcome.error
    report = outcome.written.report
    residual = report["residual"]
    assert residual["total"] == 0, (
        f"{residual['total']} residual occurrences of {residual['distinct']} identifiers, by kind "
        f"{residual['by_kind']}, by encoding {residual['by_encoding']}:\n"
        + describe(residual["findings"], residual["findings_truncated"]))
    failed = [gate for gate in report["gates"] if not gate["passed"]]
    assert outcome.written.published, f"trace withheld; failed gates: {failed}"


@pytest.mark.parametrize("profile", PROFILES)
def test_every_kind_of_identifier_is_checked(corpus_by_profile: Callable[[str], Runs],
                                             profile: str) -> None:
    """The residual scan looked for something: the corpus holds IPv4 and IPv6 addresses, MACs and
    DNS names, and a scan that collected none of a kind would find no residual of it."""
    checked = {kind: sum(report["residual"]["identifiers_checked"][kind]
                           for report in reports(corpus_by_profile(profile))) for kind in KINDS}
    assert all(count > 0 for count in checked.values()), checked


def test_strict_fingerprints_no_more_hosts_than_default(
        corpus_by_profile: Callable[[str], Runs]) -> None:
    """strict generalizes more header fields than default (constant TTL, bucketed window, fewer
    TCP options): over the corpus, no more hosts have a fingerprint of their own."""
    unique = {profile: sum(report["risk"]["fingerprints"]["unique"]
                             for report in reports(corpus_by_profile(profile)))
              for profile in ("default", "strict")}
    assert unique["strict"] <= unique["default"], unique


def test_strict_leaves_no_clock_to_skew(corpus_by_profile: Callable[[str], Runs]) -> None:
    """strict removes TCP timestamps: where default leaves hosts with (renumbered) timestamps in
    the corpus, strict leaves none, so no host's clock skew can be measured."""
    def summed(profile: str, figure: str) -> int:
        return sum(report["risk"]["clock_skew"][figure] for report in reports(corpus_by_profile(profile)))

    assert summed("default", "hosts_with_timestamps") > 0  # the corpus gives strict something to remove
    assert summed("strict", "hosts_with_timestamps") == 0
    assert summed("strict", "exposed_hosts") == 0
