"""The parallel engine end to end, through `python -m anontrace scrub`: split files and files spread
over 2 or 3 worker processes give the very bundle (trace, labels, flows, report, manifest) that one
process gives; a worker killed mid-run fails the run (exit 1, naming the input and byte range) and
publishes nothing; `timing` steps carry their state from piece to piece; stdin, compressed inputs with
a `timing` step and a `timing` step under `when:` keep the run in one process."""

from __future__ import annotations

import gzip
import os
import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from scapy.utils import RawPcapNgReader

from anontrace.io.pcap import HEADER
from anontrace.keys import read_key_file
from anontrace.parallel import KeySpec, Setup, new_run, work
from anontrace.pool import LocalPool
from anontrace.rules.compile import read_rules
from tests.io.capbuild import custom, epb, idb, isb, nrb, shb, spb, tsresol
from tests.scrubkit import (
    ROOT,
    TIMEOUT,
    Material,
    assert_same_bundle,
    bundle,
    listing,
    make_trace,
    scrub,
    workers_of,
)

CHUNK = str(700_000)  # the 20,000-frame trace (11 MB) in ~16 pieces
SMALL_CHUNK = str(300)  # the corpus captures (a few KB) in pieces too
CORPUS = Path("/work/shared/corpus")
CORPUS_PCAPNG = ("nhrp.pcapng", "OSPFv2_Capture_FINAL.pcapng")
SPLIT = "2 worker processes", "3 worker processes"


def records(path: Path) -> list[tuple[int, bytes, int]]:
    """(time in µs, bytes, wire length) of every record of a little-endian µs pcap."""
    data = path.read_bytes()
    found, at = [], HEADER
    while at < len(data):
        seconds, micros, caplen, wirelen = struct.unpack_from("<IIII", data, at)
        found.append((seconds * 1_000_000 + micros, data[at + 16:at + 16 + caplen], wirelen))
        at += 16 + caplen
    return found


