"""The manifest: its shape and digests, its signature, and what `verify` says about a tampered bundle."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from anontrace import __version__
from anontrace.errors import TraceFormatError
from anontrace.keys import Key
from anontrace.manifest import (
    build_manifest,
    file_entry,
    input_entry,
    manifest_path_for,
    resolved_rules,
    sha256_file,
    verify,
    write_manifest,
)
from anontrace.rules.compile import Rules, parse_rules
from anontrace.signing import sign, write_signing_key
from anontrace.transforms.scoped import Scoped
from tests.helpers import write_pcap

RULES = """version: 1
description: manifest test
report:
  fail_on:
    residual.total: 0
labels:
  - when: {network: 10.9.0.0/16, direction: inbound}
    label: database
  - when: {protocol: udp, port: 53}
    label: dns
  - default: other
steps:
  - use: timing
    precision: us
  - use: payload
    keep: 64
    when: {protocol: udp, port: [53, 5353], network: [192.168.77.0/24]}
  - use: mac
    keep_oui: true
"""
CONTENTS = {  # role -> (file suffix, bytes)
    "labels": (".labels.csv", b"frame,timestamp,label\n1,0.000000000,dns\n"),
    "flows": (".flows.csv", b"protocol,src,sport,dst,dport\n17,10.0.0.1,53,10.0.0.2,4000\n"),
    "report-json": (".report.json", b'{"format": "anontrace-report"}\n'),
    "report-html": (".report.html", b"<!doctype html><title>report</title>\n"),
}
FRAMES = {"in": 3, "out": 2, "dropped": {"unknown link type": 1}, "cut": {"payload": 2}}


def canonical_bytes(manifest: dict[str, Any]) -> bytes:
    """The signed bytes as docs/manifest.md defines them, computed here without anontrace."""
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def bundle(tmp_path: Path, signing_key: Ed25519PrivateKey | None = None) -> tuple[Path, dict[str, Any]]:
    """A capture, a 'scrubbed' trace and its sidecars, and their manifest written beside them."""
    original = write_pcap(tmp_path / "original.pcap", [
        Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=53, dport=4000) / b"x" * n
        for n in (1, 2, 3)])
    out = tmp_path / "out"
    out.mkdir()
    trace = write_pcap(out / "shared.pcap", [Ether() / IP(src="1.2.3.4", dst="5.6.7.8") / UDP()] * 2)
    files = [file_entry("trace", trace)]
    for role, (suffix, data) in CONTENTS.items():
        path = out / f"shared.pcap{suffix}"
        path.write_bytes(data)
        files.append(file_entry(role, path))
    manifest = build_manifest(
        rules=parse_rules(RULES, "rules.yaml"), key_fingerprint=Key(bytes(32)).fingerprint,
        one_time_key=False, inputs=[input_entry(original, 3)], files=files, frames=FRAMES,
        labels={"dns": 2, "database": 1}, report_passed=True, created="2026-11-21T10:00:00Z")
    if signing_key is not None:
        manifest = sign(manifest, signing_key)
    write_manifest(out / "shared.pcap.manifest.json", manifest)
    return out / "shared.pcap", manifest


def test_sha256_file_streams_past_one_chunk(tmp_path: Path) -> None:
    data = os.urandom((5 << 19) + 7)  # 2.5 MiB and a bit: three chunks, the last one short
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == (hashlib.sha256(data).hexdigest(), len(data))
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(tmp_path / "empty") == (hashlib.sha256(b"").hexdigest(), 0)


def test_manifest_shape_and_digests(tmp_path: Path) -> None:
    trace, manifest = bundle(tmp_path)
    written = json.loads(Path(f"{trace}.manifest.json").read_text())
    assert written == manifest
    assert list(manifest) == ["format", "version", "tool", "created", "rules", "key_fingerprint",
                              "one_time_key", "inputs", "files", "frames", "labels", "report"]
    assert (manifest["format"], manifest["version"]) == ("anontrace-manifest", 1)
    assert manifest["tool"] == f"anontrace {__version__}" and manifest["created"] == "2026-11-21T10:00:00Z"
    assert manifest["rules"]["source"] == "rules.yaml"
    assert manifest["rules"]["sha256"] == hashlib.sha256(RULES.encode()).hexdigest()
    assert manifest["key_fingerprint"] == Key(bytes(32)).fingerprint and manifest["one_time_key"] is False
    original = (tmp_path / "original.pcap").read_bytes()
    assert manifest["inputs"] == [{"path": str(tmp_path / "original.pcap"), "frames": 3,
                                   "sha256": hashlib.sha256(original).hexdigest(), "bytes": len(original)}]
    expected = [("trace", "shared.pcap", trace.read_bytes())]
    expected += [(role, f"shared.pcap{suffix}", data) for role, (suffix, data) in CONTENTS.items()]
    assert manifest["files"] == [{"role": role, "name": name, "sha256": hashlib.sha256(data).hexdigest(),
                                  "bytes": len(data)} for role, name, data in expected]
    assert manifest["frames"] == FRAMES
    assert manifest["labels"] == {"database": 1, "dns": 2}
    assert manifest["report"] == {"passed": True} and "signature" not in manifest


def test_file_name_may_differ_from_the_staged_file(tmp_path: Path) -> None:
    staged = tmp_path / ".out.pcap.1234.partial"
    staged.write_bytes(b"abc")
    assert file_entry("trace", staged, "out.pcap") == {
        "role": "trace", "name": "out.pcap", "sha256": hashlib.sha256(b"abc").hexdigest(), "bytes": 3}
    with pytest.raises(ValueError, match="role"):
        file_entry("manifest", staged)


def test_unmeasured_report_is_null(tmp_path: Path) -> None:
    manifest = build_manifest(rules=parse_rules("version: 1\n", "r.yaml"), key_fingerprint="ab" * 8,
                              one_time_key=True, inputs=[], files=[], frames={"in": 0, "out": 0},
                              labels={}, report_passed=None, created="2026-01-01T00:00:00Z")
    assert manifest["report"] is None and manifest["one_time_key"] is True
    assert manifest["frames"] == {"in": 0, "out": 0, "dropped": {}, "cut": {}}


def test_resolved_rules_every_setting_in_run_order() -> None:
    rules = parse_rules(RULES, "rules.yaml")
    resolved = resolved_rules(rules)
    json.dumps(resolved, allow_nan=False)  # JSON-safe
    steps = resolved["steps"]
    # ip, mac, names always first; other transforms in file order; payload last, and a default
    # payload step for frames the scoped one does not name
    assert [s["use"] for s in steps] == ["ip", "mac", "names", "timing", "payload", "payload"]
    assert [s["where"] for s in steps] == ["implicit", "rules.yaml:18:5", "implicit", "rules.yaml:13:5",
                                           "rules.yaml:15:5", "implicit"]
    assert steps[0]["settings"] == {
        "keep": ["0.0.0.0/32", "255.255.255.255/32", "127.0.0.0/8", "224.0.0.0/4", "::/128", "::1/128",
                 "ff00::/8"],
        "keep_prefix": ["169.254.0.0/16", "fe80::/64"]}
    assert steps[1]["settings"] == {"keep_oui": True, "keep_group": True}
    assert steps[2]["settings"] == {"policy": "hash", "keep_labels": ["arpa", "in-addr", "ip6", "local"],
                                    "keep_top_level": True}
    assert steps[3]["settings"] == {"shift": "none", "origin": "2000-01-01T00:00:00Z",
                                    "max_shift_days": 365.0, "noise": "none", "noise_scale_us": 0.0,
                                    "precision": "us"}
    assert steps[4] == {"use": "payload", "settings": {"keep": 64, "identifiers": "cut"},
                        "where": "rules.yaml:15:5",
                        "when": {"protocol": ["udp"], "port": [53, 5353], "network": ["(withheld)"]}}
    assert steps[5]["settings"] == {"keep": 0, "identifiers": "cut"} and "when" not in steps[5]
    assert resolved["description"] == "manifest test" and resolved["links_across_runs"] is False
    assert resolved["report"] == {"fail_on": {"residual.total": 0}}
    assert resolved["labels"] == {"default": "other", "rules": [
        {"when": {"network": ["(withheld)"], "direction": "inbound"}, "label": "database"},
        {"when": {"protocol": ["udp"], "port": [53]}, "label": "dns"}]}


def test_resolved_order_is_the_order_the_transforms_run() -> None:
    rules = parse_rules(RULES, "rules.yaml")
    ran: list[str] = []
    for transform in rules.build(Key(bytes(32))):
        ran += [t.name for _, t in transform.choices] if isinstance(transform, Scoped) else [transform.name]
    assert [s["use"] for s in resolved_rules(rules)["steps"]] == ran


def test_original_networks_never_reach_the_manifest(tmp_path: Path) -> None:
    trace, _ = bundle(tmp_path)
    text = Path(f"{trace}.manifest.json").read_text()
    assert "10.9." not in text and "192.168.77" not in text


def test_extended_profile_is_resolved_without_labels_or_gates() -> None:
    rules = parse_rules("version: 1\nextends: default\nreport: {fail_on: {residual.total: 2}}\n", "r.yaml")
    resolved = resolved_rules(rules)
    assert [s["use"] for s in resolved["steps"]] == ["ip", "mac", "names", "generalize", "payload"]
    assert all(s["where"].startswith("<default>:") for s in resolved["steps"])
    assert resolved["report"] == {"fail_on": {"residual.total": 2}} and "labels" not in resolved
    bare = resolved_rules(Rules("r.yaml", "", ()))
    assert "report" not in bare and "labels" not in bare


def test_write_manifest_is_pretty_and_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    write_manifest(path, {"format": "x", "é": [1, 2]})
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n") and '\n  "format": "x"' in text and '"é"' in text
    write_manifest(path, {"format": "y"})
    assert json.loads(path.read_text()) == {"format": "y"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def test_signature_verifies_with_cryptography_directly(tmp_path: Path) -> None:
    private = Ed25519PrivateKey.generate()
    _, manifest = bundle(tmp_path, private)
    signature = manifest["signature"]
    raw = base64.b64decode(signature["public_key"])
    public = private.public_key()
    assert raw == public.public_bytes_raw()
    assert signature["algorithm"] == "ed25519"
    assert signature["key_id"] == hashlib.sha256(raw).hexdigest()[:16]
    public.verify(base64.b64decode(signature["value"]), canonical_bytes(manifest))  # raises if invalid


def test_untouched_bundle_verifies(tmp_path: Path) -> None:
    private = Ed25519PrivateKey.generate()
    trace, manifest = bundle(tmp_path, private)
    public = tmp_path / "sender.pub"
    public.write_bytes(private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    for target in (trace, Path(f"{trace}.manifest.json")):
        result = verify(target, public)
        assert result.problems == [] and result.ok and result.trusted
        assert result.signed_by == manifest["signature"]["key_id"]
        assert len(result.checked) == 6  # five files and the signature


@pytest.mark.parametrize("role", ["trace", *CONTENTS])
def test_one_changed_byte_in_any_file_is_named(tmp_path: Path, role: str) -> None:
    trace, manifest = bundle(tmp_path, Ed25519PrivateKey.generate())
    name = next(f["name"] for f in manifest["files"] if f["role"] == role)
    path = trace.parent / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    result = verify(trace)
    assert len(result.problems) == 1 and not result.ok
    assert result.problems[0].startswith(f"{name} ({role}): sha256 differs")


def test_changed_size_and_removed_file_are_named(tmp_path: Path) -> None:
    trace, _ = bundle(tmp_path)
    with open(f"{trace}.flows.csv", "ab") as handle:
        handle.write(b"x")
    Path(f"{trace}.report.html").unlink()
    flows_size = len(CONTENTS["flows"][1])
    assert verify(trace).problems == [
        f"shared.pcap.flows.csv (flows): size {flows_size + 1} != {flows_size} bytes in the manifest",
        "shared.pcap.report.html (report-html): missing"]


def test_changed_manifest_field_breaks_the_signature(tmp_path: Path) -> None:
    trace, manifest = bundle(tmp_path, Ed25519PrivateKey.generate())
    manifest["frames"]["dropped"] = {}  # hide the dropped frame
    write_manifest(Path(f"{trace}.manifest.json"), manifest)
    result = verify(trace)
    assert len(result.problems) == 1 and result.problems[0].startswith("signature invalid")
    assert len(result.checked) == 5  # the files themselves still match


def test_changed_signature_is_invalid(tmp_path: Path) -> None:
    trace, manifest = bundle(tmp_path, Ed25519PrivateKey.generate())
    value = bytearray(base64.b64decode(manifest["signature"]["value"]))
    value[0] ^= 0x80
    manifest["signature"]["value"] = base64.b64encode(bytes(value)).decode()
    write_manifest(Path(f"{trace}.manifest.json"), manifest)
    assert [p.split(":")[0] for p in verify(trace).problems] == ["signature invalid"]


def test_re_signed_manifest_is_caught_only_by_the_trusted_key(tmp_path: Path) -> None:
    sender = tmp_path / "sender.pem"
    sender_id = write_signing_key(sender)
    trace, manifest = bundle(tmp_path, Ed25519PrivateKey.generate())  # signed by someone else
    result = verify(trace)
    assert result.ok and not result.trusted  # consistent, but by whom is not established
    assert "not checked against a trusted key" in result.checked[-1]
    result = verify(trace, Path(f"{sender}.pub"))
    assert result.problems == [f"signed by key id {manifest['signature']['key_id']} but the public key "
                               f"given is {sender_id}"]
    assert not result.trusted


def test_swapped_key_id_is_named(tmp_path: Path) -> None:
    trace, manifest = bundle(tmp_path, Ed25519PrivateKey.generate())
    real = manifest["signature"]["key_id"]
    manifest["signature"]["key_id"] = "0" * 16
    write_manifest(Path(f"{trace}.manifest.json"), manifest)
    assert verify(trace).problems == [f"signature: key_id {'0' * 16} is not the id of its public key "
                                      f"({real})"]


def test_unsigned_manifest(tmp_path: Path) -> None:
    trace, _ = bundle(tmp_path)
    result = verify(trace)
    assert result.ok and result.signed_by is None and not result.trusted and len(result.checked) == 5
    write_signing_key(tmp_path / "k.pem")
    result = verify(trace, tmp_path / "k.pem.pub")
    assert result.problems == ["manifest is not signed, but a public key was given "
                               f"({tmp_path / 'k.pem.pub'})"]


def test_inputs_are_checked_by_name(tmp_path: Path) -> None:
    trace, _ = bundle(tmp_path)
    original = tmp_path / "original.pcap"
    assert verify(trace, inputs=[original]).checked[-1] == f"input {original}: sha256 and size match"
    elsewhere = tmp_path / "copy"
    elsewhere.mkdir()
    copy = elsewhere / "original.pcap"
    data = bytearray(original.read_bytes())
    copy.write_bytes(bytes(data))
    assert verify(trace, inputs=[copy]).ok  # found by file name
    data[-1] ^= 0xFF
    copy.write_bytes(bytes(data))
    problems = verify(trace, inputs=[copy]).problems
    assert len(problems) == 1 and problems[0].startswith(f"input {copy}: sha256 differs")
    other = tmp_path / "other.pcap"
    other.write_bytes(b"")
    assert verify(trace, inputs=[other]).problems == [f"input {other}: not among the manifest's inputs"]


def test_manifest_path_for() -> None:
    assert manifest_path_for("out/a.pcap") == Path("out/a.pcap.manifest.json")
    assert manifest_path_for("out/a.pcap.manifest.json") == Path("out/a.pcap.manifest.json")


@pytest.mark.parametrize(
    "text,message",
    ids=["not-json", "not-object", "other-format", "version-2", "version-true", "duplicate-member",
         "nan", "files-not-list", "bad-digest", "escaping-name", "absolute-name", "bad-signature"],
    argvalues=[
        ("{", "invalid JSON"),
        ("[]", "not an anontrace manifest"),
        ('{"format": "anontrace-report", "version": 1}', "not an anontrace manifest"),
        ('{"format": "anontrace-manifest", "version": 2}', "unsupported manifest version 2"),
        ('{"format": "anontrace-manifest", "version": true}', "unsupported manifest version True"),
        ('{"format": "anontrace-manifest", "version": 1, "files": [], "files": [], "inputs": []}',
         "'files' appears twice"),
        ('{"format": "anontrace-manifest", "version": 1, "files": [], "inputs": [], "x": NaN}', "NaN"),
        ('{"format": "anontrace-manifest", "version": 1, "files": {}, "inputs": []}',
         "`files` is not a list"),
        ('{"format": "anontrace-manifest", "version": 1, "inputs": [], "files": [{"role": "trace", '
         '"name": "a", "sha256": "AB", "bytes": 1}]}', "files[0] needs role, name, sha256 and bytes"),
        ('{"format": "anontrace-manifest", "version": 1, "inputs": [], "files": [{"role": "trace", '
         f'"name": "../a", "sha256": "{"0" * 64}", "bytes": 1}}]}}', "is not a path inside"),
        ('{"format": "anontrace-manifest", "version": 1, "inputs": [], "files": [{"role": "trace", '
         f'"name": "/etc/passwd", "sha256": "{"0" * 64}", "bytes": 1}}]}}', "is not a path inside"),
        ('{"format": "anontrace-manifest", "version": 1, "inputs": [], "files": [], '
         '"signature": {"algorithm": "ed25519", "key_id": "x", "public_key": "AAAA", "value": "AAAA"}}',
         "public_key (32 bytes)"),
    ],
)
def test_invalid_manifests_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.pcap.manifest.json"
    path.write_text(text)
    with pytest.raises(TraceFormatError) as error:
        verify(tmp_path / "t.pcap")
    assert message in error.value.what and error.value.where == str(path)


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match="cannot read manifest") as error:
        verify(tmp_path / "nothing.pcap")
    assert error.value.where == str(tmp_path / "nothing.pcap.manifest.json")


def test_a_manifest_copied_beside_another_trace_does_not_vouch_for_it(tmp_path: Path) -> None:
    from anontrace.manifest import build_manifest as build
    from anontrace.rules.compile import read_rules

    good = tmp_path / "good.pcap"
    good.write_bytes(b"good trace")
    manifest = build(rules=read_rules(None), key_fingerprint="00" * 8, one_time_key=False, inputs=[],
                     files=[file_entry("trace", good)], frames={"in": 0, "out": 0, "dropped": {}, "cut": {}},
                     labels={}, report_passed=True, created="2026-11-21T00:00:00Z")
    write_manifest(tmp_path / "good.pcap.manifest.json", manifest)
    write_manifest(tmp_path / "evil.pcap.manifest.json", manifest)
    (tmp_path / "evil.pcap").write_bytes(b"evil trace")

    assert verify(good).problems == []
    problems = verify(tmp_path / "evil.pcap").problems
    assert problems == ["evil.pcap: not the trace this manifest describes (good.pcap)"]

    empty = dict(manifest, files=[])
    write_manifest(tmp_path / "empty.pcap.manifest.json", empty)
    assert verify(tmp_path / "empty.pcap").problems == [
        "the manifest names 0 traces; a bundle has exactly one"]
