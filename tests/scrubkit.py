"""Shared by the engine tests (local workers, Dask): benchmark traces, a key file, ground truth, an
`anontrace scrub` subprocess, and the bundle of outputs compared byte for byte between runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from anontrace.keys import generate, write_key_file

ROOT = Path(__file__).parent.parent
MAKE_TRACE = ROOT / "benchmarks" / "make_trace.py"
SIDECARS = (".labels.csv", ".flows.csv", ".report.json", ".report.html", ".manifest.json")
TIMEOUT = 300
# Ground truth in ORIGINAL terms: ports the benchmark trace serves, a time window in the middle of
# it (the trace starts at 1,700,000,000 s and runs ~0.2 s), and a row that matches nothing.
TRUTH = """label,src,dst,sport,dport,protocol,start,end
burst,,,,,,2023-11-14T22:13:20.05Z,2023-11-14T22:13:20.09Z
web,,,,443,tcp,,
mail,,,,993,tcp,,
dns,,,,53,udp,,
nat-t,,,,4500,udp,,
nowhere,10.255.255.254,,,,,,
"""


def make_trace(path: Path, packets: int, seed: int = 1) -> Path:
    subprocess.run([sys.executable, str(MAKE_TRACE), "--packets", str(packets), "--seed", str(seed),
                    "-o", str(path), "-q"], check=True, timeout=TIMEOUT)
    return path


@dataclass(frozen=True)
class Material:
    key: Path
    secret: bytes
    truth: Path


def material(directory: Path) -> Material:
    key = generate()
    write_key_file(directory / "key", key)
    (directory / "truth.csv").write_text(TRUTH)
    return Material(directory / "key", key.secret, directory / "truth.csv")


@dataclass(frozen=True)
class Finished:
    code: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict[str, Any]:
        assert self.code == 0, self.stderr
        found: dict[str, Any] = json.loads(self.stdout)
        return found


def anontrace(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> Finished:
    done = subprocess.run([sys.executable, "-m", "anontrace", *args], input=stdin, capture_output=True,
                          timeout=TIMEOUT, check=False, cwd=ROOT, env=env)
    return Finished(done.returncode, done.stdout.decode(), done.stderr.decode())


def scrub(inputs: list[Path] | list[str], output: Path, made: Material, *more: str,
          stdin: bytes | None = None) -> Finished:
    """`anontrace scrub` with the key, the ground truth, the default report place and --json."""
    return anontrace("scrub", *map(str, inputs), "-o", str(output), "--key-file", str(made.key),
                     "--labels-from", str(made.truth), "-q", "--json", *more, stdin=stdin)


CREATED = re.compile(r"<tr><th>created</th><td>[^<]*</td></tr>")


def bundle(trace: Path) -> dict[str, Any]:
    """An output and its sidecars, as compared between runs: bytes, except the report's and the
    manifest's `created` (and, in the manifest, the digests of the reports that hold it)."""
    found: dict[str, Any] = {"trace": trace.read_bytes()}
    for suffix in (".labels.csv", ".flows.csv"):
        found[suffix] = Path(f"{trace}{suffix}").read_bytes()
    report = json.loads(Path(f"{trace}.report.json").read_text())
    assert isinstance(report.pop("created"), str)
    found[".report.json"] = report
    html = Path(f"{trace}.report.html").read_text()
    assert len(CREATED.findall(html)) == 1
    found[".report.html"] = CREATED.sub("", html)
    manifest = json.loads(Path(f"{trace}.manifest.json").read_text())
    assert isinstance(manifest.pop("created"), str)
    for entry in manifest["files"]:
        if entry["role"].startswith("report"):
            entry.pop("sha256")
    found[".manifest.json"] = manifest
    return found


def assert_same_bundle(left: dict[str, Any], right: dict[str, Any], what: str) -> None:
    assert left.keys() == right.keys()
    for part in left:
        assert left[part] == right[part], f"{what}: {part} differs"


def listing(directory: Path) -> list[str]:
    """Every entry, hidden ones included."""
    return sorted(p.name for p in directory.iterdir())


def workers_of(run: psutil.Process) -> list[psutil.Process]:
    """The worker processes of a run: forked by its forkserver, the child whose command line
    names `multiprocessing.forkserver` (workers are forks of it, so they share its command line;
    the resource tracker is another child of the run)."""
    for child in run.children():
        try:
            if any("forkserver" in part for part in child.cmdline()):
                return child.children()
        except psutil.NoSuchProcess:
            continue
    return []
