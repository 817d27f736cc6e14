"""The HTML report: self-contained, every plot drawn from the report's numbers, every value escaped.

The last tests open the page in headless Chromium with the network blocked, as a reader would.
"""

from __future__ import annotations

import os
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from anontrace.leakage import html
from tests.helpers import anontrace
from tests.leakage import sample_reports

SAMPLES_DIR = Path(__file__).parent.parent.parent / "sample_pcaps"

ALL_PLOTS = ["coverage-reasons", "fingerprints-k", "services-k", "uniqueness", "prefix-ipv4", "prefix-ipv6",
             "utility-packets_per_flow", "utility-bytes_per_flow", "utility-duration_s"]
# The anonymized-only sample has no cut or dropped frame and no IPv6 host.
ANONYMIZED_ONLY_MISSING = ["coverage-reasons", "prefix-ipv6"]
SAMPLES: dict[str, tuple[Callable[[], dict[str, Any]], list[str]]] = {
    "pair": (sample_reports.pair, ALL_PLOTS),
    "anonymized-only": (sample_reports.anonymized_only,
                        [p for p in ALL_PLOTS if p not in ANONYMIZED_ONLY_MISSING]),
    "failing": (sample_reports.failing, ALL_PLOTS),
}


class Tags(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(page)
    return parser.tags


def plot(page: str, name: str) -> ET.Element:
    found = re.search(rf'<svg class="plot" data-plot="{re.escape(name)}".*?</svg>', page, re.S)
    assert found, f"no plot {name}"
    return ET.fromstring(found.group(0))


def bars(page: str, name: str) -> list[ET.Element]:
    return [e for e in plot(page, name).iter("rect") if e.get("class") == "bar"]


@pytest.mark.parametrize("name", SAMPLES)
def test_page_refers_to_nothing_outside_itself(name: str) -> None:
    page = html.render(SAMPLES[name][0]())
    assert "http://" not in page and "https://" not in page and "url(" not in page
    found = tags(page)
    assert not [t for t, _ in found if t in ("script", "link", "img", "iframe", "object", "embed", "base")]
    references = [(t, k, v) for t, attrs in found for k, v in attrs.items()
                  if k in ("src", "href", "xlink:href")]
    assert references and all(k == "href" and v and v.startswith("#") for _, k, v in references)
    policy = [a["content"] for t, a in found
              if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert policy == ["default-src 'none'; style-src 'unsafe-inline'"]


@pytest.mark.parametrize("name", SAMPLES)
def test_every_expected_plot_is_drawn_and_the_others_say_why_not(name: str) -> None:
    build, expected = SAMPLES[name]
    page = html.render(build())
    drawn = [str(a["data-plot"]) for t, a in tags(page) if t == "svg" and a.get("class") == "plot"]
    missing = [str(a["data-plot-missing"]) for t, a in tags(page) if "data-plot-missing" in a]
    assert drawn == expected
    assert sorted(missing) == sorted(set(ALL_PLOTS) - set(expected))
    for plot_name in drawn:
        svg = plot(page, plot_name)
        assert svg.get("role") == "img"
        assert svg.find("title") is not None and svg.find("title").text  # type: ignore[union-attr]
        assert bars(page, plot_name)


def test_bar_heights_follow_the_counts() -> None:
    page = html.render(sample_reports.pair())
    fingerprints = bars(page, "fingerprints-k")  # k=1: 4 hosts, k=2: 4, k=3: 3
    assert [float(b.get("data-value", "")) for b in fingerprints] == [4, 4, 3]
    heights = [float(b.get("height", "")) for b in fingerprints]
    assert heights[0] == heights[1] == pytest.approx(heights[2] * 4 / 3, rel=0.01)
    prefix = bars(page, "prefix-ipv4")  # 2, 5 and 3 hosts at 0, 8 and 30 bits
    assert [float(b.get("height", "")) / float(prefix[1].get("height", "")) for b in prefix] == \
        pytest.approx([0.4, 1.0, 0.6], rel=0.01)
    labels = [t.text for t in plot(page, "prefix-ipv4").iter("text")]
    assert {"0", "8", "30", "bits revealed", "hosts"} <= set(labels)


def test_utility_histograms_pair_original_with_anonymized_bin_by_bin() -> None:
    page = html.render(sample_reports.pair())
    grouped = bars(page, "utility-packets_per_flow")
    assert [b.get("data-series") for b in grouped] == ["original", "anonymized"] * 5
    assert [int(float(b.get("data-value", ""))) for b in grouped] == [2, 2, 6, 5, 8, 8, 3, 3, 1, 1]
    labels = [t.text for t in plot(page, "utility-packets_per_flow").iter("text")]
    assert {"0-1", "1-2", "2-4", "4-8", "8-16"} <= set(labels)
    alone = bars(html.render(sample_reports.anonymized_only()), "utility-packets_per_flow")
    assert [b.get("data-series") for b in alone] == ["anonymized"] * 5


def test_uniqueness_compares_original_and_anonymized_when_both_were_measured() -> None:
    both = bars(html.render(sample_reports.pair()), "uniqueness")
    assert [b.get("data-series") for b in both] == ["original", "anonymized"] * 2
    assert [float(b.get("data-value", "")) for b in both] == pytest.approx([6 / 11, 4 / 11, 0.25, 0.25])
    alone = bars(html.render(sample_reports.anonymized_only()), "uniqueness")
    assert [b.get("data-series") for b in alone] == ["anonymized", "anonymized"]


def test_coverage_plot_shows_the_15_largest_reasons() -> None:
    page = html.render(sample_reports.pair())
    shown = bars(page, "coverage-reasons")  # the sample's 20 reasons count 1..20
    assert [int(b.get("data-value", "")) for b in shown] == list(range(20, 5, -1))
    assert {b.get("data-series") for b in shown} == {"cut by dissector", "cut by rules"}
    labels = {t.text for t in plot(page, "coverage-reasons").iter("text")}
    assert "cut by rules: payload: port 6" in labels and "cut by rules: payload: port 5" not in labels


def test_values_from_captures_are_escaped() -> None:
    page = html.render(sample_reports.failing())
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;.example" in page
    assert "<b>x</b>" not in page and "cap[bold]&lt;b&gt;x&lt;/b&gt;.pcap" in page


def test_findings_table_is_capped_at_200_rows() -> None:
    page = html.render(sample_reports.failing())  # 250 findings: the name, then 10.0.0.1 .. 10.0.0.249
    assert page.count("ipv4 header") == 199
    assert "10.0.0.199<" in page and "10.0.0.200<" not in page
    assert "Showing 200 of 250 findings" in page


def test_residual_states() -> None:
    assert ">0 residual identifiers<" in html.render(sample_reports.pair())
    failing = html.render(sample_reports.failing())
    assert "250 residual identifiers (250 distinct)" in failing and ">0 residual identifiers<" not in failing
    alone = html.render(sample_reports.anonymized_only())
    assert "not measured: finding original identifiers needs the original capture" in alone
    assert "residual identifiers (" not in alone


def test_header_shows_the_verdict_and_each_gate() -> None:
    failing = html.render(sample_reports.failing())
    assert 'class="verdict failed">FAILED<' in failing and ">PASSED<" not in failing
    rows = re.findall(r'<tr class="fail">.*?</tr>', failing)
    assert len(rows) == 2
    assert "residual.total" in rows[0] and "rules.yaml:12:5" in rows[0] and ">250<" in rows[0]
    assert "risk.timing.periodic_exposed" in rows[1]
    assert 'class="verdict passed">PASSED<' in html.render(sample_reports.pair())
    assert "No gates" in html.render(sample_reports.anonymized_only())


def test_null_sections_say_not_measured_instead_of_failing() -> None:
    report = sample_reports.anonymized_only()
    report.update(coverage=None, risk=None, utility=None, gates=None)
    page = html.render(report)
    assert "<svg" not in page
    for section in ("residual", "coverage", "risk", "utility"):
        assert re.search(rf'<section id="{section}"><h2>[^<]*</h2><p class="note">not measured', page)


def test_a_gate_on_an_unmeasured_figure_shows_as_not_measured() -> None:
    report = sample_reports.anonymized_only()
    report["gates"] = [{"figure": "residual.total", "limit": 0, "value": None, "passed": False,
                        "source": "--fail-on"}]
    row = re.findall(r'<tr class="fail">.*?</tr>', html.render(report))
    assert len(row) == 1 and "not measured" in row[0]


def test_histograms_on_different_edges_are_not_paired() -> None:
    report = sample_reports.pair()
    report["utility"]["original"]["histograms"]["duration_s"] = {"edges": [0.0, 0.5, 1.0], "counts": [3, 4]}
    drawn = bars(html.render(report), "utility-duration_s")
    assert [b.get("data-series") for b in drawn] == ["anonymized"] * 5


# In the browser -----------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright import sync_api  # a test dependency: a missing one is a failure, not a skip

    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: install Debian's chromium (.ci/run does)"
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def assert_renders_offline(browser: Any, target: Path, plots_expected: int, title: str) -> None:
    """Open `target` in Chromium with every request but the page's own refused: each plot has a
    size and a visible bar for every value above zero, nothing was fetched, and the page raised
    no error."""
    url = target.as_uri()
    requested: list[str] = []
    problems: list[str] = []

    def route(request_route: Any) -> None:
        requested.append(request_route.request.url)
        if request_route.request.url == url:
            request_route.continue_()
        else:
            request_route.abort()

    page = browser.new_page()
    page.route("**/*", route)
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("request", lambda request: requested.append(request.url) if request.url != url else None)
    page.goto(url)
    page.wait_for_load_state("load")
    plots = page.locator("svg.plot")
    assert plots.count() == plots_expected
    for i in range(plots.count()):
        svg = plots.nth(i)
        name = svg.get_attribute("data-plot")
        box = svg.bounding_box()
        assert box is not None and box["width"] > 0 and box["height"] > 0, name
        assert svg.locator("rect, path, line").count() > 0
        bars = svg.locator("rect.bar")
        shown = 0
        for j in range(bars.count()):
            if float(bars.nth(j).get_attribute("data-value") or "") > 0:  # a zero is drawn flat
                bar = bars.nth(j).bounding_box()
                assert bar is not None and bar["width"] > 0 and bar["height"] > 0, name
                shown += 1
        assert shown > 0, name
    assert page.title() == title
    page.close()
    assert problems == []
    assert set(requested) == {url}


@pytest.mark.parametrize("name", SAMPLES)
def test_page_renders_its_plots_in_chromium_offline(name: str, browser: Any, tmp_path: Path) -> None:
    build, expected = SAMPLES[name]
    target = tmp_path / "report.html"
    target.write_text(html.render(build()), encoding="utf-8")
    assert_renders_offline(browser, target, len(expected),
                           f"anontrace leakage report: {'FAILED' if name == 'failing' else 'PASSED'}")


def test_the_page_a_real_scrub_wrote_renders_in_chromium_offline(browser: Any, tmp_path: Path) -> None:
    """The page beside a scrub of dualstack.pcapng. The default profile cuts its HTTP payload (the
    coverage plot), its hosts send SYNs and serve ports (the k plots), and naming one known host
    per family leaves its other hosts for the prefix plots: every plot is drawn."""
    key = tmp_path / "site.key"
    assert anontrace("keygen", "-o", str(key)).returncode == 0
    trace = tmp_path / "out.pcapng"
    result = anontrace("scrub", str(SAMPLES_DIR / "dualstack.pcapng"), "-o", str(trace),
                       "--key-file", str(key), "-q", "--known", "10.1.2.23", "--known", "2001:db8:1:2::23")
    assert result.returncode == 0, result.stderr.decode()
    target = Path(f"{trace}.report.html")
    page = target.read_text(encoding="utf-8")
    drawn = [str(a["data-plot"]) for t, a in tags(page) if t == "svg" and a.get("class") == "plot"]
    assert drawn == ALL_PLOTS
    fetching = ("script", "link", "img", "iframe", "object", "embed", "base")
    assert not [t for t, _ in tags(page) if t in fetching]
    # 31 frames in, none dropped (sample_pcaps/README.md; the default profile drops nothing).
    assert ">dualstack.pcapng (31 frames)<" in page and ">out.pcapng (31 frames)<" in page
    assert_renders_offline(browser, target, len(ALL_PLOTS), "anontrace leakage report: PASSED")
