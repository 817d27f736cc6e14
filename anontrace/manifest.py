"""The manifest written beside a shareable trace: what made it, what it holds, and a signature.

A recipient checks with `anontrace verify` that every file of the bundle is the one the manifest
names (SHA-256 and size) and, when the manifest is signed, that nothing in it changed since the
sender's Ed25519 key signed it. The signature covers the canonical JSON of the manifest without
its `signature` member, so any JSON tool can check it (see docs/manifest.md).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from anontrace import __version__
from anontrace.errors import OutputError, TraceFormatError
from anontrace.rules.compile import Rules, Step
from anontrace.rules.filters import Filter
from anontrace.signing import canonical, key_id, load_public_key, raw_key_id
from anontrace.transforms import ALWAYS
from anontrace.transforms.payload import Payload

FORMAT = "anontrace-manifest"
VERSION = 1
ROLES = ("trace", "labels", "flows", "report-json", "report-html")
SUFFIX = ".manifest.json"
CHUNK = 1 << 20
MAX_MANIFEST = 64 << 20  # the resolved rules and digests of a few files: far below this
WITHHELD = "(withheld)"


def sha256_file(path: Path) -> tuple[str, int]:
    """The file's SHA-256 (hex) and size in bytes, read in 1 MiB chunks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def file_entry(role: str, path: Path, name: str | None = None) -> dict[str, Any]:
    """A `files` entry for `path`, named `name` (default: its file name) relative to the
    manifest's directory; the name may differ when the file is hashed before it is published."""
    if role not in ROLES:
        raise ValueError(f"unknown file role {role!r}")
    digest, size = sha256_file(path)
    return {"role": role, "name": name or path.name, "sha256": digest, "bytes": size}


def input_entry(path: Path, frames: int) -> dict[str, Any]:
    """An `inputs` entry: the capture as given on the command line, its digest, size and frames."""
    digest, size = sha256_file(path)
    return {"path": str(path), "sha256": digest, "bytes": size, "frames": frames}


def _plain(value: Any) -> Any:
    """A setting as JSON: tuples as lists, networks and addresses as text, bytes as hex."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_plain(v) for v in value]
        return items if isinstance(value, list | tuple) else sorted(items, key=str)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _when(condition: Filter) -> dict[str, Any]:
    """A filter in the rule language's own words. Its networks are ORIGINAL addresses, and the
    manifest ships with the trace: naming them would tell the recipient which original network
    the frames a step (or a label) singles out came from, so only their number is shown."""
    shown: dict[str, Any] = {}
    if condition.protocols:
        shown["protocol"] = list(condition.protocols)
    if condition.ports:
        shown["port"] = list(condition.ports)
    if condition.networks:
        shown["network"] = [WITHHELD] * len(condition.networks)
    if condition.direction is not None:
        shown["direction"] = condition.direction
    return shown


def _step(step: Step, where: str) -> dict[str, Any]:
    shown: dict[str, Any] = {"use": step.transform.name, "settings": _plain(step.config), "where": where}
    if step.when is not None:
        shown["when"] = _when(step.when)
    return shown


def _run_order(rules: Rules) -> list[tuple[Step, str]]:
    """The steps in the order `Rules.build` runs them, with the implicit ones it adds: `ip`,
    `mac`, `names` first, the other transforms grouped in order of first appearance, `payload`
    last (with a default step for frames no `payload` step names)."""
    groups: dict[str, list[Step]] = {}
    for step in rules.steps:
        groups.setdefault(step.transform.name, []).append(step)
    ordered = [(groups[kind.name][0], groups[kind.name][0].where) if kind.name in groups
               else (Step(kind, kind.Config(), "implicit"), "implicit") for kind in ALWAYS]
    always = {kind.name for kind in ALWAYS}
    ordered += [(step, step.where) for name, steps in groups.items()
                if name not in always and name != Payload.name for step in steps]
    payload = [(step, step.where) for step in groups.get(Payload.name, [])]
    if not payload or payload[-1][0].when is not None:
        payload.append((Step(Payload, Payload.Config(), "implicit"), "implicit"))
    return ordered + payload


def resolved_rules(rules: Rules) -> dict[str, Any]:
    """The rules as they ran: every step with every setting, defaults included, in run order;
    the label rules and the report gates when the rule file has them."""
    resolved: dict[str, Any] = {
        "description": rules.description,
        "links_across_runs": rules.links_across_runs,
        "steps": [_step(step, where) for step, where in _run_order(rules)],
    }
    if rules.labels is not None:
        resolved["labels"] = {
            "rules": [{"when": _when(rule.filter), "label": rule.label} for rule in rules.labels.rules],
            "default": rules.labels.default,
        }
    if rules.gates:
        resolved["report"] = {"fail_on": {gate.figure: gate.limit for gate in rules.gates}}
    return resolved


def build_manifest(*, rules: Rules, key_fingerprint: str, one_time_key: bool, inputs: list[dict[str, Any]],
                   files: list[dict[str, Any]], frames: Mapping[str, Any], labels: Mapping[str, int],
                   report_passed: bool | None, created: str) -> dict[str, Any]:
    """The manifest of one scrub run (version 1, unsigned). `frames` holds `in`, `out` and the
    `dropped` and `cut` counts by reason; `created` is an ISO 8601 UTC time."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "tool": f"anontrace {__version__}",
        "created": created,
        "rules": {"source": rules.source, "sha256": rules.digest, "resolved": resolved_rules(rules)},
        "key_fingerprint": key_fingerprint,
        "one_time_key": one_time_key,
        "inputs": [dict(entry) for entry in inputs],
        "files": [dict(entry) for entry in files],
        "frames": {"in": int(frames["in"]), "out": int(frames["out"]),
                   "dropped": dict(sorted(frames.get("dropped", {}).items())),
                   "cut": dict(sorted(frames.get("cut", {}).items()))},
        "labels": dict(sorted(labels.items())),
        "report": None if report_passed is None else {"passed": report_passed},
    }


