"""The report assembled from observers: pair mode from a scrub or from two files, alone mode,
captures that do not correspond, and the versioned JSON every figure is read from."""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import pickle
import sys
from pathlib import Path

import jsonschema
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from anontrace.errors import TraceFormatError
from anontrace.keys import Key
from anontrace.leakage.gates import FIGURES, figure
from anontrace.leakage.report import NOT_IN_OUTPUT, Coverage, report_files
from anontrace.leakage.residual import kept_by_mappers
from anontrace.leakage.schema import SCHEMA
from anontrace.rules.compile import read_rules
from anontrace.transforms.ip import Ip
from anontrace.transforms.mac import Mac
from tests.helpers import anontrace, make_batch, write_pcap
from tests.leakage.pieces import Setup, in_pieces, read_all, split_plans, tricky_packets, whole

SAMPLES = Path(__file__).parent.parent.parent / "sample_pcaps"
KEY = Key(bytes(range(32)))
MAKE_TRACE = Path(__file__).parent.parent.parent / "benchmarks" / "make_trace.py"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "k.key"
    path.write_text(KEY.secret.hex())
    path.chmod(0o600)
    return path


def kept() -> object:
    transforms = read_rules(None).build(KEY)
    return kept_by_mappers(next(t for t in transforms if isinstance(t, Ip)).mapper,
                           next(t for t in transforms if isinstance(t, Mac)).mapper)


def scrubbed(tmp_path: Path, key_file: Path, source: Path, name: str = "out.pcap") -> Path:
    target = tmp_path / name
    result = anontrace("scrub", str(source), "-o", str(target), "--key-file", str(key_file), "-q")
    assert result.returncode == 0, result.stderr.decode()
    return target


def comparable(report: dict[str, object]) -> dict[str, object]:
    """What a pair report must share with the scrub's own: everything measured, not paths or
    time, and not the cuts only the scrub can attribute to a rule."""
    coverage = dict(report["coverage"])  # type: ignore[call-overload]
    coverage.pop("cut_by_rules")
    residual = dict(report["residual"])  # type: ignore[call-overload]
    return {"residual": {k: v for k, v in residual.items() if k != "findings"},
            "coverage": coverage, "risk": report["risk"], "utility": report["utility"]}


@pytest.mark.parametrize("sample", ["office.pcap", "dualstack.pcapng"])
def test_a_pair_report_measures_what_the_scrub_measured(tmp_path: Path, key_file: Path, sample: str) -> None:
    source = SAMPLES / sample
    target = scrubbed(tmp_path, key_file, source, "out" + source.suffix)
    own = json.loads(Path(str(target) + ".report.json").read_text())

    pair = report_files(str(source), str(target), kept=kept())  # type: ignore[arg-type]

    assert own["mode"] == pair["mode"] == "pair"
    assert comparable(own) == comparable(pair)
    assert own["coverage"]["frames_in"] > 0
    assert own["residual"]["total"] == 0
    assert sum(own["residual"]["identifiers_checked"].values()) > 0


def test_every_gate_figure_is_measured_in_a_pair_report(tmp_path: Path, key_file: Path) -> None:
    measured: set[str] = set()
    for sample in ("office.pcap", "dualstack.pcapng"):
        target = scrubbed(tmp_path, key_file, SAMPLES / sample, "out-" + sample)
        # the samples hold few hosts: name one known host per family, or all would be "busiest"
        known = [ipaddress.ip_address(a).packed for a in ("10.1.2.23", "2001:db8:1:2::23")]
        report = report_files(str(SAMPLES / sample), str(target), known=known)
        measured |= {name for name in FIGURES if figure(report, name) is not None}
    assert measured == set(FIGURES)


def test_reports_follow_the_published_schema(tmp_path: Path, key_file: Path) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    target = scrubbed(tmp_path, key_file, SAMPLES / "office.pcap")
    for report in (json.loads(Path(str(target) + ".report.json").read_text()),
                   report_files(str(SAMPLES / "office.pcap"), str(target)),
                   report_files(None, str(target))):
        jsonschema.Draft202012Validator(SCHEMA).validate(report)