@pytest.fixture(scope="module")
def multi(trace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6,000 frames of the trace as pcapng: two sections (the second big-endian), four Ethernet
    interfaces of different time resolutions, one described between packets, other blocks among
    them, and simple packet blocks."""
    frames = records(trace)[:6000]
    data = bytearray(shb("<") + idb("<", 1, 0) + idb("<", 1, 0, tsresol(9)))
    for number, (micros, raw, wirelen) in enumerate(frames[:3000]):
        iface = number % 2
        data += epb("<", iface, micros * (1000 if iface else 1), raw, wirelen)
        if number == 1000:
            data += nrb("<", bytes([10, 0, 0, 1]), b"host.example") + isb("<", 0, micros, b"stats")
    data += shb(">") + idb(">", 1, 0, tsresol(3))
    for number, (micros, raw, wirelen) in enumerate(frames[3000:]):
        if number == 500:
            data += idb(">", 1, 0) + custom(">", 0x00000BAD, b"vendor")
        if number % 7 == 3:
            data += spb(">", raw, wirelen)
        else:
            iface = 1 if number >= 500 and number % 2 else 0
            data += epb(">", iface, micros if iface else micros // 1000, raw, wirelen)
    path = tmp_path_factory.mktemp("multi") / "multi.pcapng"
    path.write_bytes(bytes(data))
    return path


def run_in(directory: Path, source: Path | str, made: Material, name: str, *more: str,
           stdin: bytes | None = None) -> tuple[dict[str, object], dict[str, object]]:
    """Scrub into `directory/name`: (the summary, the bundle)."""
    directory.mkdir()
    summary = scrub([str(source)], directory / name, made, *more, stdin=stdin).summary
    return summary, bundle(directory / name)


def spread_runs(tmp_path: Path, source: Path, made: Material, name: str, chunk: str) -> None:
    """Workers 1 (this process), 2 and 3 (split files) give the same bundle."""
    one, expected = run_in(tmp_path / "w1", source, made, name, "--workers", "1", "--chunk-size", chunk)
    assert one["engine"] == "this process"
    for workers, engine in zip(("2", "3"), SPLIT, strict=True):
        summary, found = run_in(tmp_path / f"w{workers}", source, made, name, "--workers", workers,
                                "--chunk-size", chunk)
        assert summary["engine"] == engine
        assert summary["frames_in"] == one["frames_in"] and summary["transforms"] == one["transforms"]
        assert_same_bundle(expected, found, f"{source.name} with {workers} workers")


def test_split_trace_gives_the_same_bundle_with_1_2_and_3_workers(tmp_path: Path, trace: Path,
                                                                    made: Material) -> None:
    assert trace.stat().st_size > 10 * int(CHUNK)  # it is split indeed
    spread_runs(tmp_path, trace, made, "out.pcap", CHUNK)
    labels = (tmp_path / "w1" / "out.pcap.labels.csv").read_text()
    assert "burst" in labels and "web" in labels  # the ground truth labelled frames across pieces


def test_pcapng_with_sections_and_interfaces_gives_the_same_bundle(tmp_path: Path, multi: Path,
                                                                   made: Material) -> None:
    spread_runs(tmp_path, multi, made, "out.pcapng", str(64_000))
    reader = RawPcapNgReader(str(tmp_path / "w3" / "out.pcapng"))  # an independent reader
    try:
        frames = sum(1 for _ in reader)
        linktypes = [linktype for linktype, _, _ in reader.interfaces]
    finally:
        reader.close()
    assert frames == 6000
    assert linktypes == [1, 1, 1, 1]


@pytest.mark.parametrize("name", CORPUS_PCAPNG)
def test_corpus_pcapng_split_small_gives_the_same_bundle(tmp_path: Path, made: Material, name: str) -> None:
    source = CORPUS / name
    assert source.stat().st_size > 4 * int(SMALL_CHUNK)
    spread_runs(tmp_path, source, made, "out.pcapng", SMALL_CHUNK)


def test_several_files_spread_over_workers_give_the_same_bundles(tmp_path: Path, made: Material,
                                                                  multi: Path) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    sources = [make_trace(inputs / f"s{n}.pcap", 3000 + 500 * n, seed=20 + n) for n in range(3)]
    sources.append(multi)
    names = sorted(s.name for s in sources)
    expected: dict[str, dict[str, object]] = {}
    for workers, chunk in (("1", "1000000000"), ("2", "1000000000"), ("3", "400000")):
        out = tmp_path / f"w{workers}"
        out.mkdir()
        summary = scrub(sources, out, made, "--workers", workers, "--chunk-size", chunk).summary
        assert summary["engine"] == ("this process" if workers == "1" else f"{workers} worker processes")
        assert [f["input"] for f in summary["files"]] == [str(s) for s in sources]
        found = {name: bundle(out / name) for name in names}
        if not expected:
            expected = found
            continue
        for name in names:
            assert_same_bundle(expected[name], found[name], f"{name} with {workers} workers")


def test_pcap_into_pcapng_gives_the_same_output_and_tshark_reads_it(tmp_path: Path, trace: Path,
                                                                    made: Material) -> None:
    run_in(tmp_path / "w1", trace, made, "out.pcapng", "--workers", "1", "--chunk-size", CHUNK)
    summary, found = run_in(tmp_path / "w2", trace, made, "out.pcapng", "--workers", "2",
                            "--chunk-size", CHUNK)
    assert summary["engine"] == "2 worker processes"
    assert_same_bundle(bundle(tmp_path / "w1" / "out.pcapng"), found, "pcapng output")
    output = tmp_path / "w2" / "out.pcapng"
    assert output.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    done = subprocess.run(["tshark", "-n", "-r", str(output), "-T", "fields", "-e", "frame.number"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 20_000


ORIGIN_RULES = """\
version: 1
extends: default
steps:
  - use: timing
    shift: origin
    origin: '2001-01-01T00:00:00Z'
    noise: laplace
    noise_scale_us: 2000
    precision: us
"""


@pytest.mark.parametrize("profile", ["strict", "research", "origin"])
def test_timing_steps_carry_their_state_across_pieces_and_files(
        tmp_path: Path, trace: Path, multi: Path, made: Material, profile: str) -> None:
    """`timing` keeps output times in order across frames (noise would otherwise reorder them)
    and `shift: origin` is set by the run's first frame, across files: the workers are given the
    state this process walks along the record times, and the bundles equal one process's."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.pcap").write_bytes(trace.read_bytes())
    (inputs / "b.pcapng").write_bytes(multi.read_bytes())
    rules = profile
    if profile == "origin":
        rules = str(tmp_path / "origin.yaml")
        Path(rules).write_text(ORIGIN_RULES)
    outputs = {}
    for workers in ("1", "2", "3"):
        done = scrub([inputs], tmp_path / f"w{workers}", made, "-r", rules, "--workers", workers,
                     "--chunk-size", CHUNK)
        expected = "this process" if workers == "1" else f"{workers} worker processes"
        assert done.summary["engine"] == expected
        outputs[workers] = [bundle(tmp_path / f"w{workers}" / name) for name in ("a.pcap", "b.pcapng")]
    for workers in ("2", "3"):
        for one, other in zip(outputs["1"], outputs[workers], strict=True):
            assert_same_bundle(one, other, f"{profile}, {workers} workers")
    if profile == "origin":  # the run's first frame (of a.pcap) moved to the origin, give or take noise
        first = records(tmp_path / "w2" / "a.pcap")[0][0]
        assert abs(first - 978_307_200_000_000) < 100_000  # Laplace b = 2 ms: beyond 100 ms, e^-50


WHEN_RULES = """\
version: 1
extends: default
steps:
  - use: timing
    when: {protocol: tcp}
    noise: uniform
    noise_scale_us: 100
"""


def test_a_timing_step_under_when_keeps_the_run_in_this_process(tmp_path: Path, trace: Path,
                                                                made: Material) -> None:
    rules = tmp_path / "when.yaml"
    rules.write_text(WHEN_RULES)
    _, expected = run_in(tmp_path / "w1", trace, made, "out.pcap", "-r", str(rules), "--workers", "1")
    summary, found = run_in(tmp_path / "w2", trace, made, "out.pcap", "-r", str(rules), "--workers", "2",
                            "--chunk-size", CHUNK)
    assert summary["engine"] == ("this process (the timing step (under `when:`) carries state from "
                                 "frame to frame)")
    assert_same_bundle(expected, found, "timing under when")


def test_a_timing_step_with_a_compressed_input_keeps_the_run_in_this_process(
        tmp_path: Path, trace: Path, made: Material) -> None:
    packed = tmp_path / "t.pcap.gz"
    packed.write_bytes(gzip.compress(trace.read_bytes(), mtime=0))
    _, expected = run_in(tmp_path / "w1", packed, made, "out.pcap", "-r", "strict", "--workers", "1")
    summary, found = run_in(tmp_path / "w2", packed, made, "out.pcap", "-r", "strict", "--workers", "2",
                            "--chunk-size", CHUNK)
    assert summary["engine"] == ("this process (the timing step carries state from frame to frame, "
                                 "and compressed inputs cannot be walked)")
    assert_same_bundle(expected, found, "strict, compressed input")


def test_stdin_keeps_the_run_in_this_process(tmp_path: Path, trace: Path, made: Material) -> None:
    _, expected = run_in(tmp_path / "file", trace, made, "out.pcap", "--workers", "1")
    summary, found = run_in(tmp_path / "stdin", "-", made, "out.pcap", "--workers", "2",
                            "--chunk-size", CHUNK, stdin=trace.read_bytes())
    assert summary["engine"] == "this process (the input is stdin)"
    for part in ("trace", ".labels.csv", ".flows.csv"):
        assert found[part] == expected[part], part


def test_a_scheduler_needs_the_dask_engine(tmp_path: Path, trace: Path, made: Material) -> None:
    done = scrub([trace], tmp_path / "out.pcap", made, "--scheduler", "tcp://127.0.0.1:8786")
    assert done.code == 2
    assert "--engine dask" in done.stderr
    assert listing(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# a worker dies


def test_a_killed_worker_fails_the_run_and_publishes_nothing(tmp_path: Path, made: Material) -> None:
    big = make_trace(tmp_path / "big.pcap", 150_000, seed=3)
    out = tmp_path / "out"
    out.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "anontrace", "scrub", str(big), "-o", str(out / "big.pcap"), "--key-file",
         str(made.key), "--labels-from", str(made.truth), "-q", "--workers", "2", "--chunk-size", "1000000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        run = psutil.Process(process.pid)
        deadline = time.monotonic() + TIMEOUT
        busy: list[psutil.Process] = []
        while not busy:  # a worker that has done some work: it is scrubbing a piece
            assert process.poll() is None, "the run ended before a worker was seen at work"
            assert time.monotonic() < deadline
            busy = [w for w in workers_of(run) if sum(w.cpu_times()[:2]) > 0.5]
            time.sleep(0.02)
        assert len(workers_of(run)) == 2
        os.kill(busy[0].pid, signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    message = stderr.decode()
    assert process.returncode == 1, message
    assert "Traceback" not in message
    first = message.splitlines()[0]
    assert first.startswith(f"Error: {big}: bytes ")
    assert re.search(r"bytes \d+ to (byte \d+|the end) \(from frame \d+\)", first), first
    assert "died" in first and "killed by signal 9" in first
    assert stdout == b""
    assert listing(out) == []  # no trace, no sidecar, no .partial file


def test_the_residual_scan_in_pieces_equals_the_scan_of_the_whole(tmp_path: Path, made: Material) -> None:
    """The workers scan a staged output piece by piece (for the identifiers the main process
    collected); joined, the pieces give the one-process scan: every finding, with its frame
    number and offset, the counts, and what the rules keep counted once."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
    from scapy.utils import wrpcap

    from anontrace.io.split import chunks
    from anontrace.leakage.residual import IdentifierCollector, kept_by_mappers
    from anontrace.leakage.residual import scan as scan_whole
    from anontrace.parallel import Session
    from anontrace.transforms.ip import Ip
    from anontrace.transforms.mac import Mac
    from tests.helpers import make_batch

    packets = []
    for n in range(600):  # headers name hosts; a payload every 7th frame leaks one as text
        host = f"10.1.{n % 5}.{n % 200 + 1}"
        leak = f"from {host} via 224.0.0.251".encode() if n % 7 == 0 else b"x" * 20
        packets.append(Ether(src=f"02:00:00:00:00:{n % 50:02x}", dst="02:00:00:00:01:00")
                       / IP(src=host, dst="192.0.2.9") / UDP(sport=40000, dport=4500) / Raw(leak))
    output = tmp_path / "out.pcap"
    wrpcap(str(output), packets)
    collector = IdentifierCollector()
    collector.observe(make_batch([bytes(p) for p in packets]), [None] * len(packets))
    key = read_key_file(made.key)
    rules = read_rules(None)
    transforms = rules.build(key)
    ips = next(t for t in transforms if isinstance(t, Ip)).mapper
    macs = next(t for t in transforms if isinstance(t, Mac)).mapper
    kept = kept_by_mappers(ips, macs)
    whole = scan_whole(str(output), collector, kept)  # the original itself: its headers count too
    assert whole["by_encoding"]["text"] == 86  # the leaks: every 7th of 600 frames
    assert whole["total"] > 2000 and whole["findings_truncated"]
    setup = Setup(new_run(), rules, KeySpec(key.fingerprint, str(made.key)))
    pool = LocalPool(2, work, "anontrace.parallel")
    try:
        session = Session(pool, [], setup, chunk_bytes=2000, window=5)
        pieces = session.scan(str(output), collector, kept, False)
    finally:
        pool.close()
    assert len(list(chunks(str(output), 2000))) > 10  # it was scanned in many pieces
    assert pieces == whole
    texts = [f["frame"] for f in pieces["findings"] if f["encoding"] == "text"]
    assert texts == [n for n in range(1, 601, 7) if n <= pieces["findings"][-1]["frame"]]