def write_manifest(path: Path, manifest: Mapping[str, Any]) -> None:
    """Write the manifest as indented JSON, appearing under `path` all at once."""
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    directory = path.parent
    try:
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".partial")
    except OSError as exc:
        raise OutputError(str(path), f"cannot create manifest: {exc.strerror}",
                          "check that the directory exists and is writable") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except OSError as exc:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise OutputError(str(path), f"cannot write manifest: {exc.strerror}") from None


def manifest_path_for(output: str) -> Path:
    """The manifest of the trace written to `output`, or `output` itself when it is a manifest."""
    return Path(output) if output.endswith(SUFFIX) else Path(output + SUFFIX)


@dataclass(slots=True)
class Verification:
    """What `verify` found: `problems` (each one line: what differs), `checked` (what matched),
    the signer's key id, and whether that key is the one the verifier trusts (`--public-key`)."""

    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    signed_by: str | None = None
    trusted: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(target: Path, public_key_path: Path | None = None, inputs: Sequence[Path] = ()) -> Verification:
    """Check every file the manifest of `target` (a trace or its manifest) names, its signature
    (against `public_key_path` when given) and, optionally, the original `inputs`."""
    path = manifest_path_for(str(target))
    manifest = read_manifest(path)
    result = Verification()
    traces = [entry["name"] for entry in manifest["files"] if entry["role"] == "trace"]
    if len(traces) != 1:
        result.problems.append(f"the manifest names {len(traces)} traces; a bundle has exactly one")
    elif not str(target).endswith(SUFFIX) and traces[0] != Path(target).name:
        result.problems.append(f"{Path(target).name}: not the trace this manifest describes ({traces[0]})")
    for entry in manifest["files"]:
        _check_file(path.parent / entry["name"], f"{entry['name']} ({entry['role']})", entry, result)
    _check_signature(manifest, public_key_path, result)
    for original in inputs:
        _check_input(original, manifest["inputs"], result)
    return result


def _check_file(path: Path, label: str, entry: Mapping[str, Any], result: Verification) -> None:
    try:
        if not path.is_file():
            result.problems.append(f"{label}: missing" if not path.exists() else f"{label}: not a file")
            return
        size = path.stat().st_size
        if size != entry["bytes"]:
            result.problems.append(f"{label}: size {size} != {entry['bytes']} bytes in the manifest")
            return
        digest, _ = sha256_file(path)
    except OSError as exc:
        result.problems.append(f"{label}: cannot read: {exc.strerror}")
        return
    if digest != entry["sha256"]:
        result.problems.append(f"{label}: sha256 differs (file {digest[:16]}..., "
                               f"manifest {entry['sha256'][:16]}...)")
    else:
        result.checked.append(f"{label}: sha256 and size match")


