"""pytest-benchmark: a variance sweep, lograd_fast (Numba) vs the numpy backend, local vs Dask.

The sweep: ``x ~ N(mu, 1)``, ``f = (x - k)^2``, a grid of ``mu`` x ``k`` in {-3, 1} x
score function with baselines none and loo: ``CELLS`` cells of ``N`` draws, one
replicate each, end to end (``lf.sweep`` in memory: tasks, table, exact values).

* group ``sweep-backend``: ``backend="cpu"`` (Numba, all threads) vs ``backend="numpy"``
  (the pure-numpy baseline) -- target ratio >= 10x;
* group ``sweep-scheduler``: the local scheduler vs a Dask LocalCluster of 2 worker
  processes x 1 thread on 127.0.0.1 (started once, warmed up, outside the timing) --
  target: Dask within 1.3x of local.

Sizes: the full sweep is ``CELLS = 1000`` cells x ``N = 10**5`` draws; the numpy
baseline of it takes minutes, so ``LOGRAD_BENCH_SWEEP_CELLS`` scales the cell count
down (the per-draw ratios do not depend on it); ``LOGRAD_BENCH_QUICK=1`` shrinks it.

Run: ``python -m pytest benchmarks -k bench_sweep --benchmark-enable -q`` (naming the
file also works but collects it twice, see ``benchmarks/conftest.py``); the ratios of
the best of ``ROUNDS`` rounds (1 for the numpy baseline) are printed at the end and
stored in the benchmarks' ``extra_info``.  From a script, a Dask ``LocalCluster``
needs the ``if __name__ == "__main__":`` guard (worker processes are spawned).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import lograd_fast as lf

from ._common import QUICK, size

CELLS = int(os.environ.get("LOGRAD_BENCH_SWEEP_CELLS", size(1000, 8)))
N = size(10**5, 10**4)
ROUNDS = int(os.environ.get("LOGRAD_BENCH_SWEEP_ROUNDS", 1 if QUICK else 3))  # min is kept
TIMES: dict[str, float] = {}


def _spec(backend: str, cells: int = CELLS) -> dict:
    points = max(1, cells // 4)  # 2 k x 2 baselines per mu
    return {"seed": 7, "replicates": 1, "n": N, "estimators": ["score"],
            "baselines": ["none", "loo"], "backend": backend,
            "distribution": {"family": "normal",
                             "loc": {"start": -3.0, "stop": 3.0, "num": points}},
            "f": {"name": "(x-k)^2", "k": [-3.0, 1.0]}}


def _warm_spec(spec: dict) -> dict:
    return {**spec, "distribution": {"family": "normal", "loc": 0.0}}


def _run(benchmark, name: str, spec: dict, rounds: int = ROUNDS, **kwargs):
    lf.sweep(_warm_spec(spec), quiet=True, plot=False, **kwargs)  # compile / load kernels
    table = benchmark.pedantic(lambda: lf.sweep(spec, quiet=True, plot=False, **kwargs),
                               rounds=rounds, iterations=1)
    TIMES[name] = benchmark.stats.stats.min if benchmark.stats else float("nan")
    samples = int((table["n"] * table["replicates"]).sum() // table["wrt"].nunique())
    benchmark.extra_info.update({"cells": len(table) // table["wrt"].nunique(),
                                 "samples": samples})
    assert np.isfinite(table["var"]).all()
    return table


@pytest.mark.benchmark(group="sweep-backend")
def test_sweep_cpu(benchmark):
    _run(benchmark, "cpu", _spec("cpu"))


@pytest.mark.benchmark(group="sweep-backend")
def test_sweep_numpy_baseline(benchmark):
    _run(benchmark, "numpy", _spec("numpy"), rounds=1)  # minutes: one round
    if "cpu" in TIMES:
        benchmark.extra_info["cpu_speedup"] = TIMES["numpy"] / TIMES["cpu"]


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    import dask

    from lograd_fast.sweep._dask import LOCAL_CLUSTER_CONFIG, host_cores

    # what `lograd-fast sweep --scheduler dask --workers 2` starts: Numba pools of
    # cores // 2 threads (the two workers do not oversubscribe the cores), and no
    # statistical profiler on the workers (see lograd_fast/sweep/_dask.py)
    env = {"NUMBA_NUM_THREADS": str(max(1, host_cores() // 2))}
    with dask.config.set(LOCAL_CLUSTER_CONFIG), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     host="127.0.0.1", dashboard_address=None,
                                     env=env) as cluster, \
            distributed.Client(cluster) as client:
        # every worker process compiles f and loads the kernels before any timing
        client.run(lf.sweep, _warm_spec(_spec("cpu")), quiet=True, plot=False)
        yield client


@pytest.mark.benchmark(group="sweep-scheduler")
def test_sweep_local_scheduler(benchmark):
    _run(benchmark, "local", _spec("cpu"))


@pytest.mark.benchmark(group="sweep-scheduler")
def test_sweep_dask_2_workers(benchmark, dask_cluster):
    _run(benchmark, "dask", _spec("cpu"), dask=dask_cluster)
    if "local" in TIMES:
        benchmark.extra_info["dask_over_local"] = TIMES["dask"] / TIMES["local"]


def test_report_ratios(capsys):
    """Prints the ratios of the timed runs above (nothing to report when disabled)."""
    lines = [f"sweep of {CELLS} cells x {N} draws{' (quick)' if QUICK else ''}:"]
    if not all(np.isfinite(v) for v in TIMES.values()):
        lines.append("  no timings (benchmarks disabled: pass --benchmark-enable)")
        TIMES.clear()
    if {"cpu", "numpy"} <= TIMES.keys():
        lines.append(f"  numpy baseline / lograd_fast cpu = {TIMES['numpy'] / TIMES['cpu']:.1f}x"
                     f"  ({TIMES['numpy']:.2f} s / {TIMES['cpu']:.2f} s)")
    if {"local", "dask"} <= TIMES.keys():
        lines.append(f"  dask (2 workers) / local = {TIMES['dask'] / TIMES['local']:.2f}x"
                     f"  ({TIMES['dask']:.2f} s / {TIMES['local']:.2f} s)")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
