"""Dask distributed execution of a sweep (optional: ``pip install "dask[distributed]"``).

* no address: a ``LocalCluster`` of ``W`` worker *processes* on 127.0.0.1, one task
  thread each, with ``NUMBA_NUM_THREADS = cores // W`` in their environment so Numba's
  pools do not oversubscribe the machine;
* an address (``tcp://host:8786``, a dask-jobqueue or Kubernetes scheduler): the
  existing cluster, unchanged.  A worker plugin tells every worker how many Numba
  threads its tasks may use: the cores of its host divided by the task threads of all
  workers on that host.

A Dask task is a batch of cells (see :func:`batch_size`); finished cells come back
to the client, which stores each of them.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

try:
    import dask
    from distributed import Client, LocalCluster, as_completed
    from distributed.diagnostics.plugin import WorkerPlugin
except ModuleNotFoundError as exc:  # pragma: no cover - exercised without the extra
    raise ModuleNotFoundError("the Dask scheduler needs the optional extra: pip install "
                              "\"dask[distributed]\"") from exc

THREADS_ENV = "LOGRAD_FAST_SWEEP_THREADS"
#: Dask configuration of the LocalCluster a sweep starts.  The statistical profiler
#: samples every task thread's stack every 10 ms; with the GIL handed back and forth
#: between the task and the profiler, a sweep ran up to 2.5x slower on a busy 2-core
#: machine (measured: 1.0x of the local run without it).  Pass the same setting to
#: clusters of your own (``distributed.worker.profile.enabled: false``).
LOCAL_CLUSTER_CONFIG = {"distributed.worker.profile.enabled": False}


def host_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class NumbaThreads(WorkerPlugin):
    """Sets :data:`THREADS_ENV` on each worker: Numba threads per task.

    ``per_host``: total task threads of the workers on each host (from the scheduler
    when the plugin was registered); a worker on a host not listed uses its own.
    """

    name = "lograd-fast-numba-threads"

    def __init__(self, per_host: dict[str, int] | None = None, fixed: int | None = None):
        self.per_host = dict(per_host or {})
        self.fixed = fixed

    def setup(self, worker: Any) -> None:
        if self.fixed:
            threads = self.fixed
        else:
            host = _host(worker.address)
            busy = self.per_host.get(host) or getattr(worker.state, "nthreads", 1)
            threads = max(1, host_cores() // max(1, busy))
        os.environ[THREADS_ENV] = str(threads)
        if "numba" not in __import__("sys").modules:
            os.environ.setdefault("NUMBA_NUM_THREADS", str(threads))


def _host(address: str) -> str:
    return address.split("://")[-1].rsplit(":", 1)[0]


def _register(client: Client, plugin: WorkerPlugin) -> None:
    register = getattr(client, "register_plugin", None) or client.register_worker_plugin
    register(plugin)


@contextlib.contextmanager
def client_for(address: Any = None, workers: int | None = None) -> Iterator[Client]:
    """A connected client: ``address`` may be a ``distributed.Client`` (used, not
    closed), a scheduler address, or ``None`` (start a LocalCluster of ``workers``
    processes).  Every worker gets the :class:`NumbaThreads` plugin."""
    if isinstance(address, Client):
        _register(address, NumbaThreads(_threads_per_host(address)))
        yield address
        return
    if address is not None:
        with Client(address) as client:
            _register(client, NumbaThreads(_threads_per_host(client)))
            yield client
        return
    cores = host_cores()
    n_workers = workers or cores
    threads = max(1, cores // n_workers)
    env = {"NUMBA_NUM_THREADS": str(threads), THREADS_ENV: str(threads)}
    with dask.config.set(LOCAL_CLUSTER_CONFIG), \
            LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                         host="127.0.0.1", dashboard_address=None, env=env,
                         silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        _register(client, NumbaThreads(fixed=threads))
        yield client


def _workers(client: Client) -> dict[str, dict]:
    """The scheduler's description of every worker, by address."""
    info = client.scheduler_info(n_workers=-1) if _takes_n_workers(client) \
        else client.scheduler_info()
    return info.get("workers", {})


def _threads_per_host(client: Client) -> dict[str, int]:
    """Task threads of all the workers on each host."""
    per_host: dict[str, int] = {}
    for addr, w in _workers(client).items():
        per_host[_host(addr)] = per_host.get(_host(addr), 0) + int(w.get("nthreads", 1))
    return per_host


def _takes_n_workers(client: Client) -> bool:
    import inspect

    try:
        return "n_workers" in inspect.signature(client.scheduler_info).parameters
    except (TypeError, ValueError):
        return False


def warm_workers(client: Client, kernels: Iterable[tuple[str, str]]) -> None:
    """Fill every host's kernel cache with the ``(family, dtype)`` kernels first
    (:func:`lograd_fast.precompile.ensure_compiled` on each worker): the first worker of
    a host compiles them in parallel processes while the others wait on its lock, then
    every worker loads them instead of compiling."""
    kernels = sorted(kernels)
    if not kernels:
        return
    from ..precompile import ensure_compiled

    # a task on each worker (client.run would block the worker's event loop meanwhile)
    client.gather([client.submit(ensure_compiled, kernels, workers=[address],
                                 allow_other_workers=False, pure=False)
                   for address in _workers(client)])


def _run_batch(fn: Callable[[dict], dict], tasks: list[dict]) -> list[dict]:
    return [fn(task) for task in tasks]


def batch_size(n_tasks: int, n_threads: int, per_thread: int = 8, largest: int = 32) -> int:
    """Cells per Dask task: about ``per_thread`` tasks per worker thread (load balance),
    at most ``largest`` cells (progress and resume granularity).  Batching saves the
    scheduler round trip per cell (~5-10 ms measured: 1.6x the local time for 10^5
    draws per cell with one cell per task)."""
    return max(1, min(largest, n_tasks // max(1, per_thread * n_threads)))


def run_tasks(client: Client, tasks: list[dict], fn: Callable[[dict], dict],
              on_result: Callable[[dict], None]) -> None:
    """Submit the tasks in batches of cells, hand each cell's result to ``on_result``
    as its batch arrives."""
    threads = sum(_threads_per_host(client).values()) or 1
    size = batch_size(len(tasks), threads)
    batches = [tasks[i:i + size] for i in range(0, len(tasks), size)]
    futures = [client.submit(_run_batch, fn, batch, pure=False,
                             key=f"lograd-fast-cells-{batch[0]['key']}-{len(batch)}")
               for batch in batches]
    try:
        for future in as_completed(futures):
            for record in future.result():
                on_result(record)
    except BaseException:
        for future in futures:
            future.cancel()
        raise
