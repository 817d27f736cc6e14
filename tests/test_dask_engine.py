"""The Dask engine on real clusters (Dask is a test dependency: imported here, never mocked): a local
cluster that anontrace starts and one the test starts and names with --scheduler give the very
bundle one process gives; an unreachable scheduler fails within a bounded time; the key travels as
a file path, never as bytes in the task graph."""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import distributed
import pytest

from anontrace.dask_engine import DaskBackend
from anontrace.errors import KeyError_
from anontrace.keys import read_key_file
from anontrace.labels import GroundTruth
from anontrace.parallel import Job, KeySpec, Session, Setup, new_run
from anontrace.rules.compile import read_rules
from tests.scrubkit import (
    Material,
    anontrace,
    assert_same_bundle,
    bundle,
    listing,
    scrub,
)

CHUNK = str(1_500_000)  # the 20,000-frame trace (11 MB) in ~8 pieces


@pytest.fixture(scope="module")
def expected(trace: Path, made: Material, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The bundle of a run in one process."""
    out = tmp_path_factory.mktemp("one") / "out.pcap"
    assert scrub([trace], out, made, "--workers", "1").summary["engine"] == "this process"
    return bundle(out)


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.LocalCluster]:
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as started:
        yield started


def test_a_local_dask_cluster_gives_the_same_bundle(tmp_path: Path, trace: Path, made: Material,
                                                    expected: dict[str, object]) -> None:
    done = scrub([trace], tmp_path / "out.pcap", made, "--engine", "dask", "--workers", "2",
                 "--chunk-size", CHUNK)
    assert done.summary["engine"] == "dask (local cluster of 2 workers)"
    assert_same_bundle(expected, bundle(tmp_path / "out.pcap"), "dask, local cluster")


def test_a_named_scheduler_gives_the_same_bundle(tmp_path: Path, trace: Path, made: Material,
                                                 expected: dict[str, object],
                                                 cluster: distributed.LocalCluster) -> None:
    address = cluster.scheduler_address
    done = scrub([trace], tmp_path / "out.pcap", made, "--engine", "dask", "--scheduler", address,
                 "--chunk-size", CHUNK)
    assert done.summary["engine"] == f"dask ({address})"
    assert_same_bundle(expected, bundle(tmp_path / "out.pcap"), "dask, named scheduler")
    with distributed.Client(address) as client:  # the pieces did run on that cluster's workers
        assert len(client.scheduler_info()["workers"]) == 2


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_an_unreachable_scheduler_fails_within_a_bounded_time(tmp_path: Path, trace: Path,
                                                              made: Material) -> None:
    """Bounded by `--scheduler-timeout`: the run must end (the subprocess's own timeout would
    fail the test otherwise) with the error naming that bound."""
    address = f"tcp://127.0.0.1:{closed_port()}"
    command = [sys.executable, "-m", "anontrace", "scrub", str(trace), "-o", str(tmp_path / "out.pcap"),
               "--key-file", str(made.key), "-q", "--engine", "dask", "--scheduler", address,
               "--scheduler-timeout", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"Error: {address}: cannot reach the Dask scheduler within 2 s")
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_the_dask_engine_refuses_a_one_time_key(tmp_path: Path, trace: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if k != "ANONTRACE_KEY_FILE"}
    done = anontrace("scrub", str(trace), "-o", str(tmp_path / "out.pcap"), "-q", "--engine", "dask",
                     env=environment)
    assert done.code == 2, done.stderr
    assert "--key-file" in done.stderr
    assert "Traceback" not in done.stderr
    assert listing(tmp_path) == []


def test_jobs_carry_the_key_file_path_not_the_key(trace: Path, made: Material,
                                                 cluster: distributed.LocalCluster) -> None:
    key = read_key_file(made.key)
    rules = read_rules(None)
    setup = Setup(new_run(), rules, KeySpec(key.fingerprint, str(made.key)), (),
                  GroundTruth.read(made.truth))
    job = Job(0, str(trace), None, setup)
    blob = pickle.dumps(job)
    assert key.secret not in blob and key.secret.hex().encode() not in blob
    assert str(made.key).encode() in blob

    backend = DaskBackend(cluster.scheduler_address, 2, 10.0)
    try:
        session = Session(backend, [str(trace)], setup, 2_000_000, window=3)
        pieces = list(session.pieces(0))
    finally:
        backend.close()
    assert len(pieces) >= 5  # the file was split
    for found, _ in pieces:
        sent = pickle.dumps(found)
        assert key.secret not in sent and key.secret.hex().encode() not in sent
        assert str(made.key).encode() in sent
    assert sum(len(piece.records) for _, piece in pieces) == 20_000
    assert [job.chunk.first for job, _ in pieces if job.chunk is not None] == sorted(
        job.chunk.first for job, _ in pieces if job.chunk is not None)


def test_a_worker_with_another_key_in_the_file_is_refused(tmp_path: Path, trace: Path, made: Material,
                                                          cluster: distributed.LocalCluster) -> None:
    key = read_key_file(made.key)
    setup = Setup(new_run(), read_rules(None), KeySpec("0" * 16, str(made.key)))
    backend = DaskBackend(cluster.scheduler_address, 2, 10.0)
    try:
        session = Session(backend, [str(trace)], setup, 1 << 30, window=1)
        with pytest.raises(KeyError_) as caught:
            list(session.pieces(0))
    finally:
        backend.close()
    assert caught.value.where == str(made.key)
    assert key.fingerprint in str(caught.value) and "0" * 16 in str(caught.value)
