"""The Dask engine: scrub jobs as tasks on a Dask distributed cluster.

Each job (`parallel.Job`) becomes one task running `parallel.work`; the main process takes the
results in file order as with local workers. What a task carries: the input's path, a byte range,
the rule set and the key file's PATH and fingerprint, never the key. So every worker must run
the same anontrace version and see the inputs and the key file under the same paths (a shared
filesystem), and the key file must be readable by the worker's user only (mode 0600), as for
`--key-file`. With no scheduler address, a local cluster of worker processes is started for the
run and stopped after it. TLS: give a `tls://` address and configure the client's certificates
the Dask way (docs/parallel.md).

Dask re-runs a task whose worker died on another worker; once a task has killed
`distributed.scheduler.allowed-failures` workers, the run fails naming the input and byte range.
"""

from __future__ import annotations

import logging
from typing import Any

from anontrace.errors import EngineError
from anontrace.parallel import AnyJob, Piece, work


class DaskBackend:
    """Jobs as tasks on a Dask cluster: at `address`, or a local one of `workers` processes."""

    def __init__(self, address: str | None, workers: int, timeout: float) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise EngineError("--engine dask", "Dask is not installed",
                              "install it with `pip install 'anontrace[dask]'`") from None
        for name in ("distributed", "distributed.comm", "tornado"):  # its own logs would drown ours
            logging.getLogger(name).setLevel(logging.ERROR)
        self._cluster: Any = None
        self._futures: dict[int, tuple[Any, AnyJob]] = {}
        if address is None:
            self._cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                         dashboard_address=None, silence_logs=logging.ERROR)
            self._client = Client(self._cluster)
            return
        try:
            self._client = Client(address, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            raise EngineError(address, f"cannot reach the Dask scheduler within {timeout:g} s: {exc}",
                              "check the address (tcp://HOST:PORT or tls://HOST:PORT), that the "
                              "scheduler runs, and for tls:// the certificates (docs/parallel.md)") from None

    def submit(self, number: int, job: AnyJob) -> None:
        future = self._client.submit(work, job, pure=False, key=f"anontrace-{job.setup.run}-{number}")
        self._futures[number] = (future, job)

    def result(self, number: int) -> Piece:
        from distributed import KilledWorker

        future, job = self._futures.pop(number)
        try:
            piece: Piece = future.result()
        except KilledWorker as exc:
            raise EngineError(job.describe(), f"Dask workers died running this part ({exc}); "
                              "nothing was published",
                              "they were killed, or ran out of memory: give them more memory") from None
        except (OSError, TimeoutError) as exc:
            raise EngineError(job.describe(),
                              f"lost the Dask cluster: {exc}; nothing was published") from None
        return piece

    def close(self) -> None:
        for future, _ in self._futures.values():
            future.cancel()
        self._futures.clear()
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()
