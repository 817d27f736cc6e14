"""Scrub every capture of the shared corpus and the samples, and judge the outputs with tshark.

tshark is the independent judge: our own dissector decides what to rewrite, so it must not also
decide whether the result is right. Each capture is scrubbed once per rule set through the CLI
(in-process with click's CliRunner: a subprocess per run would cost ~0.3 s of interpreter start
each, 300 times), and each input and output is dissected by ONE tshark call, in parallel, that
extracts every field the checks need. Determinism is checked across separate processes.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import traceback
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from anontrace.cli import cli

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
SAMPLES = REPO / "sample_pcaps"
CAPTURE_SUFFIXES = (".pcap", ".pcapng")

KEY_HEX = "5f1d3a7c9e2b4d6f80a1c3e5079b2d4f61a3c5e7092b4d6f8a1c3e5f7092b4d6"

# The shipped default rules, and the same with all payload kept so tshark can verify checksums.
RULE_SETS = ("default", "keep-payload")
KEEP_PAYLOAD_RULES = "version: 1\nsteps:\n  - use: ip\n  - use: payload\n    keep: 65535\n"

# The default rules' `keep` ranges (addresses that name no host). The `keep_prefix` ranges
# (169.254/16, fe80::/64) are deliberately absent: their host bits must change.
KEPT_NETWORKS = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/32", "255.255.255.255/32", "127.0.0.0/8", "224.0.0.0/4",
    "::/128", "::1/128", "ff00::/8")]

ADDRESS_FIELDS = ("ip.src", "ip.dst", "ipv6.src", "ipv6.dst")
CHECKSUM_FIELDS = ("ip.checksum.status", "tcp.checksum.status", "udp.checksum.status",
                   "icmp.checksum.status", "icmpv6.checksum.status")
FIELDS = ("_ws.malformed", *ADDRESS_FIELDS, *CHECKSUM_FIELDS)
CHECKSUM_BAD = "0"  # value string of every *.checksum.status field: 0 Bad, 1 Good, 2 Unverified
TSHARK_PREFS = ("-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
                "-o", "udp.check_checksum:TRUE")
LINKTYPE_USER0 = 147


def capture(path: Path) -> object:
    """A test parameter with an id like `corpus/dsa.pcap`."""
    return pytest.param(path, id=f"{path.parent.name}/{path.name}")


CAPTURES = [capture(path) for folder in (CORPUS, SAMPLES) if folder.is_dir()
            for path in sorted(folder.iterdir()) if path.suffix in CAPTURE_SUFFIXES]


@dataclass(frozen=True, slots=True)
class Dissection:
    """What tshark made of one file: exit status, and per frame number each field's values."""

    returncode: int
    stderr: str
    frames: dict[int, dict[str, list[str]]]
    relabelled_from: int | None  # link type tshark does not support, read as USER0 instead

    def values(self, frame: int, field: str) -> list[str]:
        return self.frames.get(frame, {}).get(field, [])


@dataclass(frozen=True, slots=True)
class Scrub:
    """One `anontrace scrub` run and, if it succeeded, tshark's dissection of its output."""

    exit_code: int
    messages: str  # stderr, and the traceback of an unexpected exception
    output: Path
    dissection: Future[Dissection] | None


@dataclass(frozen=True, slots=True)
class CaptureRun:
    source: Future[Dissection]
    scrubs: dict[str, Scrub]


def tshark(path: Path, workdir: Path) -> Dissection:
    """Dissect `path` in one tshark call; a classic pcap whose link type tshark does not know
    is read as LINKTYPE_USER0 from a relabelled copy, so its records can still be counted."""
    dissection = _tshark(path, None)
    unsupported = re.search(r"network type (\d+) unknown or unsupported", dissection.stderr)
    if dissection.returncode == 0 or unsupported is None:
        return dissection
    data = bytearray(path.read_bytes())
    order = "<" if bytes(data[:4]) in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    struct.pack_into(order + "I", data, 20, LINKTYPE_USER0)
    copy = workdir / f"user0-{path.name}"
    copy.write_bytes(data)
    return _tshark(copy, int(unsupported.group(1)))


def _tshark(path: Path, relabelled_from: int | None) -> Dissection:
    fields = [arg for field in ("frame.number", *FIELDS) for arg in ("-e", field)]
    process = subprocess.run(
        ["tshark", "-n", "-r", str(path), *TSHARK_PREFS, "-T", "fields", *fields,
         "-E", "occurrence=a", "-E", "separator=/t", "-E", "aggregator=,"],
        capture_output=True, text=True, check=False)
    frames: dict[int, dict[str, list[str]]] = {}
    for line in process.stdout.splitlines():
        number, *values = line.split("\t")
        frames[int(number)] = {field: value.split(",") for field, value
                               in zip(FIELDS, values, strict=True) if value}
    return Dissection(process.returncode, process.stderr, frames, relabelled_from)


