"""pytest-benchmark: every family of the case table, every operation, side by side.

Implementations (one benchmark group per family, operation and dtype):

* ``lograd_fast``     the CPU kernels (Numba, parallel);
* ``numpy``           idiomatic numpy: ``numpy.random.Generator`` and vectorised formulas
  (the headline comparator: ``test_speedup_vs_idiomatic_numpy`` records the ratio);
* ``numpy_baseline``  ``backend="numpy"``: the same algorithm vectorised, drawing the same
  numbers (the reproducibility reference);
* ``torch`` / ``torch_autograd``  torch.distributions with closed-form scores / scores by
  autograd (per-draw parameter copies), when torch is installed;
* ``jax``             ``jax.jit`` of the same job, when JAX is installed.

Run: ``python -m pytest benchmarks/bench_distributions.py --benchmark-enable
--benchmark-group-by=group``.
"""

from __future__ import annotations

import numpy as np
import pytest

from ._common import (
    DTYPES,
    FAMILIES,
    OPS,
    QUICK,
    SPEEDUPS,
    draws_for,
    make_dist,
    make_inputs,
    min_times,
    op_call,
    size,
)
from ._competitors import IMPLS, WRITTEN_FOR, competitor

ATOMS = size(2**20, 2**10)
# quick (CI): float64 only, which halves the kernels compiled; the tests cover float32
GRID_DTYPES = DTYPES[:1] if QUICK else DTYPES


def _grid():
    for family in FAMILIES:
        for op in OPS:
            for impl in IMPLS if family in WRITTEN_FOR else IMPLS[:2]:
                if impl != "torch_autograd" or op in ("score", "sample_and_score"):
                    yield family, op, impl


@pytest.mark.parametrize("dtype", GRID_DTYPES)
@pytest.mark.parametrize("family,op,impl", list(_grid()))
def test_op(benchmark, family, impl, op, dtype):
    dist = make_dist(family, "cpu", dtype)
    n = draws_for(dist, ATOMS)
    x = dist.sample(n, seed=0)
    if impl in ("lograd_fast", "numpy_baseline"):
        d = dist if impl == "lograd_fast" else make_dist(family, "numpy", dtype)
        if op == "sample":
            call = lambda: d.sample(n, seed=1)  # noqa: E731
        elif op == "sample_and_score":
            call = lambda: d.sample_and_score(n, seed=1)  # noqa: E731
        elif op == "log_prob":
            call = lambda: d.log_prob(x)  # noqa: E731
        else:
            call = lambda: d.score(x)  # noqa: E731
    else:
        params, kwargs = make_inputs(family, dtype)
        call = competitor(family, impl, op, params, kwargs, n, x)
        if call is None:
            pytest.skip(f"no {impl} version of {family}.{op} here")
    call()  # compile / trace outside the timing
    benchmark.group = f"{family}.{op} {dtype} ({ATOMS} atoms)"
    benchmark.extra_info.update(family=family, op=op, impl=impl, dtype=dtype, n=n)
    result = benchmark(call)
    assert result is not None


@pytest.mark.parametrize("family", FAMILIES)
def test_sample_and_score_out(benchmark, family):
    """The fused pass into preallocated buffers (``out=``): no allocation, no page faults."""
    dist = make_dist(family)
    n = draws_for(dist, ATOMS)
    x, lp, s = dist.sample_and_score(n, seed=0)
    out = (np.empty_like(x), np.empty_like(lp), {k: np.empty_like(v) for k, v in s.items()})
    dist.sample_and_score(n, seed=1, out=out)
    benchmark.group = f"{family}.sample_and_score float64 ({ATOMS} atoms)"
    benchmark.extra_info.update(family=family, impl="lograd_fast out=", n=n)
    got = benchmark(lambda: dist.sample_and_score(n, seed=1, out=out))
    np.testing.assert_array_equal(got[0], dist.sample(n, seed=1))


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("family", [f for f in FAMILIES if f in WRITTEN_FOR])
def test_speedup_vs_idiomatic_numpy(benchmark, family, op):
    """lograd_fast's time (pytest-benchmark), and its speed-up over idiomatic numpy timed
    side by side (min of 3 round-robin rounds) in ``extra_info`` and the run's summary."""
    dist = make_dist(family)
    n = draws_for(dist, ATOMS)
    x = dist.sample(n, seed=0)
    params, kwargs = make_inputs(family)
    ours = op_call(dist, op, n, x=x)
    numpy = competitor(family, "numpy", op, params, kwargs, n, x)
    t = min_times({"lograd_fast": ours, "numpy": numpy}, 3)
    ratio = t["numpy"] / t["lograd_fast"]
    SPEEDUPS[f"{family}.{op} float64 ({ATOMS} atoms)"] = ratio
    benchmark.group = f"speed-up over idiomatic numpy ({ATOMS} atoms)"
    benchmark.extra_info.update(family=family, op=op, speedup_vs_numpy=ratio)
    assert benchmark(ours) is not None
