"""Batched score-function estimates (``lf.rloo``, ``lf.batched_score_function``)."""

import math

import numpy as np
import pytest

import lograd_fast as lf

BASELINES = [None, 0.5, "mean", "loo", "optimal"]


def _data(R=(3, 4), N=9, tail=(5,), dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    r = rng.normal(size=R + (N,)) ** 2
    s = rng.normal(size=R + (N,) + tail).astype(dtype)
    return r, s


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("baseline", BASELINES)
def test_cpu_kernel_equals_numpy(baseline, dtype):
    r, s = _data(dtype=dtype)
    scores = {"a": s, "b": s[..., 0] * 2.0 + 1.0}
    cpu = lf.batched_score_function(r, scores, baseline=baseline, return_terms=True)
    ref = lf.batched_score_function(r, scores, baseline=baseline, return_terms=True,
                                    backend="numpy")
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    for k in scores:
        assert cpu.grad[k].shape == r.shape[:-1] + scores[k].shape[r.ndim:]
        assert cpu.grad[k].dtype == dtype and cpu.terms[k].dtype == dtype
        assert cpu.terms[k].shape == scores[k].shape
        for a, b in ((cpu.grad, ref.grad), (cpu.var, ref.var), (cpu.stderr, ref.stderr),
                     (cpu.terms, ref.terms)):
            np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=rtol)
        np.testing.assert_allclose(cpu.terms[k].mean(axis=r.ndim - 1), cpu.grad[k],
                                   rtol=rtol * 10, atol=rtol)


def test_large_batch_uses_the_parallel_kernel_and_agrees():
    r, s = _data(R=(64,), N=200, tail=(8,), seed=3)
    for baseline in ("loo", "optimal"):
        cpu = lf.batched_score_function(r, s, baseline=baseline)
        ref = lf.batched_score_function(r, s, baseline=baseline, backend="numpy")
        np.testing.assert_allclose(cpu.grad["score"], ref.grad["score"], rtol=1e-12)
        np.testing.assert_allclose(cpu.var["score"], ref.var["score"], rtol=1e-12)


@pytest.mark.parametrize("baseline", ["mean", "loo", "optimal"])
def test_rloo_equals_score_function_per_replicate(baseline):
    """Replicate q of the batch is score_function(d, rewards=r[q], x=x[q])."""
    d = lf.Normal(np.array([0.3, -0.1, 0.0]), np.array([0.0, 0.2, -0.4]))
    R, N = 5, 6
    x, _, s = d.sample_and_score(R * N, seed=4)
    r = np.cos(x).sum(axis=1)
    batched = lf.batched_score_function(r.reshape(R, N),
                                        {k: v.reshape(R, N, 3) for k, v in s.items()},
                                        baseline=baseline)
    if baseline == "loo":
        rl = lf.rloo(r.reshape(R, N), {k: v.reshape(R, N, 3) for k, v in s.items()})
        for k in s:
            np.testing.assert_array_equal(rl.grad[k], batched.grad[k])
    for q in range(R):
        one = lf.score_function(d, rewards=r[q * N:(q + 1) * N], x=x[q * N:(q + 1) * N],
                                baseline=baseline)
        for k in s:
            np.testing.assert_allclose(batched.grad[k][q], one.grad[k], rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(batched.var[k][q], one.var[k], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("N", [2, 4])
@pytest.mark.parametrize("baseline", ["loo", "optimal"])
def test_batched_baselines_are_unbiased_at_small_n(baseline, N):
    """x ~ N(1, 1), f = (x + 3)^2, score z: d/dmu E f = 8.  Averaged over 40000
    replicates the estimate is within 5 SE of 8; the in-sample "mean" is at 8 (N-1)/N."""
    R = 40_000
    rng = np.random.default_rng(N)
    z = rng.normal(size=(R, N))
    r = (1.0 + z + 3.0) ** 2
    est = lf.batched_score_function(r, z, baseline=baseline)
    g = est.grad["score"]
    se = g.std(ddof=1) / math.sqrt(R)
    assert abs(g.mean() - 8.0) <= 5 * se, (g.mean(), se)
    biased = lf.batched_score_function(r, z, baseline="mean").grad["score"]
    assert abs(biased.mean() - 8.0 * (N - 1) / N) <= 5 * biased.std(ddof=1) / math.sqrt(R)
    assert abs(biased.mean() - 8.0) > 5 * biased.std(ddof=1) / math.sqrt(R)


def test_unreplicated_input():
    r, s = _data(R=(), N=7, tail=())
    est = lf.rloo(r, s)
    assert est.grad["score"].shape == () and est.n == 7
    adv = r - (r.sum() - r) / 6
    np.testing.assert_allclose(est.grad["score"], np.mean(adv * s), rtol=1e-12)
    np.testing.assert_allclose(est.var["score"], np.var(adv * s, ddof=1), rtol=1e-12)


def test_bad_input():
    r, s = _data()
    with pytest.raises(ValueError, match="scores"):
        lf.rloo(r, s[:, :2])
    with pytest.raises(ValueError, match="at least 2"):
        lf.rloo(r[..., :1], s[..., :1, :])
    with pytest.raises(ValueError, match="NaN"):
        lf.rloo(np.full_like(r, np.nan), s)
    with pytest.raises(TypeError, match="float32 or float64"):
        lf.rloo(r, s.astype(np.int64))
    with pytest.raises(ValueError, match="backend"):
        lf.rloo(r, s, backend="gpu")
    with pytest.raises(ValueError, match="baseline"):
        lf.batched_score_function(r, s, baseline=lf.EMA())
    with pytest.raises(ValueError, match="baseline"):
        lf.batched_score_function(r, s, baseline="median")
    with pytest.raises(ValueError, match="empty"):
        lf.rloo(r, {})
    with pytest.raises(ValueError, match="n_folds"):
        lf.batched_score_function(r, s, baseline="optimal", n_folds=1)


# --------------------------------------------------------------------------- non-finite input
@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_are_a_clear_error(bad, backend):
    """Issue 15, item 15: rewards were checked, scores not (grad NaN, silently)."""
    rewards = np.arange(12.0).reshape(2, 6)
    scores = np.ones((2, 6, 3))
    scores[1, 4, 2] = bad
    with pytest.raises(ValueError, match=r"scores contain NaN or inf.*\(1, 4, 2\)"):
        lf.rloo(rewards, scores, backend=backend)
    with pytest.raises(ValueError, match=r"scores\['w'\] contain NaN or inf"):
        lf.batched_score_function(rewards, {"w": scores}, baseline="optimal",
                                  backend=backend)


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_overflowing_terms_of_a_huge_constant_baseline_are_a_clear_error(backend):
    rewards, scores = np.ones((2, 3)), np.full((2, 3, 1), 2.0)
    with pytest.raises(ValueError, match="overflow float64.*baseline"):
        lf.batched_score_function(rewards, scores, baseline=1e308, backend=backend)
    est = lf.batched_score_function(rewards, scores, baseline=1e300, backend=backend)
    np.testing.assert_allclose(est.grad["score"], -2e300)  # large but representable
