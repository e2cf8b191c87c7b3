"""pytest-benchmark: the RL calls of ``lograd_fast.bench.rl``, side by side.

Two groups of calls, one thread:

* the torch adapter inside RL code (``lograd_fast.torch`` against
  ``torch.distributions``): rollout (``no_grad``: build, ``sample``, ``log_prob``) and
  update (``log_prob`` of stored actions, ``entropy``, a PPO-style loss and its
  gradient), Categorical (K = 6) and Normal (6 action dims), at every ``B`` of
  ``lograd_fast.bench.rl.BATCHES`` -- the same call builders as ``lograd-fast bench``;
* the core's small policy step, Categorical logits ``(64, 6)``: ``lf.Categorical(logits)``
  and the fused ``sample_and_score(None, seed)`` (one pass over the logits), against
  torch's ``Categorical(logits=t)``, ``sample``, ``log_prob`` and the score
  ``one_hot(a) - probs``.

Run: ``python -m pytest benchmarks -k bench_rl --benchmark-enable
--benchmark-timer=time.process_time --benchmark-group-by=group`` (CPU time: other
processes on a shared machine do not inflate it).  The generated table of docs/rl.md
comes from ``python benchmarks/rl_latency.py``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import lograd_fast as lf

from ._common import QUICK

BATCHES = (4, 128) if QUICK else None  # None: every B of lograd_fast.bench.rl


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One torch and one Numba thread, as RL actors run small batches."""
    import numba

    try:
        import torch
    except ImportError:
        torch = None
    before = (torch.get_num_threads() if torch else None, numba.get_num_threads())
    if torch:
        torch.set_num_threads(1)
    numba.set_num_threads(1)
    yield
    if torch:
        torch.set_num_threads(before[0])
    numba.set_num_threads(before[1])


def _adapter_params():
    from lograd_fast.bench import rl

    batches = BATCHES or rl.BATCHES
    return [pytest.param(family, phase, B, impl, id=f"{family}-{phase}-B{B}-{impl}")
            for family, phase, B, impl in itertools.product(
                ("Categorical", "Normal"), ("rollout", "update"), batches,
                (rl.OURS, rl.THEIRS))]


@pytest.mark.parametrize(("family", "phase", "B", "impl"), _adapter_params())
def test_torch_adapter(benchmark, family, phase, B, impl):
    pytest.importorskip("torch")
    from lograd_fast.bench import rl

    _, libs = rl._libraries()
    call = rl.make_call(libs[impl], family, phase, B)
    call()  # first call outside the timing (kernel cache load, torch's lazy state)
    benchmark.group = f"torch adapter: {family} {phase}, B={B}"
    benchmark(call)


# ----------------------------------------------------------------------------- core step
SHAPE = (64, 6)
GROUP = "core policy step: Categorical logits (64, 6), construct + sample + log_prob + score"


@pytest.fixture(scope="module")
def logits() -> np.ndarray:
    return np.random.default_rng(0).normal(size=SHAPE)


def test_core_fused_step(benchmark, logits):
    seeds = itertools.count()
    call = lambda: lf.Categorical(logits).sample_and_score(None, seed=next(seeds))  # noqa: E731
    call()
    benchmark.group = GROUP
    benchmark(call)


def test_core_normal_step(benchmark):
    loc, log_scale = np.zeros(6), np.zeros(6)
    seeds = itertools.count()
    call = lambda: lf.Normal(loc, log_scale).sample_and_score(None, seed=next(seeds))  # noqa: E731
    call()
    benchmark.group = "core policy step: Normal of 6 actions, construct + sample_and_score"
    benchmark(call)


def test_torch_analytic_step(benchmark, logits):
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(logits)

    def call():
        with torch.no_grad():
            d = torch.distributions.Categorical(logits=t)
            a = d.sample()
            return d.log_prob(a), torch.nn.functional.one_hot(a, SHAPE[1]) - d.probs

    call()
    benchmark.group = GROUP
    benchmark(call)
