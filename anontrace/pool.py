"""Worker processes on this machine: jobs sent through pipes, answers taken as they come.

A worker that dies (killed, out of memory) is seen by its process sentinel or its closed pipe,
whether it was working or idle, and the job it held is named in the error; an exception raised
by a job is sent back and raised again here.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import traceback
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any, Protocol

from anontrace.errors import AnontraceError, EngineError


class Job(Protocol):
    def describe(self) -> str: ...


class _Failure:
    """An error raised by a job in a worker, sent back to be raised again in the main process."""

    def __init__(self, error: BaseException) -> None:
        self.error = error if isinstance(error, AnontraceError) else None
        self.text = "".join(traceback.format_exception_only(type(error), error)).strip()


def _serve(connection: Connection, run: Callable[[Any], Any]) -> None:
    """A local worker process: `run` the jobs sent until told to stop (None) or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process stops the run, and the workers
    while True:
        try:
            job = connection.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            reply = run(job)
        except Exception as exc:  # every failure goes back to the main process
            reply = _Failure(exc)
        connection.send(reply)


class LocalPool:
    """`workers` processes on this machine, each running one job at a time with `run` (a
    module-level function; `preload` names its module, imported once by the fork server). A job
    has a `describe()` that says what it works on, for the error when its worker dies."""

    def __init__(self, workers: int, run: Callable[[Any], Any], preload: str) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([preload])
        self._workers: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
        for _ in range(workers):
            mine, theirs = context.Pipe()
            process = context.Process(target=_serve, args=(theirs, run), daemon=True, name="anontrace-worker")
            process.start()
            theirs.close()
            self._workers.append((process, mine))
        self._idle = list(range(workers))
        self._busy: dict[int, tuple[int, Job]] = {}  # worker -> (job number, job)
        self._waiting: deque[tuple[int, Job]] = deque()
        self._done: dict[int, Any] = {}

    def submit(self, number: int, job: Job) -> None:
        self._waiting.append((number, job))
        self._dispatch()

    def _dispatch(self) -> None:
        while self._idle and self._waiting:
            worker = self._idle.pop()
            number, job = self._waiting.popleft()
            self._busy[worker] = (number, job)
            process, pipe = self._workers[worker]
            try:
                pipe.send(job)
            except OSError:  # it died between jobs
                process.join(1)
                raise _died(job, process.exitcode) from None

    def result(self, number: int) -> Any:
        while number not in self._done:
            self._collect()
        found = self._done.pop(number)
        if isinstance(found, _Failure):
            if found.error is not None:
                raise found.error
            raise RuntimeError(found.text)
        return found

    def _collect(self) -> None:
        """Wait for a busy worker to answer (or to die)."""
        sentinels = {self._workers[w][0].sentinel: w for w in self._busy}
        pipes = {self._workers[w][1]: w for w in self._busy}
        ready = wait([*pipes, *sentinels])
        for item in ready:
            worker = pipes.get(item) if isinstance(item, Connection) else sentinels.get(int(item))  # type: ignore[arg-type]
            if worker is None or worker not in self._busy:
                continue
            process, pipe = self._workers[worker]
            number, job = self._busy[worker]
            try:
                reply = pipe.recv() if pipe.poll() else None
            except (EOFError, OSError):
                reply = None
            if reply is None:
                process.join(1)
                raise _died(job, process.exitcode)
            self._done[number] = reply
            del self._busy[worker]
            self._idle.append(worker)
        self._dispatch()

    def close(self) -> None:
        for process, pipe in self._workers:
            if process.is_alive() and not self._busy:
                with contextlib.suppress(OSError):
                    pipe.send(None)
        for process, pipe in self._workers:
            process.join(0.5 if not self._busy else 0)
            if process.is_alive():
                process.kill()
                process.join()
            pipe.close()


def _died(job: Job, code: int | None) -> EngineError:
    how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
    return EngineError(job.describe(), f"a worker process died ({how}) while working on this part; "
                       "nothing was published",
                       "it was killed, or ran out of memory: try fewer --workers, or find what killed it")
