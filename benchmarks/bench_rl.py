"""pytest-benchmark: the latency of one policy step at RL batch sizes.

One *call* is what an actor does every environment step: build the action
distribution from fresh network outputs, sample an action, and evaluate its
log-probability and score.  Categorical logits ``(64, 6)`` (64 environments, 6
actions), float64:

* ``lograd_fast``          ``lf.Categorical(logits)``, ``sample``, ``log_prob``, ``score``;
* ``lograd_fast_fused``    ``lf.Categorical(logits).sample_and_score(None, seed)``;
* ``lograd_fast_prebuilt`` ``sample``, ``log_prob``, ``score`` on an existing distribution
  (the per-call cost without construction);
* ``numpy_baseline``       the same as ``lograd_fast`` with ``backend="numpy"``;
* ``torch``                ``torch.distributions.Categorical(logits=t)``, ``sample``,
  ``log_prob`` and the closed-form score ``one_hot(a) - probs``;
* ``torch_novalidate``     the same with ``validate_args=False``;
* ``torch_autograd``       ``sample``, ``log_prob`` and the score by ``torch.autograd.grad``;
* ``lograd_fast_torch``    the adapter: ``lft.Categorical(logits=t)``, ``sample``,
  ``log_prob`` and its backward (the score).

Run: ``python -m pytest benchmarks -k bench_rl --benchmark-enable
--benchmark-columns=min,median,mean,rounds`` (add ``--benchmark-timer=time.process_time``
on a shared machine: CPU time is not inflated by other processes).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import lograd_fast as lf

SHAPE = (64, 6)
GROUP = "policy step: Categorical logits (64, 6), sample + log_prob + score"


@pytest.fixture(scope="module")
def logits() -> np.ndarray:
    return np.random.default_rng(0).normal(size=SHAPE)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """One torch intra-op thread, as RL actors run small batches (and as lograd_fast runs
    calls this small): no thread pool in the measurement."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _run(benchmark, call) -> None:
    call()  # compile / warm up outside the timing
    benchmark.group = GROUP
    benchmark(call)


def test_lograd_fast(benchmark, logits):
    seeds = itertools.count()

    def call():
        d = lf.Categorical(logits)
        x = d.sample(seed=next(seeds))
        return d.log_prob(x), d.score(x)

    _run(benchmark, call)


def test_lograd_fast_fused(benchmark, logits):
    seeds = itertools.count()
    _run(benchmark, lambda: lf.Categorical(logits).sample_and_score(None, seed=next(seeds)))


def test_lograd_fast_prebuilt(benchmark, logits):
    d = lf.Categorical(logits)
    seeds = itertools.count()

    def call():
        x = d.sample(seed=next(seeds))
        return d.log_prob(x), d.score(x)

    _run(benchmark, call)


def test_numpy_baseline(benchmark, logits):
    seeds = itertools.count()

    def call():
        d = lf.Categorical(logits, backend="numpy")
        x = d.sample(seed=next(seeds))
        return d.log_prob(x), d.score(x)

    _run(benchmark, call)


@pytest.mark.parametrize("validate", [True, False], ids=["torch", "torch_novalidate"])
def test_torch(benchmark, logits, validate):
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(logits)

    def call():
        d = torch.distributions.Categorical(logits=t, validate_args=validate)
        a = d.sample()
        score = torch.nn.functional.one_hot(a, SHAPE[1]) - d.probs
        return d.log_prob(a), score

    with torch.no_grad():
        _run(benchmark, call)


def test_torch_autograd(benchmark, logits):
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(logits).requires_grad_()

    def call():
        d = torch.distributions.Categorical(logits=t)
        a = d.sample()
        lp = d.log_prob(a)
        (score,) = torch.autograd.grad(lp.sum(), t)  # rows are independent: per-row scores
        return lp, score

    _run(benchmark, call)


def test_lograd_fast_torch(benchmark, logits):
    torch = pytest.importorskip("torch")
    lft = pytest.importorskip("lograd_fast.torch")
    t = torch.from_numpy(logits).requires_grad_()

    def call():
        d = lft.Categorical(logits=t)
        a = d.sample()
        lp = d.log_prob(a)
        (score,) = torch.autograd.grad(lp.sum(), t)
        return lp, score

    _run(benchmark, call)


# ----------------------------------------------------------------------------- training batch
TRAIN_SHAPE = (4096, 6)
TRAIN_GROUP = "training step: Categorical logits (4096, 6), log_prob + backward"


@pytest.mark.parametrize("impl", ["lograd_fast_torch", "torch"])
def test_training_batch(benchmark, impl):
    """The learner's side: log-probs of a batch of stored actions and their gradient."""
    torch = pytest.importorskip("torch")
    lft = pytest.importorskip("lograd_fast.torch")
    rng = np.random.default_rng(1)
    logits = torch.from_numpy(rng.normal(size=TRAIN_SHAPE)).requires_grad_()
    actions = torch.from_numpy(rng.integers(0, TRAIN_SHAPE[1], TRAIN_SHAPE[0]))
    weights = torch.from_numpy(rng.normal(size=TRAIN_SHAPE[0]))
    make = lft.Categorical if impl == "lograd_fast_torch" else torch.distributions.Categorical

    def call():
        lp = make(logits=logits).log_prob(actions)
        (grad,) = torch.autograd.grad(-(weights * lp).mean(), logits)
        return grad

    call()
    benchmark.group = TRAIN_GROUP
    benchmark(call)
