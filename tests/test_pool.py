"""Local worker processes: answers come back by job number whatever order they finish in, a job's
exception is raised again here, and a worker that died (even while idle) fails the job it gets,
naming what that job works on."""

from __future__ import annotations

import math

import psutil
import pytest

from anontrace.errors import EngineError
from anontrace.io.split import Chunk
from anontrace.pool import LocalPool
from tests.scrubkit import TIMEOUT, workers_of


def chunk(first: int) -> Chunk:
    return Chunk("capture.pcap", 24 + 100 * first, 124 + 100 * first, first, 1, b"")


def test_answers_are_taken_by_job_number() -> None:
    pool = LocalPool(2, repr, "anontrace.io.split")
    try:
        jobs = [chunk(n) for n in range(7)]
        for number, job in enumerate(jobs):
            pool.submit(number, job)
        answers = [pool.result(number) for number in reversed(range(7))]
    finally:
        pool.close()
    assert answers == [repr(job) for job in reversed(jobs)]  # computed in the workers, here by hand


def test_an_exception_in_a_job_is_raised_here() -> None:
    pool = LocalPool(1, math.sqrt, "math")
    try:
        pool.submit(0, 16.0)
        pool.submit(1, -1.0)
        assert pool.result(0) == 4.0
        with pytest.raises(RuntimeError, match="math domain error"):
            pool.result(1)
    finally:
        pool.close()


def test_a_worker_that_died_between_jobs_fails_the_next_job_naming_it() -> None:
    """The OOM killer picks any process: a worker killed while idle must fail the next job with
    an EngineError naming what it works on, not a broken pipe (which the CLI would turn into
    exit 1 with no message at all)."""
    pool = LocalPool(1, repr, "anontrace.io.split")
    job = chunk(3)
    caught: BaseException | None = None
    try:
        idle = workers_of(psutil.Process())
        assert len(idle) == 1
        idle[0].kill()
        idle[0].wait(TIMEOUT)
        try:
            pool.submit(0, job)
            pool.result(0)
        except Exception as exc:  # which error it is, is the point
            caught = exc
    finally:
        pool.close()
    assert isinstance(caught, EngineError), f"got {type(caught).__name__}: {caught}"
    assert caught.where == job.describe() and "died (killed by signal 9)" in caught.what
