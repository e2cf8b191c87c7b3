"""pytest-benchmark: the gradient estimators, lograd_fast (cpu) against the numpy baseline.

Groups (``--benchmark-group-by=group`` shows each side by side; the ratio of the
``numpy_baseline`` mean to the ``lograd_fast`` mean is the speed-up):

* ``streaming score function loo``: ``lf.score_function(d, f, n, baseline="loo")``,
  ``d`` a Normal with D = 8 atoms, ``n = 2**22`` draws, ``f = sum((x - 1)^2)``;
  ``backend="cpu"`` (the fused streaming kernel) vs ``backend="numpy"``.
* ``rloo``: ``lf.rloo(rewards (R, N), scores (R, N, D))`` with R = 1000 replicates,
  N = 1000 samples, D = 16: the Numba kernel vs ``backend="numpy"``.
* ``streaming estimators``: the other estimators on the streaming problem (cpu only),
  for the cost of antithetic pairs, the optimal baseline, pathwise and MVD.

Run: ``python -m pytest benchmarks/bench_estimators.py --benchmark-enable -q
--benchmark-group-by=group``.  ``LOGRAD_BENCH_QUICK=1`` shrinks every size.
"""

from __future__ import annotations

import os

import numba
import numpy as np
import pytest

import lograd_fast as lf
from lograd_fast.bench.cases import quadratic_reward

QUICK = os.environ.get("LOGRAD_BENCH_QUICK", "").strip().lower() not in ("", "0", "false", "no")
N_STREAM = 2**12 if QUICK else 2**22
D_STREAM = 8
R, N, D = (20, 50, 16) if QUICK else (1000, 1000, 16)

pytestmark = pytest.mark.benchmark


reward = quadratic_reward()


@numba.njit
def reward_elem(x):
    return (x - 1.0) ** 2


@numba.njit
def reward_elem_derivative(x):
    return 2.0 * (x - 1.0)


def _normal(backend: str):
    loc = np.linspace(-1.0, 1.0, D_STREAM)
    return lf.Normal(loc, np.full(D_STREAM, -0.3), backend=backend)


def _exact_loc_grad():
    return 2.0 * (np.linspace(-1.0, 1.0, D_STREAM) - 1.0)


@pytest.mark.parametrize("impl", ["lograd_fast", "numpy_baseline"])
def test_streaming_score_function_loo(benchmark, impl):
    d = _normal("cpu" if impl == "lograd_fast" else "numpy")
    lf.score_function(d, reward, 64, seed=0, baseline="loo")  # compile outside the timing
    lf.score_function(d, reward, 2**15, seed=0, baseline="loo")  # the parallel kernel too
    benchmark.group = f"streaming score function loo (Normal D={D_STREAM}, n={N_STREAM})"
    benchmark.extra_info.update(impl=impl, n=N_STREAM, D=D_STREAM)
    est = benchmark.pedantic(
        lambda: lf.score_function(d, reward, N_STREAM, seed=1, baseline="loo"),
        rounds=3, iterations=1)
    assert np.all(np.abs(est.grad["loc"] - _exact_loc_grad()) <= 6 * est.stderr["loc"])


@pytest.mark.parametrize("impl", ["lograd_fast", "numpy_baseline"])
def test_rloo(benchmark, impl):
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(R, N, D))
    rewards = (scores[..., :4] ** 2).sum(axis=-1)
    backend = "cpu" if impl == "lograd_fast" else "numpy"
    lf.rloo(rewards[:8], scores[:8], backend=backend)  # compile outside the timing
    lf.rloo(rewards, scores, backend=backend)
    benchmark.group = f"rloo (R={R}, N={N}, D={D})"
    benchmark.extra_info.update(impl=impl, R=R, N=N, D=D)
    est = benchmark.pedantic(lambda: lf.rloo(rewards, scores, backend=backend), rounds=5,
                             iterations=1)
    assert est.grad["score"].shape == (R, D)


ESTIMATORS = {
    "score optimal": lambda d, n: lf.score_function(d, reward, n, seed=1, baseline="optimal"),
    "antithetic loo": lambda d, n: lf.antithetic(d, reward, n // 2, seed=1, baseline="loo"),
    "pathwise": lambda d, n: lf.pathwise(d, reward_elem, reward_elem_derivative, n, seed=1),
    "mvd": lambda d, n: lf.measure_valued(d, reward, n // (3 * D_STREAM), seed=1),
}


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_streaming_estimators(benchmark, name):
    """Equal f budgets: antithetic gets n/2 pairs and MVD n/(3D) draws (1 + 3D calls)."""
    d = _normal("cpu")
    run = ESTIMATORS[name]
    run(d, 2**15)  # compile outside the timing
    benchmark.group = f"streaming estimators (Normal D={D_STREAM}, ~{N_STREAM} f calls)"
    benchmark.extra_info.update(estimator=name, n=N_STREAM)
    est = benchmark.pedantic(lambda: run(d, N_STREAM), rounds=3, iterations=1)
    assert np.all(np.abs(est.grad["loc"] - _exact_loc_grad()) <= 6 * est.stderr["loc"])