def test_alone_the_figures_that_need_the_original_are_null(tmp_path: Path, key_file: Path) -> None:
    target = scrubbed(tmp_path, key_file, SAMPLES / "office.pcap")
    report = report_files(None, str(target))
    assert report["mode"] == "anonymized-only"
    assert report["residual"] is None
    assert report["original"] is None
    assert report["utility"]["original"] is None
    assert report["risk"]["fingerprints"]["original"] is None
    assert report["coverage"]["frames_in"] == report["coverage"]["frames_out"] > 0


def frames(count: int) -> list[Ether]:
    return [Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") /
            IP(src="10.1.0.1", dst="10.2.0.2") / UDP(sport=1000 + i, dport=53) / Raw(bytes(i + 1))
            for i in range(count)]


def test_frames_missing_from_the_anonymized_capture_are_counted_as_dropped(tmp_path: Path) -> None:
    originals = frames(6)
    original = write_pcap(tmp_path / "orig.pcap", originals)
    kept_frames = [originals[i] for i in (0, 1, 3, 4)]  # frames 3 and 6 left out
    anonymized = write_pcap(tmp_path / "anon.pcap", kept_frames)

    report = report_files(str(original), str(anonymized))

    assert report["coverage"]["frames_in"] == 6
    assert report["coverage"]["frames_out"] == 4
    assert report["coverage"]["dropped"] == {NOT_IN_OUTPUT: 2}


def test_captures_that_do_not_correspond_are_refused(tmp_path: Path) -> None:
    original = write_pcap(tmp_path / "orig.pcap", frames(4))
    other = write_pcap(tmp_path / "other.pcap",
                       [Ether() / IP(src="10.9.9.9", dst="10.8.8.8") / TCP(sport=1, dport=2)] * 3)
    with pytest.raises(TraceFormatError, match="do not correspond"):
        report_files(str(original), str(other))


def test_a_capture_mostly_unrelated_is_refused_even_when_some_frames_fit(tmp_path: Path) -> None:
    many = frames(40)
    original = write_pcap(tmp_path / "orig.pcap", many)
    anonymized = write_pcap(tmp_path / "anon.pcap", [many[-1]])  # one frame fits, 39 do not
    with pytest.raises(TraceFormatError, match="1 of 40 frames"):
        report_files(str(original), str(anonymized))


def test_a_planted_leak_is_found_and_the_gate_fails(tmp_path: Path, key_file: Path) -> None:
    source = SAMPLES / "office.pcap"
    leaked = tmp_path / "leaked.pcap"
    leaked.write_bytes(source.read_bytes())  # the "anonymized" capture is the original itself

    result = anontrace("report", str(source), str(leaked), "-r", "default", "-q")

    assert result.returncode == 3, result.stderr.decode()
    assert b"residual.total" in result.stderr
    report = json.loads(Path(str(leaked) + ".report.json").read_text())
    assert report["residual"]["total"] > 0
    assert report["passed"] is False
    assert Path(str(leaked) + ".report.html").exists()


def test_coverage_counts_each_frame_by_what_happened_to_it() -> None:
    frames = [bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) / Raw(b"x" * 20))
              for _ in range(5)]
    batch = make_batch(frames)
    batch.data[0][26] ^= 1  # rewritten
    del batch.data[1][40:]  # cut short by a rule
    batch.drop(4, "late")  # dropped in this order, but ties are listed in frame order
    batch.drop(3, "early")
    batch.cut["a rule"] += 1
    coverage = Coverage()
    coverage.observe(batch, [None] * 5)
    found = coverage.result()
    assert (found["frames_in"], found["frames_out"], found["frames_transformed"], found["frames_cut"]) == \
        (5, 3, 2, 1)
    assert list(found["dropped"].items()) == [("early", 1), ("late", 1)]
    assert found["frames_dropped"] == 2
    assert (found["cut_by_rules"], found["cut_by_dissector"]) == ({"a rule": 1}, {})


# ------------------------------------------------------------------------------------------
# Observed in consecutive pieces (as `scrub --workers` does) and merged: the same as in one run

