"""The bounded fuzzing run: every target in fuzz/ under atheris for a fixed time, from real seeds.

Seeds are built by fuzz/seeds.py into a temporary directory: frames and small capture files from
../shared/corpus, and the shipped rule files and the test suite's rule snippets; each target
(fuzz/dissect.py, protocols.py, rules.py, readers.py) then runs as its own process with
`-max_total_time` (ANONTRACE_FUZZ_SECONDS, default 40), two at a time (one per core). A target
passes when libFuzzer ends by itself with exit 0 and writes no crash, timeout or out-of-memory
artifact. The executions each target ran are printed (`pytest -s`) with libFuzzer's random seed,
so a failure can be replayed with `-seed=N`; fuzz/README.md describes the longer run.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import atheris  # noqa: F401  - the `test` extra installs it; missing is a failure, not a skip
import pytest

from anontrace.packet.layers import Layers

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
CAPTURES = ROOT.parent / "shared" / "corpus"
TARGETS = ("dissect", "protocols", "rules", "readers")
SECONDS = int(os.environ.get("ANONTRACE_FUZZ_SECONDS", "40"))
GRACE = 180  # seconds past -max_total_time before the run counts as hung: seed loading, start-up
PER_INPUT_TIMEOUT = 10  # libFuzzer -timeout: one input taking longer is a hang, and a failure
EXECUTED = re.compile(r"stat::number_of_executed_units:\s*(\d+)")
DONE = re.compile(r"^#(\d+)\s+DONE", re.MULTILINE)
SEED = re.compile(r"INFO: Seed: (\d+)")


@dataclass(frozen=True, slots=True)
class Run:
    """One target's bounded run: exit status, what libFuzzer printed, artifacts it wrote."""

    target: str
    returncode: int
    output: str
    artifacts: tuple[Path, ...]

    @property
    def executions(self) -> int:
        found = EXECUTED.search(self.output) or DONE.search(self.output)
        return int(found.group(1)) if found else 0

    @property
    def seed(self) -> str:
        found = SEED.search(self.output)
        return found.group(1) if found else "?"

    def describe(self) -> str:
        artifacts = "; ".join(f"{p.name} = {p.read_bytes()[:256].hex()}" for p in self.artifacts)
        return (f"fuzz target {self.target}: exit {self.returncode}, {self.executions} executions, "
                f"seed {self.seed}; artifacts: {artifacts or 'none'}\n{self.output[-6000:]}")


def _fuzz(target: str, seeds: Path, work: Path) -> Run:
    corpus = work / "corpus" / target  # libFuzzer adds what it finds to the first corpus directory
    shutil.copytree(seeds / target, corpus)
    artifacts = work / "artifacts" / target
    artifacts.mkdir(parents=True)
    command = [sys.executable, str(FUZZ / f"{target}.py"), f"-max_total_time={SECONDS}",
               f"-timeout={PER_INPUT_TIMEOUT}", "-rss_limit_mb=2048", "-print_final_stats=1",
               f"-artifact_prefix={artifacts}/", str(corpus)]
    if target == "rules":
        command.insert(2, f"-dict={seeds / 'rules.dict'}")
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(command, cwd=work, env=environment, capture_output=True, text=True,
                            timeout=SECONDS + GRACE, check=False)
    return Run(target, result.returncode, result.stdout + result.stderr, tuple(sorted(artifacts.iterdir())))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every target's run, two at a time; the executions are printed for the record."""
    assert CAPTURES.is_dir(), f"no seed captures at {CAPTURES}: the corpus sits beside the checkout"
    work = tmp_path_factory.mktemp("fuzz")
    seeds = work / "seeds"
    built = subprocess.run([sys.executable, str(FUZZ / "seeds.py"), "--captures", str(CAPTURES),
                            "--out", str(seeds)], capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stderr
    print(f"\n{built.stdout.strip()}")
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = dict(zip(TARGETS, pool.map(lambda t: _fuzz(t, seeds, work / t), TARGETS), strict=True))
    for run in done.values():
        print(f"fuzz {run.target}: {run.executions} executions in {SECONDS} s (seed {run.seed}), "
              f"exit {run.returncode}, {len(run.artifacts)} artifacts")
    return done


@pytest.mark.parametrize("target", TARGETS)
def test_target_runs_its_time_without_a_crash(runs: dict[str, Run], target: str) -> None:
    run = runs[target]
    assert run.returncode == 0 and not run.artifacts, run.describe()
    assert "Done" in run.output and run.executions > 0, run.describe()


def test_the_frame_checks_fail_on_what_they_guard() -> None:
    """The targets' invariants can fail: a frame understood only in part without a reason, an
    address past the frame's end, an address left as it was under `strict`."""
    sys.path.insert(0, str(FUZZ))
    try:
        harness = importlib.import_module("harness")
    finally:
        sys.path.remove(str(FUZZ))
    frame = bytes(26) + bytes([10, 0, 0, 1]) + bytes([127, 0, 0, 1]) + bytes(26)
    with pytest.raises(AssertionError, match="not cut"):
        harness.check_layers(frame, Layers(parsed_to=40))
    with pytest.raises(AssertionError, match="ipv4"):
        harness.check_layers(frame, Layers(parsed_to=60, cut=None, ipv4=(58,)))
    harness.check_layers(frame, Layers(parsed_to=60, ipv4=(26, 30)))
    with pytest.raises(AssertionError, match="0a000001 at 26 left as it was"):
        harness.check_rewritten(frame, Layers(parsed_to=60, ipv4=(26, 30)), frame)
    harness.check_rewritten(frame, Layers(parsed_to=60, ipv4=(30,)), frame)  # loopback: kept by strict