def scrub_arguments(source: Path, output: Path, key_file: Path, rules: Path | None) -> list[str]:
    arguments = ["scrub", str(source), "-o", str(output), "--key-file", str(key_file), "-q"]
    return arguments + (["-r", str(rules)] if rules is not None else [])


def scrub_in_process(source: Path, output: Path, key_file: Path,
                     rules: Path | None) -> tuple[int, str]:
    """Exit code and messages (stderr, or an unexpected exception's traceback) of one scrub."""
    sigterm = signal.getsignal(signal.SIGTERM)  # the CLI installs its own handler
    try:
        result = CliRunner().invoke(cli, scrub_arguments(source, output, key_file, rules))
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    messages = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        messages += "".join(traceback.format_exception(result.exception))
    return result.exit_code, messages


@pytest.fixture(scope="session")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "corpus.key"
    path.write_text(KEY_HEX + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="session")
def corpus_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                key_file: Path) -> Iterator[dict[Path, CaptureRun]]:
    """Scrub every capture the selected tests use with every rule set; tshark dissects each
    input and output in a thread pool, in test order, while the tests consume the results."""
    if shutil.which("tshark") is None:
        pytest.fail("tshark not found: these tests need it (apt-get install tshark)")
    workdir = tmp_path_factory.mktemp("corpus")
    keep_payload = workdir / "keep-payload.yaml"
    keep_payload.write_text(KEEP_PAYLOAD_RULES)
    rule_files = {"default": None, "keep-payload": keep_payload}
    params = [getattr(item, "callspec", None) for item in request.session.items
              if item.path == Path(__file__)]  # other files name their parameters `source` too
    wanted = dict.fromkeys(spec.params["source"] for spec in params
                           if spec is not None and "source" in spec.params)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        runs = {source: CaptureRun(pool.submit(tshark, source, workdir), {}) for source in wanted}
        for source, run in runs.items():
            for name, rules in rule_files.items():
                output = workdir / name / source.parent.name / source.name
                output.parent.mkdir(parents=True, exist_ok=True)
                exit_code, messages = scrub_in_process(source, output, key_file, rules)
                dissection = pool.submit(tshark, output, output.parent) if exit_code == 0 else None
                run.scrubs[name] = Scrub(exit_code, messages, output, dissection)
        yield runs
        pool.shutdown(cancel_futures=True)


def scrubbed(corpus_runs: dict[Path, CaptureRun], source: Path,
             rules: str) -> tuple[Dissection, Dissection]:
    """tshark's dissections of the input and of its scrubbed output, read without error."""
    run = corpus_runs[source]
    scrub = run.scrubs[rules]
    if scrub.dissection is None:
        pytest.fail(f"scrub failed (exit {scrub.exit_code}): {scrub.messages}")
    original, anonymized = run.source.result(), scrub.dissection.result()
    for role, dissection in (("input", original), ("output", anonymized)):
        if dissection.returncode != 0:
            pytest.fail(f"tshark cannot read the {role} (exit {dissection.returncode}): "
                        f"{dissection.stderr.strip()}")
    return original, anonymized


def frame_by_frame(corpus_runs: dict[Path, CaptureRun], source: Path,
                   rules: str) -> tuple[Dissection, Dissection]:
    """As `scrubbed`, for checks that pair frames by number: they need every frame kept."""
    original, anonymized = scrubbed(corpus_runs, source, rules)
    if list(anonymized.frames) != list(original.frames):
        pytest.fail(f"{len(original.frames)} frames in, {len(anonymized.frames)} out: "
                    "frames cannot be paired by number")
    return original, anonymized


def test_corpus_is_complete() -> None:
    """The corpus holds exactly the captures SOURCES.md lists (else the tests below shrink)."""
    listed = set(re.findall(r"^\| (\S+\.pcap(?:ng)?) \|", (CORPUS / "SOURCES.md").read_text(),
                            re.MULTILINE))
    present = {path.name for path in CORPUS.iterdir() if path.suffix in CAPTURE_SUFFIXES}
    assert len(listed) == 150
    assert present == listed


@pytest.mark.parametrize("rules", RULE_SETS)
@pytest.mark.parametrize("source", CAPTURES)
def test_scrub_succeeds(corpus_runs: dict[Path, CaptureRun], source: Path, rules: str) -> None:
    scrub = corpus_runs[source].scrubs[rules]
    assert scrub.exit_code == 0, scrub.messages


