"""The leakage report as one self-contained HTML page: inline CSS, plots drawn here as inline SVG.

The page is what a security team signs off on and passes around, often far from any network, so
it loads nothing: no script, no font, no image from elsewhere, and a Content-Security-Policy that
forbids them should a value ever slip through. Every value may come from a capture (a DNS name is
whatever the sender of the query chose), so every piece of text goes through `html.escape`.
A section or figure the report does not have (null in an anonymized-only report, or no data)
is said in words instead of drawn empty.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from anontrace.leakage.gates import FIGURES, value_at

FINDINGS_SHOWN = 200
REASONS_SHOWN = 15
WIDTH, HEIGHT = 640, 270
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 30, 76
COLORS = {"original": "#7b8fae", "anonymized": "#e07b39",
          "cut by dissector": "#c9a227", "cut by rules": "#8e6cc0", "dropped": "#c0392b"}
NOT_MEASURED = "not measured"
POLICY = "default-src 'none'; style-src 'unsafe-inline'"

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1000px;padding:1em 2em;color:#222}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #ddd;margin-top:2em}h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:2px 8px;text-align:left}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.verdict{display:inline-block;padding:.2em .8em;border-radius:4px;color:#fff;font-weight:bold}
.passed{background:#2e7d32}.failed{background:#c62828}tr.fail td{background:#fdecea}
.state{font-size:1.3em;font-weight:bold}.ok{color:#2e7d32}.bad{color:#c62828}
.note{color:#666;font-style:italic}figure{margin:1em 0}figcaption{font-weight:bold}
svg.plot text{font:11px system-ui,sans-serif;fill:#333}svg.plot .axis{stroke:#333}
svg.plot .grid{stroke:#e4e4e4}code{background:#f4f4f4;padding:0 3px}nav a{margin-right:1em}
"""


class Safe(str):
    """Text that is already HTML (built here from escaped parts), so it is not escaped again."""


def _text(value: Any) -> str:
    """Any report value as escaped HTML."""
    if isinstance(value, Safe):
        return value
    if value is None:
        return NOT_MEASURED
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return _number(value)
    return escape(str(value))