def _check_signature(manifest: Mapping[str, Any], public_key_path: Path | None,
                     result: Verification) -> None:
    signature = manifest.get("signature")
    if signature is None:
        if public_key_path is not None:
            result.problems.append(f"manifest is not signed, but a public key was given ({public_key_path})")
        return
    given = load_public_key(public_key_path) if public_key_path is not None else None
    raw = base64.b64decode(signature["public_key"])
    signer = raw_key_id(raw)
    result.signed_by = signer
    if signer != signature["key_id"]:
        result.problems.append(f"signature: key_id {signature['key_id']} is not the id of its public "
                               f"key ({signer})")
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(base64.b64decode(signature["value"]),
                                                       canonical(manifest))
        valid = True
    except (InvalidSignature, ValueError, UnicodeEncodeError):
        result.problems.append(f"signature invalid: the manifest was changed after key {signer} signed "
                               "it, or the signature is not for it")
        valid = False
    if given is not None and key_id(given) != signer:
        result.problems.append(f"signed by key id {signer} but the public key given is {key_id(given)}")
    elif valid and given is None:
        result.checked.append(f"signature valid, by key id {signer} (not checked against a trusted "
                              "key: give the sender's public key)")
    elif valid:
        result.trusted = True
        result.checked.append(f"signature valid, by key id {signer}, the public key given")


def _check_input(original: Path, entries: Sequence[Mapping[str, Any]], result: Verification) -> None:
    named = [e for e in entries if e["path"] == str(original)
             or PurePosixPath(e["path"]).name == original.name]
    if not named:
        result.problems.append(f"input {original}: not among the manifest's inputs")
        return
    try:
        digest, size = sha256_file(original)
    except OSError as exc:
        result.problems.append(f"input {original}: cannot read: {exc.strerror}")
        return
    if any(e["sha256"] == digest and e["bytes"] == size for e in named):
        result.checked.append(f"input {original}: sha256 and size match")
    else:
        result.problems.append(f"input {original}: sha256 differs from the manifest's input "
                               f"{named[0]['path']} ({size} bytes, manifest {named[0]['bytes']})")


def read_manifest(path: Path) -> dict[str, Any]:
    """A manifest file, checked for the members verification relies on."""
    try:
        if path.stat().st_size > MAX_MANIFEST:
            raise TraceFormatError(str(path), f"larger than {MAX_MANIFEST >> 20} MiB: not a manifest")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        what = f"cannot read manifest: {getattr(exc, 'strerror', None) or exc}"
        raise TraceFormatError(str(path), what, "give the trace (its manifest is TRACE.manifest.json) "
                               "or the manifest itself") from None
    try:
        manifest = json.loads(text, object_pairs_hook=_unique, parse_constant=_no_constant)
    except ValueError as exc:
        raise TraceFormatError(str(path), f"not a manifest: invalid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise TraceFormatError(str(path), f"not an anontrace manifest (no \"format\": \"{FORMAT}\")")
    version = manifest.get("version")
    if not (isinstance(version, int) and not isinstance(version, bool) and version == VERSION):
        raise TraceFormatError(str(path), f"unsupported manifest version {version!r}",
                               f"this anontrace reads version {VERSION}")
    problem = _shape(manifest)
    if problem:
        raise TraceFormatError(str(path), f"malformed manifest: {problem}")
    return manifest


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Refuse duplicate members: other JSON readers would see a different value than we check."""
    found: dict[str, Any] = {}
    for name, value in pairs:
        if name in found:
            raise ValueError(f"member {name!r} appears twice")
        found[name] = value
    return found


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _is_digest(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _shape(manifest: Mapping[str, Any]) -> str | None:
    """The first member verification cannot use, or None."""
    for member in ("files", "inputs"):
        if not isinstance(manifest.get(member), list):
            return f"`{member}` is not a list"
    for at, entry in enumerate(manifest["files"]):
        if not (isinstance(entry, dict) and entry.get("role") in ROLES and _is_digest(entry.get("sha256"))
                and _is_count(entry.get("bytes")) and isinstance(entry.get("name"), str)):
            return f"files[{at}] needs role, name, sha256 and bytes"
        name = PurePosixPath(entry["name"])
        if not entry["name"] or name.is_absolute() or ".." in name.parts or "\\" in entry["name"]:
            return f"files[{at}].name {entry['name']!r} is not a path inside the manifest's directory"
    for at, entry in enumerate(manifest["inputs"]):
        if not (isinstance(entry, dict) and isinstance(entry.get("path"), str)
                and _is_digest(entry.get("sha256")) and _is_count(entry.get("bytes"))):
            return f"inputs[{at}] needs path, sha256 and bytes"
    signature = manifest.get("signature")
    if signature is None:
        return None
    if not isinstance(signature, dict) or signature.get("algorithm") != "ed25519":
        return "`signature` is not an ed25519 signature"
    if not isinstance(signature.get("key_id"), str) or _b64(signature.get("public_key")) != 32 \
            or _b64(signature.get("value")) != 64:
        return "`signature` needs key_id, public_key (32 bytes) and value (64 bytes), base64"
    return None


def _b64(value: Any) -> int:
    """The decoded length of base64 text, or -1 when it is not base64."""
    try:
        return len(base64.b64decode(value, validate=True)) if isinstance(value, str) else -1
    except ValueError:
        return -1