@pytest.mark.parametrize("rules", RULE_SETS)
@pytest.mark.parametrize("source", CAPTURES)
def test_tshark_reads_every_frame(corpus_runs: dict[Path, CaptureRun], source: Path,
                                  rules: str) -> None:
    """tshark reads the output without error and finds as many frames as in the input."""
    original, anonymized = scrubbed(corpus_runs, source, rules)
    assert anonymized.relabelled_from == original.relabelled_from
    assert len(anonymized.frames) == len(original.frames), \
        f"{len(original.frames)} frames in, {len(anonymized.frames)} out"


@pytest.mark.parametrize("rules", RULE_SETS)
@pytest.mark.parametrize("source", CAPTURES)
def test_no_new_malformed_frame(corpus_runs: dict[Path, CaptureRun], source: Path,
                                rules: str) -> None:
    """A frame tshark finds malformed after the scrub was malformed before it. (Cut frames
    show as `[Packet size limited during capture]`, `_ws.short`, which is expected.)"""
    original, anonymized = frame_by_frame(corpus_runs, source, rules)
    new = {frame: anonymized.values(frame, "_ws.malformed")[0] for frame in anonymized.frames
           if anonymized.values(frame, "_ws.malformed")
           and not original.values(frame, "_ws.malformed")}
    assert new == {}


@pytest.mark.parametrize("source", CAPTURES)
def test_no_new_bad_checksum(corpus_runs: dict[Path, CaptureRun], source: Path) -> None:
    """With all payload kept, a checksum tshark finds bad after the scrub was bad before it.

    tshark lists a field's occurrences outermost first, and a scrub only cuts a frame's tail
    (inner headers such as ICMP-quoted packets, trailers), so the output's occurrences are a
    prefix of the input's: the n-th is compared with the n-th. An occurrence the input lacks
    counts as not bad before."""
    original, anonymized = frame_by_frame(corpus_runs, source, "keep-payload")
    new = {}
    for frame in anonymized.frames:
        for field in CHECKSUM_FIELDS:
            before, after = original.values(frame, field), anonymized.values(frame, field)
            if any(status == CHECKSUM_BAD and before[index:index + 1] != [CHECKSUM_BAD]
                   for index, status in enumerate(after)):
                new[(frame, field)] = (before, after)
    assert new == {}, "(frame, field): (statuses before, statuses after); 0 Bad, 1 Good"


def is_kept(address: str) -> bool:
    return any(ipaddress.ip_address(address) in network for network in KEPT_NETWORKS)


@pytest.mark.parametrize("source", CAPTURES)
def test_no_original_address_left(corpus_runs: dict[Path, CaptureRun], source: Path) -> None:
    """No IPv4/IPv6 header address tshark shows in the input (tunnelled ones included) is in an
    IPv4/IPv6 header tshark shows in the output, but for the ranges the rules keep on purpose.
    (Default rules only: a rule that keeps payload keeps the headers tunnels carry in it.)"""
    original, anonymized = scrubbed(corpus_runs, source, "default")
    secret = {value for fields in original.frames.values() for field in ADDRESS_FIELDS
              for value in fields.get(field, []) if not is_kept(value)}
    left: dict[str, list[tuple[int, str]]] = {}
    for frame, fields in anonymized.frames.items():
        for field in ADDRESS_FIELDS:
            for value in fields.get(field, []):
                if value in secret:
                    left.setdefault(value, []).append((frame, field))
    assert left == {}, "original address: [(output frame, field), ...]"


@pytest.mark.parametrize("source", [capture(SAMPLES / "dualstack.pcapng"),
                                    capture(CORPUS / "gso-ipv4-vxlan-ipv6.pcap"),
                                    capture(CORPUS / "OSPFv2_Capture_FINAL.pcapng")])
def test_scrub_is_deterministic(corpus_runs: dict[Path, CaptureRun], source: Path,
                                key_file: Path, tmp_path: Path) -> None:
    """The same input, key and rules give a byte-identical output, in separate processes (each
    with its own hash seed) as in-process."""
    outputs = [tmp_path / run / source.name for run in ("first", "second")]
    for output in outputs:
        output.parent.mkdir()
        subprocess.run([sys.executable, "-m", "anontrace",
                        *scrub_arguments(source, output, key_file, None)], check=True)
    in_process = corpus_runs[source].scrubs["default"].output
    assert outputs[0].read_bytes() == outputs[1].read_bytes() == in_process.read_bytes()
