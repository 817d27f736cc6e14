"""Three leakage reports written out by hand, shaped as the report contract says (version 1).

- `pair()`: a clean pair-mode report, every section measured, 0 residual identifiers, gates passed.
- `anonymized_only()`: what `anontrace report ANONYMIZED` gives: everything that needs the
  original is null, and the IPv6 disclosure histogram is empty (no IPv6 host).
- `failing()`: a pair-mode report whose residual gate fails, with 250 findings, one of them a
  DNS name that is an HTML script, and file names carrying markup.

The numbers are chosen to be easy to check by eye: counts and their totals agree with each other.
"""

from __future__ import annotations

import copy
from typing import Any

SCRIPT_NAME = "<script>alert('x')</script>.example"
MARKUP_PATH = "cap[bold]<b>x</b>.pcap"

# 20 coverage reasons with distinct counts 1..20: the 15 largest are 6..20.
CUT_BY_DISSECTOR = {f"ipv4: protocol {n}": n for n in range(9, 21)}  # 12 reasons, 9..20
CUT_BY_RULES = {f"payload: port {n}": n for n in range(4, 9)}  # 5 reasons, 4..8
DROPPED = {"filter: udp": 3, "filter: arp": 2, "truncated": 1}  # 3 reasons, 1..3


def _histogram(counts: list[int]) -> dict[str, Any]:
    edges = [0.0] + [float(2**i) for i in range(len(counts))]
    return {"edges": edges, "counts": counts}


def _traffic(flows: int, packets: int, size: int, counts: list[int]) -> dict[str, Any]:
    summary = {"min": 1.0, "median": 4.0, "mean": 6.5, "p95": 20.0, "max": 40.0}
    return {"flows": flows, "packets": packets, "bytes": size,
            "packets_per_flow": summary, "bytes_per_flow": {k: v * 100 for k, v in summary.items()},
            "duration_s": {k: v / 10 for k, v in summary.items()},
            "histograms": {"packets_per_flow": _histogram(counts), "bytes_per_flow": _histogram(counts[::-1]),
                           "duration_s": _histogram(counts)}}


def _risk() -> dict[str, Any]:
    return {
        "fingerprints": {"features": ["ttl", "tcp_window", "tcp_options", "mss"], "hosts": 11, "unique": 4,
                         "unique_fraction": 4 / 11,
                         "k_histogram": [{"k": 1, "hosts": 4}, {"k": 2, "hosts": 4}, {"k": 3, "hosts": 3}],
                         "original": {"hosts": 11, "unique": 6, "unique_fraction": 6 / 11}},
        "services": {"hosts": 8, "unique": 2, "unique_fraction": 0.25,
                     "k_histogram": [{"k": 1, "hosts": 2}, {"k": 6, "hosts": 6}],
                     "original": {"hosts": 8, "unique": 2, "unique_fraction": 0.25}},
        "prefix_disclosure": {
            "ipv4": {"known_hosts": 3, "known_missing": 0, "hosts": 10, "mean_bits": 12.5, "median_bits": 8.0,
                     "max_bits": 30,
                     "histogram": [{"bits": 0, "hosts": 2}, {"bits": 8, "hosts": 5},
                                   {"bits": 30, "hosts": 3}]},
            "ipv6": {"known_hosts": 1, "known_missing": 0, "hosts": 4, "mean_bits": 64.0, "median_bits": 64.0,
                     "max_bits": 64,
                     "histogram": [{"bits": 64, "hosts": 4}]},
        },
        "clock_skew": {"min_samples": 50, "min_span_s": 60.0, "hosts_with_timestamps": 5, "exposed_hosts": 2,
                       "hosts": [{"host": "100.64.1.9", "samples": 300, "span_s": 120.0, "skew_ppm": 41.5},
                                 {"host": "100.64.7.2", "samples": 80, "span_s": 90.5, "skew_ppm": -12.25}]},
        "scans": {"min_targets": 16, "sweeps": 1, "addresses_exposed": 20,
                  "details": [{"source": "100.64.3.3", "targets": 20, "sequential_in_original": None}]},
        "timing": {"interarrival_correlation": 0.97, "periodic_original": 2, "periodic_anonymized": 2,
                   "periodic_masked": 0, "periodic_exposed": 2,
                   "flows": [{"flow": "udp 100.64.1.9:5683 > 100.64.0.1:5683", "period_s": 30.0,
                              "original_cv": None, "anonymized_cv": 0.01, "masked": False}]},
    }