CORPUS = Path("/work/shared/corpus")
CAPTURES = sorted(SAMPLES.glob("*.pcap*")) + (sorted(CORPUS.glob("*.pcap*")) if CORPUS.is_dir() else [])


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    return Setup.make(tmp_path_factory.mktemp("pieces"))


def same_in_pieces(setup: Setup, source: Path, output: Path, seed: int, single_frames_up_to: int = 60) -> int:
    """Compare every cut of `source` that `split_plans` gives with one run; the number of frames."""
    try:
        frames, interfaces = read_all(source)
    except TraceFormatError:
        pytest.skip(f"{source.name} cannot be read at all")
    expected = whole(setup, source, output)
    assert expected.report["coverage"]["frames_in"] == len(frames)
    for name, splits in split_plans(len(frames), seed, single_frames_up_to).items():
        observed = in_pieces(setup, frames, interfaces, splits, output)
        assert observed == expected, f"{source.name} cut {name} at {splits[:10]}"
    return len(frames)


@pytest.mark.parametrize("source", CAPTURES, ids=[path.name for path in CAPTURES])
def test_a_capture_observed_in_pieces_reports_as_in_one_run(setup: Setup, tmp_path: Path,
                                                            source: Path) -> None:
    same_in_pieces(setup, source, tmp_path / ("out" + source.suffix), seed=len(source.name))


def test_what_hangs_on_earlier_frames_is_the_same_in_pieces(setup: Setup, tmp_path: Path) -> None:
    source = write_pcap(tmp_path / "tricky.pcap", tricky_packets(), nano=True)
    assert same_in_pieces(setup, source, tmp_path / "out.pcap", seed=6, single_frames_up_to=200) > 90


def test_the_benchmark_trace_observed_in_pieces_reports_as_in_one_run(setup: Setup, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_trace", MAKE_TRACE)
    assert spec is not None and spec.loader is not None
    make_trace = importlib.util.module_from_spec(spec)
    sys.modules["make_trace"] = make_trace  # its dataclasses look their module up
    try:
        spec.loader.exec_module(make_trace)
        source = tmp_path / "trace.pcap"
        make_trace.write_pcap(source, make_trace.TraceGenerator(1).frames(20_000))
    finally:
        del sys.modules["make_trace"]
    assert same_in_pieces(setup, source, tmp_path / "out.pcap", seed=20) == 20_000


def test_pieces_merged_out_of_order_do_not_pass_for_one_run(setup: Setup, tmp_path: Path) -> None:
    source = write_pcap(tmp_path / "tricky.pcap", tricky_packets(), nano=True)
    frames, interfaces = read_all(source)
    expected = whole(setup, source, tmp_path / "out.pcap")
    in_order = in_pieces(setup, frames, interfaces, [40], tmp_path / "out.pcap")
    swapped = in_pieces(setup, frames, interfaces, [40], tmp_path / "out.pcap", order=[1, 0])
    assert in_order == expected
    assert swapped.report["risk"] != expected.report["risk"]
    assert swapped.labels_csv != expected.labels_csv


def test_a_builder_for_a_worker_survives_pickling(setup: Setup) -> None:
    builder = setup.builder(main=False)
    copy = pickle.loads(pickle.dumps(builder))
    assert copy.kept is None and copy.pair and copy.identifiers is not None
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pickle.dumps(setup.builder(main=True))  # `kept` is a closure: the main process keeps it


def test_coverage_merged_counts_both_and_lists_reasons_by_first_appearance() -> None:
    udp = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) / Raw(b"x" * 20))
    first, second = make_batch([udp] * 3), make_batch([udp] * 3)
    first.drop(0, "b")
    second.drop(0, "a")  # a tie with "b": the reason seen first comes first
    second.drop(1, "c")
    second.data[2][26] ^= 1
    earlier, later = Coverage(), Coverage()
    earlier.observe(first, [None] * 3)
    later.observe(second, [None] * 3)
    earlier.merge(later)
    found = earlier.result()
    assert (found["frames_in"], found["frames_out"], found["frames_transformed"]) == (6, 3, 1)
    assert list(found["dropped"].items()) == [("b", 1), ("a", 1), ("c", 1)]
