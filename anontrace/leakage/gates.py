"""Gates: figures of the leakage report that must not exceed a limit for a trace to be published.

A gate names a figure by its dotted path in the report JSON (`residual.total`,
`risk.fingerprints.unique_fraction`, ...) and fails when the figure is above its limit. A figure
that could not be measured on this trace (null) fails its gate too: a gate is a promise the
security team relies on, and an unmeasured figure keeps no promise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from anontrace.errors import UsageError

FIGURES: dict[str, str] = {
    "residual.total": "occurrences of original identifiers left in the output",
    "residual.distinct": "distinct original identifiers left in the output",
    "coverage.frames_dropped": "frames left out of the output",
    "coverage.frames_cut": "frames cut short",
    "risk.fingerprints.unique": "hosts whose TCP/IP fingerprint is unique",
    "risk.fingerprints.unique_fraction": "fraction of hosts whose TCP/IP fingerprint is unique",
    "risk.services.unique": "hosts whose set of served ports is unique",
    "risk.services.unique_fraction": "fraction of hosts whose set of served ports is unique",
    "risk.prefix_disclosure.ipv4.mean_bits": "mean IPv4 address bits revealed by known hosts",
    "risk.prefix_disclosure.ipv4.max_bits": "most IPv4 address bits revealed for one host",
    "risk.prefix_disclosure.ipv6.mean_bits": "mean IPv6 address bits revealed by known hosts",
    "risk.prefix_disclosure.ipv6.max_bits": "most IPv6 address bits revealed for one host",
    "risk.clock_skew.exposed_hosts": "hosts with enough TCP timestamps to fingerprint their clock",
    "risk.scans.sweeps": "address sweeps that reveal the mapping of the addresses swept",
    "risk.scans.addresses_exposed": "addresses whose mapping a sweep reveals",
    "risk.timing.interarrival_correlation": "correlation of original and output inter-arrival times",
    "risk.timing.periodic_exposed": "periodic flows whose period survives in the output",
}


@dataclass(frozen=True, slots=True)
class Gate:
    """`figure` must be at most `limit`; `source` says who asked (`file:line:col` or `--fail-on`)."""

    figure: str
    limit: float
    source: str


def value_at(report: Any, path: str) -> Any:
    """The value at a dotted path in a report (or in any of its sections), or None where a step
    is missing or null; the one lookup the gates and the renderers share."""
    value = report
    for part in path.split("."):
        if not isinstance(value, Mapping) or value.get(part) is None:
            return None
        value = value[part]
    return value


def figure(report: Mapping[str, Any], path: str) -> float | None:
    """The number at a dotted path in the report, or None when it was not measured."""
    value = value_at(report, path)
    return None if isinstance(value, bool) or not isinstance(value, int | float) else value


def evaluate(report: Mapping[str, Any], gates: list[Gate]) -> list[dict[str, Any]]:
    """Each gate with the figure's value and whether it passed, in the report's JSON form."""
    results = []
    for gate in gates:
        value = figure(report, gate.figure)
        results.append({"figure": gate.figure, "limit": gate.limit, "value": value,
                        "passed": value is not None and value <= gate.limit, "source": gate.source})
    return results


def parse_option(text: str) -> Gate:
    """A `--fail-on FIGURE=LIMIT` option."""
    name, equals, limit = text.partition("=")
    if not equals:
        raise UsageError("--fail-on", f"{text!r} is not FIGURE=LIMIT", "for example residual.total=0")
    check_figure(name.strip(), "--fail-on")
    try:
        value = float(limit)
    except ValueError:
        raise UsageError("--fail-on", f"limit {limit!r} of {name} is not a number") from None
    if not math.isfinite(value):
        raise UsageError("--fail-on", f"limit {limit.strip()!r} of {name} is not a finite number")
    return Gate(name.strip(), value, "--fail-on")


def check_figure(name: str, where: str) -> None:
    if name not in FIGURES:
        raise UsageError(where, f"unknown report figure {name!r}",
                         f"figures: {', '.join(FIGURES)}")


def merge(from_rules: list[Gate], from_options: list[Gate]) -> list[Gate]:
    """Command-line gates replace the rule file's gate on the same figure."""
    named = {g.figure for g in from_options}
    return [g for g in from_rules if g.figure not in named] + from_options