def pair() -> dict[str, Any]:
    return {
        "format": "anontrace-report", "version": 1, "tool": "anontrace 0.1.0",
        "created": "2026-11-21T10:00:00Z",
        "mode": "pair", "original": [{"path": "office.pcap", "frames": 1000}],
        "anonymized": [{"path": "office.anon.pcap", "frames": 994}],
        "rules": "strict", "key_fingerprint": "3f9a1c0de2b7",
        "residual": {"identifiers_checked": {"ipv4": 14, "ipv6": 4, "mac": 9, "name": 5}, "kept_by_rule": 2,
                     "total": 0, "distinct": 0, "by_kind": {"ipv4": 0, "ipv6": 0, "mac": 0, "name": 0},
                     "by_encoding": {"binary": 0, "text": 0, "reverse-dns": 0, "eui64": 0, "dns-wire": 0,
                                     "metadata": 0},
                     "findings": [], "findings_truncated": False},
        "coverage": {"frames_in": 1000, "frames_out": 994, "frames_transformed": 994, "frames_cut": 204,
                     "frames_dropped": 6, "cut_by_dissector": dict(CUT_BY_DISSECTOR),
                     "cut_by_rules": dict(CUT_BY_RULES), "dropped": dict(DROPPED)},
        "risk": _risk(),
        "utility": {"original": _traffic(20, 1000, 900_000, [2, 6, 8, 3, 1]),
                    "anonymized": _traffic(19, 994, 800_000, [2, 5, 8, 3, 1]), "flows_kept_fraction": 0.95},
        "gates": [{"figure": "residual.total", "limit": 0, "value": 0, "passed": True,
                   "source": "--fail-on"}],
        "passed": True,
    }


def anonymized_only() -> dict[str, Any]:
    report = pair()
    report.update(mode="anonymized-only", original=None, residual=None, rules=None, key_fingerprint=None,
                  gates=[], passed=True)
    risk = report["risk"]
    risk["fingerprints"]["original"] = None
    risk["services"]["original"] = None
    risk["prefix_disclosure"]["ipv6"] = {"known_hosts": 0, "known_missing": 0, "hosts": 0, "mean_bits": None,
                                         "median_bits": None, "max_bits": None, "histogram": []}
    risk["scans"]["details"][0]["sequential_in_original"] = None
    risk["timing"].update(interarrival_correlation=None, periodic_original=None, periodic_masked=None)
    risk["timing"]["flows"][0].update(original_cv=None, masked=None)
    report["utility"].update(original=None, flows_kept_fraction=None)
    report["coverage"] = {"frames_in": 994, "frames_out": 994, "frames_transformed": 0, "frames_cut": 0,
                          "frames_dropped": 0, "cut_by_dissector": {}, "cut_by_rules": {}, "dropped": {}}
    return report


def findings(count: int) -> list[dict[str, Any]]:
    """`count` findings; the first is the script name, the rest are addresses 10.0.x.y by frame."""
    found = [{"kind": "name", "value": SCRIPT_NAME, "encoding": "dns-wire", "file": MARKUP_PATH,
              "frame": 7, "offset": 54, "first_seen": {"frame": 7, "where": "dns name"}}]
    for i in range(1, count):
        found.append({"kind": "ipv4", "value": f"10.0.{i // 256}.{i % 256}", "encoding": "binary",
                      "file": MARKUP_PATH, "frame": i + 10, "offset": 26,
                      "first_seen": {"frame": i + 10, "where": "ipv4 header"}})
    return found


def failing() -> dict[str, Any]:
    report = copy.deepcopy(pair())
    report["original"] = [{"path": MARKUP_PATH, "frames": 300}]
    report["anonymized"] = [{"path": MARKUP_PATH + ".anon", "frames": 300}]
    report["residual"].update(total=250, distinct=250, by_kind={"ipv4": 249, "ipv6": 0, "mac": 0, "name": 1},
                              by_encoding={"binary": 249, "text": 0, "reverse-dns": 0, "eui64": 0,
                                           "dns-wire": 1, "metadata": 0},
                              findings=findings(250), findings_truncated=False)
    report["gates"] = [
        {"figure": "residual.total", "limit": 0, "value": 250, "passed": False, "source": "rules.yaml:12:5"},
        {"figure": "risk.fingerprints.unique_fraction", "limit": 0.5, "value": 4 / 11, "passed": True,
         "source": "--fail-on"},
        {"figure": "risk.timing.periodic_exposed", "limit": 0, "value": 2, "passed": False,
         "source": "--fail-on"},
    ]
    report["passed"] = False
    return report
