"""The shareable bundle end to end, through the command line as a user runs it: what a scrub
writes beside the trace (labels, flows, leakage report, manifest), gates that withhold a trace,
`verify` on intact and tampered bundles, key shares, and `anontrace report` on real pairs.

Expected values come from how the inputs were made: the sample captures are read with scapy, an
independent dissector, and small captures are built here; digests come from hashlib.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
import shutil
import stat
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import jsonschema
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import PcapNgReader, rdpcap

from anontrace.leakage.schema import SCHEMA
from tests.helpers import anontrace, write_pcap

SAMPLES = Path(__file__).parent.parent / "sample_pcaps"
DUALSTACK = SAMPLES / "dualstack.pcapng"
NANOSECOND = SAMPLES / "nanosecond.pcap"
OFFICE = SAMPLES / "office.pcap"
SIDECARS = {"labels": ".labels.csv", "flows": ".flows.csv", "report-json": ".report.json",
            "report-html": ".report.html"}
BUNDLE = ["", *SIDECARS.values(), ".manifest.json"]
LABEL_RULES = """\
version: 1
extends: default
labels:
  - when: {protocol: tcp, port: 80}
    label: web
  - when: {protocol: udp, port: 53}
    label: dns
"""
# Line 4 names a host the capture does not hold: it must be reported, not ignored.
TRUTH = """\
src,dst,protocol,dport,label
10.1.2.23,192.0.2.25,tcp,22,ssh
10.1.2.23,198.51.100.53,udp,53,resolver
10.9.9.9,,,,ghost
"""
# Line 6, column 5 is the second gate's figure.
GATED_RULES = """\
version: 1
extends: default
report:
  fail_on:
    residual.total: 0
    coverage.frames_cut: 0
"""


def ok(result: CompletedProcess[bytes]) -> str:
    """The stderr of a run that must have succeeded."""
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    return stderr


def failed(result: CompletedProcess[bytes], code: int, *parts: str) -> str:
    stderr = result.stderr.decode()
    assert result.returncode == code, stderr
    assert "Error: " in stderr and "Traceback" not in stderr, stderr
    for part in parts:
        assert part in stderr, stderr
    return stderr


def listing(directory: Path) -> list[str]:
    """Every entry, hidden ones (temporary `.partial` files) included."""
    return sorted(p.name for p in directory.iterdir())


def bundle_names(trace: str) -> list[str]:
    return sorted(trace + suffix for suffix in BUNDLE)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ports(packet: Packet) -> set[int]:
    layer = packet[TCP] if TCP in packet else packet[UDP]
    return {layer.sport, layer.dport}


def expected_labels() -> dict[int, str]:
    """The label of each frame of dualstack.pcapng (1-based), as TRUTH and LABEL_RULES give it:
    ground-truth rows first (either direction of the flow), then the rule file's first match."""
    found = {}
    for number, packet in enumerate(rdpcap(str(DUALSTACK)), 1):
        ends = {packet[IP].src, packet[IP].dst} if IP in packet else set()
        if TCP in packet and ends == {"10.1.2.23", "192.0.2.25"} and 22 in ports(packet):
            found[number] = "ssh"
        elif UDP in packet and ends == {"10.1.2.23", "198.51.100.53"} and 53 in ports(packet):
            found[number] = "resolver"
        elif TCP in packet and 80 in ports(packet):
            found[number] = "web"
        elif UDP in packet and 53 in ports(packet):
            found[number] = "dns"
    return found


@dataclass(frozen=True, slots=True)
class Made:
    """A file made once for the module, and what the command said about it."""

    path: Path
    name: str  # the key's fingerprint or the signing key's id