def _number(value: float) -> str:
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _compact(value: float) -> str:
    """Short axis labels: 1500 -> 1.5k."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], classes: Sequence[str] = ()) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cells = "".join(f'<td class="n">{_text(c)}</td>' if isinstance(c, int | float) and not
                        isinstance(c, bool) else f"<td>{_text(c)}</td>" for c in row)
        css = f' class="{escape(classes[i])}"' if i < len(classes) and classes[i] else ""
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _facts(pairs: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{escape(name)}</th><td>{_text(value)}</td></tr>" for name, value in pairs)
    return f'<table class="facts"><tbody>{rows}</tbody></table>'


def _note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def _missing(name: str, title: str, why: str) -> str:
    return (f'<figure><figcaption>{escape(title)}</figcaption>'
            f'<p class="note" data-plot-missing="{escape(name)}">{escape(why)}</p></figure>')


def _ticks(top: float, integer: bool) -> list[float]:
    """Round axis ticks from 0 to at least `top`."""
    raw = top / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(step, 1.0) if integer else step
    return [step * i for i in range(math.ceil(top / step) + 1)]


def _svg(name: str, title: str, height: int, body: str) -> str:
    return (f'<figure><figcaption>{escape(title)}</figcaption>'
            f'<svg class="plot" data-plot="{escape(name)}" role="img" '
            f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}">'
            f"<title>{escape(title)}</title>{body}</svg></figure>")


def _legend(names: Sequence[str]) -> str:
    parts, x = [], WIDTH - RIGHT - 130 * len(names)
    for name in names:
        parts.append(f'<rect class="key" x="{x}" y="8" width="12" height="12" fill="{COLORS[name]}"/>'
                     f'<text x="{x + 16}" y="18">{escape(name)}</text>')
        x += 130
    return "".join(parts)


def bars(name: str, title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]],
         axes: tuple[str, str], empty: str = "no data", integer: bool = True) -> str:
    """Vertical bars, one group per label and one bar per series, with y ticks and axis titles."""
    top = max((v for _, values in series for v in values), default=0.0)
    if not labels or top <= 0:
        return _missing(name, title, empty)
    ticks = _ticks(top, integer)
    width, height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = width / len(labels)
    bar = slot * 0.8 / len(series)
    parts = [_axes(ticks, axes)]
    every = math.ceil(len(labels) / 20)
    turned = max(len(label) for label in labels) * 6.5 > slot * every  # 11px labels: ~6.5px a character
    for i, label in enumerate(labels):
        for j, (key, values) in enumerate(series):
            h = height * values[i] / ticks[-1]
            x = LEFT + i * slot + slot * 0.1 + j * bar
            parts.append(f'<rect class="bar" data-series="{escape(key)}" data-value="{values[i]}" '
                         f'x="{x:.1f}" y="{TOP + height - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'fill="{COLORS[key]}"><title>{escape(label)}, {escape(key)}: '
                         f"{_text(values[i])}</title></rect>")
        if i % every == 0:
            cx, cy = LEFT + (i + 0.5) * slot, TOP + height + 14
            turn = f' transform="rotate(-35 {cx:.1f} {cy})" text-anchor="end"' if turned else \
                ' text-anchor="middle"'
            parts.append(f'<text x="{cx:.1f}" y="{cy}"{turn}>{escape(label)}</text>')
    parts.append(_legend([key for key, _ in series]))
    return _svg(name, title, HEIGHT, "".join(parts))


def _axes(ticks: Sequence[float], axes: tuple[str, str]) -> str:
    height = HEIGHT - TOP - BOTTOM
    parts = []
    for tick in ticks:
        y = TOP + height - height * tick / ticks[-1]
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_compact(tick)}</text>')
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + height}"/>'
                 f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + height}" '
                 f'y2="{TOP + height}"/>'
                 f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 6}" text-anchor="middle">'
                 f"{escape(axes[0])}</text>"
                 f'<text transform="rotate(-90 14 {TOP + height / 2})" x="14" y="{TOP + height / 2}" '
                 f'text-anchor="middle">{escape(axes[1])}</text>')
    return "".join(parts)


def horizontal_bars(name: str, title: str, rows: Sequence[tuple[str, str, int]], axis: str) -> str:
    """One bar per (label, category, value) row, longest first, for labels too long to turn."""
    rows = sorted((r for r in rows if r[2] > 0), key=lambda r: -r[2])[:REASONS_SHOWN]
    if not rows:
        return _missing(name, title, "no frame was cut or dropped")
    left, row_height = 280, 20
    height = TOP + row_height * len(rows) + 36
    top = max(r[2] for r in rows)
    width = WIDTH - left - RIGHT - 50
    parts = [f'<line class="axis" x1="{left}" x2="{left}" y1="{TOP}" y2="{height - 36}"/>']
    for i, (label, category, value) in enumerate(rows):
        y = TOP + i * row_height
        w = max(width * value / top, 1.0)
        shown = label if len(label) <= 42 else label[:41] + "…"
        parts.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{escape(shown)}</text>'
                     f'<rect class="bar" data-series="{escape(category)}" data-value="{value}" x="{left}" '
                     f'y="{y + 3}" width="{w:.1f}" height="{row_height - 6}" fill="{COLORS[category]}">'
                     f"<title>{escape(category)}: {escape(label)}: {value:,}</title></rect>"
                     f'<text x="{left + w + 4:.1f}" y="{y + 14}">{value:,}</text>')
    parts.append(f'<text x="{left + width / 2:.0f}" y="{height - 10}" text-anchor="middle">'
                 f"{escape(axis)}</text>")
    parts.append(_legend(sorted({r[1] for r in rows}, key=list(COLORS).index)))
    return _svg(name, title, height, "".join(parts))


def _header(report: Mapping[str, Any]) -> str:
    passed = bool(report.get("passed"))
    word = "PASSED" if passed else "FAILED"
    verdict = f'<span class="verdict {word.lower()}">{word}</span>'

    def inputs(key: str) -> Safe:
        files = report.get(key)
        if files is None:
            return Safe("none")
        return Safe("<br>".join(f"{_text(f.get('path'))} ({_text(f.get('frames'))} frames)" for f in files))

    facts = _facts([("tool", report.get("tool")), ("created", report.get("created")),
                    ("mode", report.get("mode")), ("original", inputs("original")),
                    ("anonymized", inputs("anonymized")), ("rules", report.get("rules") or Safe("none")),
                    ("key fingerprint", report.get("key_fingerprint") or Safe("none"))])
    gates = report.get("gates") or []
    if gates:
        rows = [(Safe(f'<code>{_text(g.get("figure"))}</code> {_text(FIGURES.get(g.get("figure"), ""))}'),
                 g.get("limit"), g.get("value"), "passed" if g.get("passed") else "FAILED", g.get("source"))
                for g in gates]
        gate_html = _table(["figure", "limit", "value", "result", "source"], rows,
                           ["" if g.get("passed") else "fail" for g in gates])
    else:
        gate_html = _note("No gates: set report: fail_on: in the rules or --fail-on FIGURE=LIMIT.")
    return f"<header><h1>anontrace leakage report {verdict}</h1>{facts}<h3>Gates</h3>{gate_html}</header>"


def _residual(residual: Mapping[str, Any] | None) -> str:
    head = '<section id="residual"><h2>Residual identifiers</h2>'
    if residual is None:
        return head + _note(f"{NOT_MEASURED}: finding original identifiers needs the original capture.") + \
            "</section>"
    total, distinct = residual.get("total", 0), residual.get("distinct", 0)
    state = ('<p class="state ok">0 residual identifiers</p>' if total == 0 else
             f'<p class="state bad">{_text(total)} residual identifiers ({_text(distinct)} distinct)</p>')
    checked, by_kind = residual.get("identifiers_checked") or {}, residual.get("by_kind") or {}
    kinds = _table(["kind", "original identifiers checked", "residual occurrences"],
                   [(k, checked.get(k, 0), by_kind.get(k, 0)) for k in ("ipv4", "ipv6", "mac", "name")])
    encodings = _table(["encoding", "residual occurrences"], (residual.get("by_encoding") or {}).items())
    kept = _note(f"{residual.get('kept_by_rule', 0):,} original identifiers are in the output because the "
                 "rules keep them; they are not counted as residual.")
    return head + state + kept + kinds + encodings + _findings(residual) + "</section>"


def _findings(residual: Mapping[str, Any]) -> str:
    findings = residual.get("findings") or []
    if not findings:
        return ""
    rows = [(f.get("kind"), f.get("value"), f.get("encoding"), f.get("file"),
             f.get("frame") if f.get("frame") is not None else "file metadata", f.get("offset"),
             value_at(f, "first_seen.frame"), value_at(f, "first_seen.where"))
            for f in findings[:FINDINGS_SHOWN]]
    table = _table(["kind", "value", "encoding", "file", "frame", "offset", "first seen: frame", "where"],
                   rows)
    notes = ""
    if len(findings) > FINDINGS_SHOWN:
        notes += _note(f"Showing {FINDINGS_SHOWN} of {len(findings):,} findings; "
                       "the JSON report has all of them.")
    if residual.get("findings_truncated"):
        notes += _note("The report lists only the first 1,000 findings; the totals above count every one.")
    return "<h3>Findings</h3>" + notes + table


def _coverage(coverage: Mapping[str, Any] | None) -> str:
    head = '<section id="coverage"><h2>Coverage</h2>'
    if coverage is None:
        return head + _note(NOT_MEASURED) + "</section>"
    facts = _facts((key.replace("_", " "), coverage.get(key)) for key in
                   ("frames_in", "frames_out", "frames_transformed", "frames_cut", "frames_dropped"))
    rows = [(f"{category}: {reason}", category, int(count))
            for category, key in (("cut by dissector", "cut_by_dissector"), ("cut by rules", "cut_by_rules"),
                                  ("dropped", "dropped"))
            for reason, count in (coverage.get(key) or {}).items()]
    plot = horizontal_bars("coverage-reasons", f"Frames cut or dropped, by reason (top {REASONS_SHOWN})",
                           rows, "frames")
    return head + facts + plot + "</section>"


def _population(section: Mapping[str, Any] | None) -> str:
    if section is None:
        return NOT_MEASURED
    fraction = _text(section.get("unique_fraction"))
    return f"{section.get('unique', 0):,} of {section.get('hosts', 0):,} ({fraction})"


def _k_anonymity(risk: Mapping[str, Any]) -> str:
    html, labels = "", []
    series: dict[str, list[float | None]] = {"original": [], "anonymized": []}
    for key, title in (("fingerprints", "TCP/IP fingerprints"), ("services", "Served ports")):
        section = risk.get(key)
        if section is None:
            html += f"<h3>{title}</h3>" + _note(NOT_MEASURED)
            continue
        features = ", ".join(section.get("features", []))
        html += f"<h3>{title}</h3>" + _facts(
            ([("features", features)] if features else []) +
            [("unique hosts, anonymized", Safe(_population(section))),
             ("unique hosts, original", Safe(_population(section.get("original"))))])
        k_histogram = section.get("k_histogram") or []
        html += bars(f"{key}-k", f"{title}: hosts by anonymity set size k (anonymized)",
                     [str(b.get("k")) for b in k_histogram],
                     [("anonymized", [b.get("hosts", 0) for b in k_histogram])], ("k", "hosts"))
        labels.append(key)
        for side in series:
            population = section if side == "anonymized" else section.get("original")
            series[side].append(value_at(population, "unique_fraction"))
    drawn = [(side, [v or 0.0 for v in values]) for side, values in series.items()
             if values and None not in values]
    return html + bars("uniqueness", "Fraction of hosts that are unique, original vs anonymized", labels,
                       drawn, ("", "unique fraction"), "no host is unique", integer=False)


def _prefix(disclosure: Mapping[str, Any] | None) -> str:
    html = "<h3>Prefix disclosure</h3>"
    if disclosure is None:
        return html + _note(NOT_MEASURED)
    families = [(name, disclosure.get(name)) for name in ("ipv4", "ipv6")]
    html += _table(["family", "known hosts", "other hosts", "mean bits", "median bits", "max bits"],
                   [(name, *(value_at(f, k) for k in ("known_hosts", "hosts", "mean_bits", "median_bits",
                                                       "max_bits"))) for name, f in families])
    for name, family in families:
        histogram = value_at(family, "histogram") or []
        html += bars(f"prefix-{name}", f"{name}: address bits revealed by the known hosts",
                     [str(b.get("bits")) for b in histogram],
                     [("anonymized", [b.get("hosts", 0) for b in histogram])], ("bits revealed", "hosts"),
                     NOT_MEASURED if family is None else "no data")
    return html


def _clock_skew(skew: Mapping[str, Any] | None) -> str:
    html = "<h3>Clock skew</h3>"
    if skew is None:
        return html + _note(NOT_MEASURED)
    html += _facts([("hosts with TCP timestamps", skew.get("hosts_with_timestamps")),
                    ("hosts exposed", skew.get("exposed_hosts")),
                    ("threshold", f"{skew.get('min_samples', 0):,} samples over "
                                  f"{_text(skew.get('min_span_s'))} s")])
    hosts = skew.get("hosts") or []
    return html + (_table(["host", "samples", "span (s)", "skew (ppm)"],
                          [(h.get("host"), h.get("samples"), h.get("span_s"), h.get("skew_ppm"))
                           for h in hosts])
                   if hosts else _note("no host has enough timestamps"))


def _scans(scans: Mapping[str, Any] | None) -> str:
    html = "<h3>Scan sweeps</h3>"
    if scans is None:
        return html + _note(NOT_MEASURED)
    html += _facts([("sweeps", scans.get("sweeps")), ("addresses exposed", scans.get("addresses_exposed")),
                    ("a sweep has at least", f"{scans.get('min_targets', 0):,} targets")])
    details = scans.get("details") or []
    return html + (_table(["source", "targets", "sequential in original"],
                          [(d.get("source"), d.get("targets"), d.get("sequential_in_original"))
                           for d in details])
                   if details else _note("no sweep found"))


def _timing(timing: Mapping[str, Any] | None) -> str:
    html = "<h3>Timing</h3>"
    if timing is None:
        return html + _note(NOT_MEASURED)
    html += _facts([("inter-arrival correlation, original vs output", timing.get("interarrival_correlation")),
                    ("periodic flows, original", timing.get("periodic_original")),
                    ("periodic flows, anonymized", timing.get("periodic_anonymized")),
                    ("periodic flows masked", timing.get("periodic_masked")),
                    ("periodic flows exposed", timing.get("periodic_exposed"))])
    flows = timing.get("flows") or []
    return html + (_table(["flow", "period (s)", "original CV", "anonymized CV", "masked"],
                          [(f.get("flow"), f.get("period_s"), f.get("original_cv"), f.get("anonymized_cv"),
                            f.get("masked")) for f in flows])
                   if flows else _note("no periodic flow"))


def _risk(risk: Mapping[str, Any] | None) -> str:
    head = '<section id="risk"><h2>Re-identification risk</h2>'
    if risk is None:
        return head + _note(NOT_MEASURED) + "</section>"
    return (head + _k_anonymity(risk) + _prefix(risk.get("prefix_disclosure"))
            + _clock_skew(risk.get("clock_skew")) + _scans(risk.get("scans")) + _timing(risk.get("timing"))
            + "</section>")


UTILITY_FIGURES = {"packets_per_flow": ("Packets per flow", "packets"),
                   "bytes_per_flow": ("Bytes per flow", "bytes"),
                   "duration_s": ("Flow duration (s)", "seconds")}


def _utility(utility: Mapping[str, Any] | None) -> str:
    head = '<section id="utility"><h2>Utility kept</h2>'
    if utility is None:
        return head + _note(NOT_MEASURED) + "</section>"
    sides = [(side, utility.get(side)) for side in ("original", "anonymized")]
    rows = [(side, *(value_at(st, key) for key in ("flows", "packets", "bytes"))) for side, st in sides]
    html = _table(["trace", "flows", "packets", "bytes"], rows)
    html += _facts([("flows kept", utility.get("flows_kept_fraction"))])
    summary = [(title, side, *(value_at(st, f"{key}.{s}") for s in ("min", "median", "mean", "p95", "max")))
               for key, (title, _) in UTILITY_FIGURES.items() for side, st in sides]
    html += _table(["figure", "trace", "min", "median", "mean", "p95", "max"], summary)
    for key, (title, unit) in UTILITY_FIGURES.items():
        after = value_at(utility, f"anonymized.histograms.{key}")
        before = value_at(utility, f"original.histograms.{key}")
        if after is None:
            html += _missing(f"utility-{key}", title, NOT_MEASURED)
            continue
        edges, counts = after.get("edges", []), after.get("counts", [])
        labels = [f"{_compact(a)}-{_compact(b)}" for a, b in itertools.pairwise(edges)][:len(counts)]
        series = [("anonymized", counts[:len(labels)])]
        if value_at(before, "edges") == edges and len(value_at(before, "counts") or []) == len(counts):
            series.insert(0, ("original", before["counts"][:len(labels)]))
        html += bars(f"utility-{key}", f"{title}, before and after", labels, series, (unit, "flows"))
    return head + html + "</section>"


def render(report: Mapping[str, Any]) -> str:
    """The whole report as one HTML document that needs nothing else to be viewed."""
    verdict = "PASSED" if report.get("passed") else "FAILED"
    nav = "".join(f'<a href="#{anchor}">{name}</a>' for anchor, name in
                  (("residual", "Residual identifiers"), ("coverage", "Coverage"), ("risk", "Risk"),
                   ("utility", "Utility")))
    body = (_header(report) + f"<nav>{nav}</nav>" + _residual(report.get("residual"))
            + _coverage(report.get("coverage")) + _risk(report.get("risk")) + _utility(report.get("utility")))
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>anontrace leakage report: {verdict}</title><style>{CSS}</style></head>"
            f"<body>{body}</body></html>\n")