@dataclass(frozen=True, slots=True)
class Bundle:
    trace: Path
    truth: Path
    result: CompletedProcess[bytes]

    @property
    def directory(self) -> Path:
        return self.trace.parent

    def manifest(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(Path(f"{self.trace}.manifest.json").read_text())
        return loaded


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bundle")


@pytest.fixture(scope="module")
def key(home: Path) -> Made:
    path = home / "site.key"
    stderr = ok(anontrace("keygen", "-o", str(path)))
    found = re.search(r"fingerprint ([0-9a-f]{16})\)", stderr)
    assert found, stderr
    return Made(path, found.group(1))


def make_signing_key(path: Path) -> Made:
    stderr = ok(anontrace("key", "signing", "-o", str(path)))
    found = re.search(r"key id ([0-9a-f]{16})\)", stderr)
    assert found, stderr
    return Made(path, found.group(1))


@pytest.fixture(scope="module")
def signer(home: Path) -> Made:
    return make_signing_key(home / "sign.pem")


@pytest.fixture(scope="module")
def bundle(home: Path, key: Made, signer: Made) -> Bundle:
    """dualstack.pcapng scrubbed with labels from a rule file and a CSV, signed."""
    rules = home / "labels.yaml"
    rules.write_text(LABEL_RULES)
    truth = home / "truth.csv"
    truth.write_text(TRUTH)
    out = home / "shared"
    out.mkdir()
    trace = out / "out.pcapng"
    result = anontrace("scrub", str(DUALSTACK), "-o", str(trace), "--key-file", str(key.path),
                       "-r", str(rules), "--labels-from", str(truth), "--sign-key", str(signer.path))
    return Bundle(trace, truth, result)


@pytest.fixture
def empty_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary directory of the commands run (where `-o -` stages its output)."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setenv("TMPDIR", str(directory))
    return directory


def scrub_to(directory: Path, source: Path, key: Made, *options: str, name: str | None = None) -> Path:
    directory.mkdir(exist_ok=True)
    trace = directory / (name or source.name)
    ok(anontrace("scrub", str(source), "-o", str(trace), "--key-file", str(key.path), "-q", *options))
    return trace


# 1. What a scrub writes -----------------------------------------------------------------------------


def test_a_scrub_writes_the_bundle_and_its_manifest_holds_their_digests(bundle: Bundle, key: Made) -> None:
    ok(bundle.result)
    assert listing(bundle.directory) == bundle_names("out.pcapng")
    manifest = bundle.manifest()
    assert {e["role"]: e["name"] for e in manifest["files"]} == {
        "trace": "out.pcapng", **{role: "out.pcapng" + suffix for role, suffix in SIDECARS.items()}}
    for entry in manifest["files"]:
        data = (bundle.directory / entry["name"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest(), entry["name"]
        assert entry["bytes"] == len(data), entry["name"]
    original = DUALSTACK.read_bytes()
    frames = len(rdpcap(str(DUALSTACK)))
    assert manifest["inputs"] == [{"path": "dualstack.pcapng", "sha256": hashlib.sha256(original).hexdigest(),
                                   "bytes": len(original), "frames": frames}]
    assert manifest["frames"]["in"] == manifest["frames"]["out"] == frames
    assert manifest["key_fingerprint"] == key.name and manifest["one_time_key"] is False
    assert manifest["labels"] == dict(Counter(expected_labels().values()))
    assert manifest["report"] == {"passed": True}


def test_the_scrub_summarises_the_report_on_the_terminal(bundle: Bundle) -> None:
    stderr = ok(bundle.result)
    assert "leakage report: PASSED  (pair)" in stderr
    assert re.search(r"residual identifiers\s+│ 0 found", stderr), stderr
    assert bundle.result.stdout == b""


def test_payload_cuts_are_counted_by_reason(tmp_path: Path, key: Made) -> None:
    # nanosecond.pcap: of its 8 frames, only the HTTP GET and the 200 response carry payload
    # (the DNS messages are understood to their end), and the default profile keeps none.
    trace = scrub_to(tmp_path / "out", NANOSECOND, key)
    coverage = json.loads(Path(f"{trace}.report.json").read_text())["coverage"]
    assert (coverage["frames_cut"], coverage["cut_by_rules"], coverage["cut_by_dissector"]) == \
        (2, {"payload": 2}, {})
    manifest = json.loads(Path(f"{trace}.manifest.json").read_text())
    assert manifest["frames"]["cut"] == {"payload": 2}


def test_a_report_path_in_a_missing_directory_is_refused_before_any_output(tmp_path: Path, key: Made) -> None:
    out = tmp_path / "out"
    out.mkdir()
    missing = tmp_path / "missing" / "r.json"
    result = anontrace("scrub", str(DUALSTACK), "-o", str(out / "o.pcapng"), "--key-file", str(key.path),
                       "--report", str(missing))
    failed(result, 1, f"Error: {missing}: the output's directory does not exist")
    assert listing(out) == [] and not missing.parent.exists()


def test_verify_accepts_the_bundle_as_written(bundle: Bundle, signer: Made) -> None:
    result = anontrace("verify", str(bundle.trace))
    ok(result)
    lines = result.stdout.decode().splitlines()
    assert lines == [f"ok: out.pcapng{suffix} ({role}): sha256 and size match"
                     for role, suffix in [("trace", ""), *[(r, s) for r, s in SIDECARS.items()]]] + [
        f"ok: signature valid, by key id {signer.name} (not checked against a trusted key: give the sender's "
        "public key)"]


def test_labels_from_rules_and_csv_land_on_their_frames(bundle: Bundle) -> None:
    ok(bundle.result)
    originals = rdpcap(str(DUALSTACK))
    expected = expected_labels()
    assert set(expected.values()) == {"web", "dns", "ssh", "resolver"}
    rows = list(csv.reader(io.StringIO(Path(f"{bundle.trace}.labels.csv").read_text())))
    assert rows == [["frame", "timestamp", "label"]] + [
        [str(n), f"{originals[n - 1].time:.9f}", label] for n, label in sorted(expected.items())]


def test_labels_are_pcapng_frame_comments_and_no_other_comment_is_kept(bundle: Bundle) -> None:
    ok(bundle.result)
    with PcapNgReader(str(bundle.trace)) as reader:
        written = list(reader)
    assert len(written) == len(rdpcap(str(DUALSTACK)))  # the sample holds one comment of its own
    comments = {n: p.comment.decode() for n, p in enumerate(written, 1) if p.comment}
    assert comments == expected_labels()


def test_flows_are_anonymized_and_carry_their_label(bundle: Bundle) -> None:
    ok(bundle.result)
    text = Path(f"{bundle.trace}.flows.csv").read_text()
    for original in ("2001:db8:", "10.1.2.23", "192.0.2.", "198.51.100."):
        assert original not in text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows

    def label(row: dict[str, str]) -> str:
        served = {row["sport"], row["dport"]}
        if row["protocol"] == "tcp":
            return "web" if "80" in served else "ssh" if "22" in served else ""
        if row["protocol"] == "udp" and "53" in served:
            return "resolver" if "." in row["src"] else "dns"
        return ""

    assert [row["label"] for row in rows] == [label(row) for row in rows]
    web = [row for row in rows if row["label"] == "web"]
    assert len(web) == 1
    assert int(web[0]["packets_fwd"]) + int(web[0]["packets_back"]) == \
        list(expected_labels().values()).count("web")


def test_a_csv_row_that_matches_nothing_is_reported_with_its_line(bundle: Bundle) -> None:
    stderr = ok(bundle.result)
    reported = [line for line in stderr.splitlines() if "label row matched no frame" in line]
    assert reported == [f"anontrace: {bundle.truth}:4: label row matched no frame"]


@pytest.mark.parametrize(("text", "where", "what"), [
    ("src,dst,label\n10.1.2.23,300.1.1.1,x\n", "2:2", "'300.1.1.1' is not an IPv4/IPv6 address"),
    ("src,start,label\n10.1.2.23,yesterday,x\n", "2:2", "'yesterday' is not a time"),
    ("src,label\n10.1.2.23,x\n10.1.2.24,\n", "3:2", "empty label"),
    ("src,dst\n10.1.2.23,10.1.2.24\n", "1:1", "no `label` column"),
    ("label,source\nx,10.1.2.23\n", "1:2", "unknown column 'source'"),
], ids=["address", "time", "empty-label", "no-label-column", "unknown-column"])
def test_a_bad_labels_csv_is_located_and_nothing_is_written(tmp_path: Path, empty_tmp: Path, key: Made,
                                                            text: str, where: str, what: str) -> None:
    truth = tmp_path / "truth.csv"
    truth.write_text(text)
    out = tmp_path / "out"
    out.mkdir()
    result = anontrace("scrub", str(DUALSTACK), "-o", str(out / "o.pcapng"), "--key-file", str(key.path),
                       "--labels-from", str(truth))
    stderr = failed(result, 2, what)
    assert stderr.startswith(f"Error: {truth}:{where}: ")
    assert result.stdout == b""
    assert listing(out) == [] and listing(empty_tmp) == []


# 2. Gates -------------------------------------------------------------------------------------------


def test_a_failed_gate_writes_the_report_and_withholds_everything_else(tmp_path: Path, key: Made) -> None:
    trace = tmp_path / "out.pcapng"
    result = anontrace("scrub", str(DUALSTACK), "-o", str(trace), "--key-file", str(key.path),
                       "--fail-on", "risk.fingerprints.unique=-1")
    stderr = failed(result, 3, f"Error: {trace}: withheld", "risk.fingerprints.unique = ", "> -1",
                    "the trace was not published")
    assert result.stdout == b""
    assert listing(tmp_path) == ["out.pcapng.report.html", "out.pcapng.report.json"]
    report = json.loads(Path(f"{trace}.report.json").read_text())
    assert report["passed"] is False
    gate = next(g for g in report["gates"] if g["figure"] == "risk.fingerprints.unique")
    assert gate["limit"] == -1 and gate["passed"] is False and gate["source"] == "--fail-on"
    assert isinstance(gate["value"], int) and gate["value"] >= 0
    page = Path(f"{trace}.report.html").read_text()
    assert 'class="verdict failed">FAILED<' in page and "risk.fingerprints.unique" in page
    # The report's summary is on the terminal too, with the failed gate.
    assert "leakage report: FAILED  (pair)" in stderr
    assert re.search(r"failed: risk\.fingerprints\.unique\s+│ \d+ > -1  \[--fail-on\]", stderr), stderr


def test_a_failed_gate_on_stdout_output_prints_nothing(empty_tmp: Path, key: Made) -> None:
    result = anontrace("scrub", str(DUALSTACK), "-o", "-", "--key-file", str(key.path),
                       "--fail-on", "risk.fingerprints.unique=-1")
    failed(result, 3, "Error: -: withheld", "risk.fingerprints.unique")
    assert result.stdout == b""
    assert listing(empty_tmp) == []


def test_a_passed_gate_on_stdout_output_gives_the_capture(tmp_path: Path, empty_tmp: Path, key: Made) -> None:
    result = anontrace("scrub", str(DUALSTACK), "-o", "-", "--key-file", str(key.path), "-q",
                       "--fail-on", "risk.fingerprints.unique=1000")
    ok(result)
    assert listing(empty_tmp) == []
    same = scrub_to(tmp_path / "file", DUALSTACK, key, name="out.pcapng")
    assert result.stdout == same.read_bytes()


def test_report_to_stdout_is_the_schema_valid_json(tmp_path: Path, key: Made) -> None:
    trace = tmp_path / "out.pcapng"
    result = anontrace("scrub", str(DUALSTACK), "-o", str(trace), "--key-file", str(key.path), "-q",
                       "--report", "-")
    ok(result)
    report = json.loads(result.stdout)
    jsonschema.Draft202012Validator(SCHEMA).validate(report)
    assert report["anonymized"] == [{"path": "out.pcapng", "frames": len(rdpcap(str(DUALSTACK)))}]
    assert report["passed"] is True and report["key_fingerprint"] == key.name
    names = [n for n in bundle_names("out.pcapng") if not n.endswith(".report.json")]
    assert listing(tmp_path) == names
    manifest = json.loads(Path(f"{trace}.manifest.json").read_text())
    assert sorted(e["role"] for e in manifest["files"]) == ["flows", "labels", "report-html", "trace"]
    ok(anontrace("verify", str(trace)))


@pytest.mark.parametrize(("options", "what"), [
    (["-o", "-", "--report", "-"], "the capture and the report cannot both go to stdout"),
    (["-o", "OUT", "--report", "-", "--json"], "--json and the report cannot both go to stdout"),
    (["-o", "OUT", "--fail-on", "risk.nope=1"], "unknown report figure 'risk.nope'"),
    (["-o", "OUT", "--fail-on", "residual.total"], "'residual.total' is not FIGURE=LIMIT"),
], ids=["capture-and-report", "json-and-report", "unknown-figure", "no-limit"])
def test_refused_before_any_output(tmp_path: Path, empty_tmp: Path, key: Made, options: list[str],
                                   what: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    arguments = [str(out / "o.pcapng") if option == "OUT" else option for option in options]
    result = anontrace("scrub", str(DUALSTACK), "--key-file", str(key.path), *arguments)
    failed(result, 2, what)
    assert result.stdout == b""
    assert listing(out) == [] and listing(empty_tmp) == []


def test_a_rule_file_gate_fails_with_its_location(tmp_path: Path, key: Made) -> None:
    rules = tmp_path / "gated.yaml"
    rules.write_text(GATED_RULES)
    out = tmp_path / "out"
    out.mkdir()
    trace = out / "o.pcapng"
    # dualstack.pcapng holds an HTTP GET with payload; the default profile keeps no payload.
    result = anontrace("scrub", str(DUALSTACK), "-o", str(trace), "--key-file", str(key.path),
                       "-r", str(rules))
    failed(result, 3, "coverage.frames_cut = ", "> 0")
    assert listing(out) == ["o.pcapng.report.html", "o.pcapng.report.json"]
    gates = json.loads(Path(f"{trace}.report.json").read_text())["gates"]
    assert [(g["figure"], g["source"], g["passed"]) for g in gates] == [
        ("residual.total", "gated.yaml:5:5", True), ("coverage.frames_cut", "gated.yaml:6:5", False)]
    assert gates[1]["value"] >= 1

    # --fail-on replaces the rule file's gate on the same figure.
    result = anontrace("scrub", str(DUALSTACK), "-o", str(trace), "--key-file", str(key.path),
                       "-r", str(rules), "--fail-on", "coverage.frames_cut=1000", "-q")
    ok(result)
    gates = json.loads(Path(f"{trace}.report.json").read_text())["gates"]
    assert [(g["figure"], g["source"], g["passed"]) for g in gates] == [
        ("residual.total", "gated.yaml:5:5", True), ("coverage.frames_cut", "--fail-on", True)]
    assert listing(out) == bundle_names("o.pcapng")


# 3. Several inputs, one withheld ---------------------------------------------------------------------


def handshake() -> list[Packet]:
    """Three TCP frames without payload or options: nothing for the default profile to cut."""
    client, server = IP(src="10.7.0.1", dst="10.7.0.2"), IP(src="10.7.0.2", dst="10.7.0.1")
    link = Ether(src="02:00:00:00:07:01", dst="02:00:00:00:07:02")
    return [link / client / TCP(sport=40000, dport=443, flags="S", seq=1),
            link / server / TCP(sport=443, dport=40000, flags="SA", seq=7, ack=2),
            link / client / TCP(sport=40000, dport=443, flags="A", seq=2, ack=8)]


def chatter() -> list[Packet]:
    """Three UDP datagrams with 32 bytes of payload each: the default profile cuts all three."""
    link = Ether(src="02:00:00:00:08:01", dst="02:00:00:00:08:02")
    return [link / IP(src="10.8.0.1", dst="10.8.0.2") / UDP(sport=5000 + i, dport=9999) / Raw(bytes(32))
            for i in range(3)]


def test_several_inputs_publish_the_passing_one_and_withhold_the_failing_one(tmp_path: Path,
                                                                             key: Made) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_pcap(inputs / "quiet.pcap", handshake())
    write_pcap(inputs / "chatty.pcap", chatter())
    out = tmp_path / "out"
    result = anontrace("scrub", str(inputs), "-o", str(out), "--key-file", str(key.path),
                       "--fail-on", "coverage.frames_cut=1")
    stderr = failed(result, 3, f"Error: {out / 'chatty.pcap'}: withheld: the leakage report failed its gates "
                    "(coverage.frames_cut = 3 > 1)")
    # With several traces the terminal gives one verdict line per trace.
    assert f"anontrace: {out / 'quiet.pcap'}: leakage report PASSED\n" in stderr
    assert f"anontrace: {out / 'chatty.pcap'}: leakage report FAILED (coverage.frames_cut = 3 > 1)" in stderr
    assert listing(out) == sorted([*bundle_names("quiet.pcap"), "chatty.pcap.report.html",
                                   "chatty.pcap.report.json"])
    chatty = json.loads((out / "chatty.pcap.report.json").read_text())
    assert chatty["passed"] is False and chatty["coverage"]["cut_by_rules"] == {"payload": 3}
    assert json.loads((out / "quiet.pcap.report.json").read_text())["coverage"]["frames_cut"] == 0
    ok(anontrace("verify", str(out / "quiet.pcap")))
    assert len(rdpcap(str(out / "quiet.pcap"))) == 3


# 4. verify --------------------------------------------------------------------------------------------


def copy_bundle(bundle: Bundle, directory: Path) -> Path:
    ok(bundle.result)
    directory.mkdir()
    for name in bundle_names("out.pcapng"):
        shutil.copy2(bundle.directory / name, directory / name)
    return directory / "out.pcapng"


def differs(result: CompletedProcess[bytes]) -> list[str]:
    failed(result, 1, "difference(s) from the manifest")
    return [line for line in result.stdout.decode().splitlines() if line.startswith("DIFFERS: ")]


@pytest.mark.parametrize(("suffix", "role"), [("", "trace"), *[(s, r) for r, s in SIDECARS.items()]],
                         ids=["trace", *SIDECARS])
def test_verify_names_a_file_changed_by_one_byte(bundle: Bundle, tmp_path: Path, suffix: str,
                                                 role: str) -> None:
    trace = copy_bundle(bundle, tmp_path / "copy")
    target = Path(f"{trace}{suffix}")
    before = sha256(target)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    assert differs(anontrace("verify", str(trace))) == [
        f"DIFFERS: out.pcapng{suffix} ({role}): sha256 differs (file {sha256(target)[:16]}..., "
        f"manifest {before[:16]}...)"]


def test_verify_names_a_missing_file(bundle: Bundle, tmp_path: Path) -> None:
    trace = copy_bundle(bundle, tmp_path / "copy")
    Path(f"{trace}.flows.csv").unlink()
    assert differs(anontrace("verify", str(trace))) == ["DIFFERS: out.pcapng.flows.csv (flows): missing"]


def test_verify_finds_an_edited_manifest(bundle: Bundle, signer: Made, tmp_path: Path) -> None:
    trace = copy_bundle(bundle, tmp_path / "copy")
    manifest_path = Path(f"{trace}.manifest.json")
    manifest = json.loads(manifest_path.read_text())
    manifest["frames"]["in"] += 1
    manifest_path.write_text(json.dumps(manifest))
    assert differs(anontrace("verify", str(trace))) == [
        f"DIFFERS: signature invalid: the manifest was changed after key {signer.name} signed it, or the "
        "signature is not for it"]

    del manifest["signature"]  # unsigned, a manifest still has to match the files it names
    entry = next(e for e in manifest["files"] if e["role"] == "trace")
    entry["bytes"] += 1
    manifest_path.write_text(json.dumps(manifest))
    assert differs(anontrace("verify", str(manifest_path))) == [
        f"DIFFERS: out.pcapng (trace): size {trace.stat().st_size} != {trace.stat().st_size + 1} bytes in "
        "the manifest"]


def test_the_signature_is_checked_against_the_senders_public_key(bundle: Bundle, signer: Made,
                                                                  tmp_path: Path) -> None:
    ok(bundle.result)
    assert stat.S_IMODE(signer.path.stat().st_mode) == 0o600
    public = serialization.load_pem_public_key(Path(f"{signer.path}.pub").read_bytes())
    assert isinstance(public, Ed25519PublicKey)
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert hashlib.sha256(raw).hexdigest()[:16] == signer.name

    # As docs/manifest.md says anyone can check it, without anontrace.
    manifest = bundle.manifest()
    signature = manifest.pop("signature")
    assert base64.b64decode(signature["public_key"]) == raw
    body = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    public.verify(base64.b64decode(signature["value"]), body)

    result = anontrace("verify", str(bundle.trace), "--public-key", f"{signer.path}.pub")
    ok(result)
    assert result.stdout.decode().splitlines()[-1] == \
        f"ok: signature valid, by key id {signer.name}, the public key given"

    other = make_signing_key(tmp_path / "other.pem")
    assert differs(anontrace("verify", str(bundle.trace), "--public-key", f"{other.path}.pub")) == [
        f"DIFFERS: signed by key id {signer.name} but the public key given is {other.name}"]


def test_a_signing_key_others_can_read_is_refused_before_any_output(tmp_path: Path, empty_tmp: Path,
                                                                    key: Made) -> None:
    loose = make_signing_key(tmp_path / "loose.pem")
    loose.path.chmod(0o640)
    out = tmp_path / "out"
    out.mkdir()
    result = anontrace("scrub", str(DUALSTACK), "-o", str(out / "o.pcapng"), "--key-file", str(key.path),
                       "--sign-key", str(loose.path))
    failed(result, 2, f"Error: {loose.path}: signing key is accessible to others (mode 640)",
           f"chmod 600 {loose.path}")
    assert result.stdout == b""
    assert listing(out) == [] and listing(empty_tmp) == []


def test_verify_ties_the_bundle_to_its_original(bundle: Bundle, tmp_path: Path) -> None:
    ok(bundle.result)
    result = anontrace("verify", str(bundle.trace), "--original", str(DUALSTACK))
    ok(result)
    assert f"ok: input {DUALSTACK}: sha256 and size match" in result.stdout.decode().splitlines()

    impostor = tmp_path / "dualstack.pcapng"  # the right name, another capture
    shutil.copy(OFFICE, impostor)
    assert differs(anontrace("verify", str(bundle.trace), "--original", str(impostor))) == [
        f"DIFFERS: input {impostor}: sha256 differs from the manifest's input dualstack.pcapng "
        f"({OFFICE.stat().st_size} bytes, manifest {DUALSTACK.stat().st_size})"]
    assert differs(anontrace("verify", str(bundle.trace), "--original", str(OFFICE))) == [
        f"DIFFERS: input {OFFICE}: not among the manifest's inputs"]


# 5. Key shares ----------------------------------------------------------------------------------------


def test_keygen_shares_rebuild_the_key_from_any_three(tmp_path: Path) -> None:
    team = tmp_path / "team.key"
    stderr = ok(anontrace("keygen", "-o", str(team), "--shares", "5", "--threshold", "3"))
    shares = [tmp_path / f"team.key.share-{i}-of-5" for i in range(1, 6)]
    assert listing(tmp_path) == sorted(p.name for p in [team, *shares])
    for path in [team, *shares]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert "any 3 of the 5 shares rebuild the key" in stderr
    for chosen in [(0, 1, 2), (0, 2, 4), (1, 3, 4), (2, 3, 4)]:
        rebuilt = tmp_path / f"rebuilt-{''.join(map(str, chosen))}.key"
        ok(anontrace("key", "combine", *(str(shares[i]) for i in chosen), "-o", str(rebuilt)))
        assert rebuilt.read_bytes() == team.read_bytes(), chosen
        assert stat.S_IMODE(rebuilt.stat().st_mode) == 0o600

    for pair in [(0, 1), (2, 4), (3, 4)]:
        result = anontrace("key", "combine", *(str(shares[i]) for i in pair), "-o", str(tmp_path / "two.key"))
        failed(result, 2, "Error: shares: 2 shares given, 3 needed", "ask for 1 more share")
    assert not (tmp_path / "two.key").exists()


def test_keygen_writes_no_key_without_its_shares(tmp_path: Path) -> None:
    team = tmp_path / "team.key"
    taken = tmp_path / "team.key.share-2-of-3"
    taken.write_text("someone else's\n")
    failed(anontrace("keygen", "-o", str(team), "--shares", "3", "--threshold", "2"), 2,
           f"Error: {taken}: file exists")
    assert listing(tmp_path) == ["team.key.share-2-of-3"] and taken.read_text() == "someone else's\n"

    taken.unlink()
    team.write_text("an old key\n")
    failed(anontrace("keygen", "-o", str(team), "--shares", "3", "--threshold", "2"), 2,
           f"Error: {team}: file exists")
    assert listing(tmp_path) == ["team.key"] and team.read_text() == "an old key\n"


def test_key_split_of_an_existing_key(tmp_path: Path) -> None:
    original = tmp_path / "site.key"
    ok(anontrace("keygen", "-o", str(original)))
    ok(anontrace("key", "split", str(original), "--shares", "3", "--threshold", "2"))
    shares = [tmp_path / f"site.key.share-{i}-of-3" for i in range(1, 4)]
    for path in shares:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    rebuilt = tmp_path / "rebuilt.key"
    ok(anontrace("key", "combine", str(shares[2]), str(shares[0]), "-o", str(rebuilt)))
    assert rebuilt.read_bytes() == original.read_bytes()
    failed(anontrace("key", "combine", str(shares[1]), "-o", str(tmp_path / "one.key")), 2,
           "1 shares given, 2 needed")


def test_a_rebuilt_key_scrubs_byte_for_byte_like_the_original(tmp_path: Path, key: Made) -> None:
    mine = tmp_path / "site.key"
    shutil.copy2(key.path, mine)
    ok(anontrace("key", "split", str(mine), "--shares", "3", "--threshold", "2"))
    rebuilt = Made(tmp_path / "rebuilt.key", key.name)
    ok(anontrace("key", "combine", f"{mine}.share-1-of-3", f"{mine}.share-3-of-3", "-o", str(rebuilt.path)))
    first = scrub_to(tmp_path / "with-original", NANOSECOND, key)
    second = scrub_to(tmp_path / "with-rebuilt", NANOSECOND, rebuilt)
    assert first.read_bytes() == second.read_bytes()
    other = Made(tmp_path / "other.key", "")
    ok(anontrace("keygen", "-o", str(other.path)))
    assert scrub_to(tmp_path / "with-other", NANOSECOND, other).read_bytes() != first.read_bytes()


# 6. anontrace report ------------------------------------------------------------------------------------


def test_report_on_a_scrubbed_pair(tmp_path: Path, key: Made) -> None:
    trace = scrub_to(tmp_path / "out", DUALSTACK, key, "--report", str(tmp_path / "own.json"))
    Path(f"{trace}.manifest.json").unlink()  # a trace that came without its bundle
    ok(anontrace("report", str(DUALSTACK), str(trace), "-q"))
    report = json.loads(Path(f"{trace}.report.json").read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(report)
    assert report["mode"] == "pair" and report["passed"] is True
    assert report["original"] == [{"path": str(DUALSTACK), "frames": len(rdpcap(str(DUALSTACK)))}]
    assert report["residual"]["total"] == 0 and report["residual"]["findings"] == []
    assert sum(report["residual"]["identifiers_checked"].values()) > 0
    assert Path(f"{trace}.report.html").exists()


def test_report_never_overwrites_the_report_of_a_bundle(tmp_path: Path, key: Made) -> None:
    trace = scrub_to(tmp_path / "out", DUALSTACK, key)
    before = {p.name: p.read_bytes() for p in trace.parent.iterdir()}
    failed(anontrace("report", str(DUALSTACK), str(trace)), 2, "would break `verify`", "--report PATH")
    assert {p.name: p.read_bytes() for p in trace.parent.iterdir()} == before
    ok(anontrace("verify", str(trace)))
    ok(anontrace("report", str(trace), "--report", str(tmp_path / "mine.json"), "-q"))
    assert (tmp_path / "mine.html").exists()


def test_report_on_an_anonymized_trace_alone(tmp_path: Path, key: Made) -> None:
    trace = scrub_to(tmp_path / "out", DUALSTACK, key, "--report", str(tmp_path / "own.json"))
    Path(f"{trace}.manifest.json").unlink()
    ok(anontrace("report", str(trace), "-q"))
    report = json.loads(Path(f"{trace}.report.json").read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(report)
    assert report["mode"] == "anonymized-only"
    assert report["residual"] is None and report["original"] is None
    assert report["anonymized"] == [{"path": str(trace), "frames": len(rdpcap(str(DUALSTACK)))}]


@pytest.mark.parametrize(("original", "sample"), [(OFFICE, DUALSTACK), (NANOSECOND, OFFICE)],
                         ids=["office-for-dualstack", "nanosecond-for-office"])
def test_report_refuses_captures_that_do_not_correspond(tmp_path: Path, key: Made, original: Path,
                                                        sample: Path) -> None:
    trace = scrub_to(tmp_path / "out", sample, key, "--report", str(tmp_path / "own.json"))
    before = listing(trace.parent)
    result = anontrace("report", str(original), str(trace), "--report", str(tmp_path / "check.json"))
    failed(result, 1, "the two captures do not correspond", str(original))
    assert result.stdout == b""
    assert listing(trace.parent) == before
    assert not (tmp_path / "check.json").exists() and not (tmp_path / "check.html").exists()


def test_report_with_the_key_and_a_rule_file_whose_gates_pass(tmp_path: Path, key: Made) -> None:
    rules = tmp_path / "gated.yaml"
    rules.write_text(GATED_RULES.replace("coverage.frames_cut: 0", "coverage.frames_dropped: 0"))
    trace = scrub_to(tmp_path / "out", DUALSTACK, key, "-r", str(rules))
    target = tmp_path / "again.json"
    ok(anontrace("report", str(DUALSTACK), str(trace), "--key-file", str(key.path), "-r", str(rules),
                 "--report", str(target), "-q"))
    report = json.loads(target.read_text())
    assert report["passed"] is True and report["key_fingerprint"] == key.name
    assert [(g["figure"], g["value"], g["source"]) for g in report["gates"]] == [
        ("residual.total", 0, f"{rules}:5:5"), ("coverage.frames_dropped", 0, f"{rules}:6:5")]
    assert (tmp_path / "again.html").exists()

    failed(anontrace("report", str(DUALSTACK), str(trace), "--key-file", str(key.path), "-r", str(rules),
                     "--report", str(target), "-q", "--fail-on", "risk.fingerprints.unique=-1"),
           3, "risk.fingerprints.unique")
    assert json.loads(target.read_text())["passed"] is False


# 7. The terminal summary --------------------------------------------------------------------------------


def test_report_shows_its_summary_on_stderr_only(tmp_path: Path, key: Made) -> None:
    trace = scrub_to(tmp_path / "out", DUALSTACK, key)
    result = anontrace("report", str(DUALSTACK), str(trace), "--report", str(tmp_path / "r.json"))
    stderr = ok(result)
    assert result.stdout == b""
    assert "leakage report: PASSED  (pair)" in stderr
    assert re.search(r"residual identifiers\s+│ 0 found", stderr), stderr

    result = anontrace("report", str(DUALSTACK), str(trace), "--report", "-")
    stderr = ok(result)
    assert json.loads(result.stdout)["mode"] == "pair"
    assert b"leakage report" not in result.stdout and "leakage report: PASSED" in stderr

    quiet = anontrace("report", str(DUALSTACK), str(trace), "--report", str(tmp_path / "r.json"), "-q")
    assert ok(quiet) == "" and quiet.stdout == b""


def test_a_withheld_rerun_removes_the_earlier_bundle_under_that_name(tmp_path: Path, key: Made) -> None:
    trace = scrub_to(tmp_path / "out", DUALSTACK, key)
    assert listing(trace.parent) == bundle_names(trace.name)

    result = anontrace("scrub", str(DUALSTACK), "-o", str(trace), "--key-file", str(key.path), "-q",
                       "--fail-on", "risk.fingerprints.unique=-1")

    failed(result, 3, "withheld", "an earlier run's", str(trace))
    assert listing(trace.parent) == [f"{trace.name}.report.html", f"{trace.name}.report.json"]
    assert json.loads(Path(f"{trace}.report.json").read_text())["passed"] is False


def test_shared_files_name_the_rule_file_without_its_directory(tmp_path: Path, key: Made) -> None:
    private = tmp_path / "site-secrets" / "team-rules"
    private.mkdir(parents=True)
    rules = private / "gated.yaml"
    rules.write_text(GATED_RULES.replace("coverage.frames_cut: 0", "coverage.frames_dropped: 0"))
    trace = scrub_to(tmp_path / "out", DUALSTACK, key, "-r", str(rules))

    for suffix in (".report.json", ".report.html", ".manifest.json"):
        text = Path(f"{trace}{suffix}").read_text()
        assert "site-secrets" not in text and "team-rules" not in text, suffix
        assert "gated.yaml" in text, suffix
    report = json.loads(Path(f"{trace}.report.json").read_text())
    assert [g["source"] for g in report["gates"]] == ["gated.yaml:5:5", "gated.yaml:6:5"]
    ok(anontrace("verify", str(trace)))


def test_a_label_that_names_an_original_host_is_a_residual_identifier(tmp_path: Path, key: Made) -> None:
    host = next(p[IP].src for p in rdpcap(str(OFFICE)) if IP in p)
    truth = tmp_path / "truth.csv"
    truth.write_text(f"label,src\nlaptop at {host},{host}\n")
    trace = tmp_path / "out" / "o.pcap"  # pcap: no frame comments, the label is only in the CSVs
    trace.parent.mkdir()

    result = anontrace("scrub", str(OFFICE), "-o", str(trace), "--key-file", str(key.path),
                       "--labels-from", str(truth))

    failed(result, 3, "residual.total")
    assert listing(trace.parent) == ["o.pcap.report.html", "o.pcap.report.json"]
    findings = json.loads(Path(f"{trace}.report.json").read_text())["residual"]["findings"]
    assert {(f["file"], f["value"], f["frame"], f["offset"]) for f in findings} == {
        ("labels", host, None, len("laptop at "))}
