"""Exponential: the support edge, pathwise draws, moments, float32, bad input."""

import numba
import numpy as np
import pytest
from scipy import stats

from lograd_fast._engine.dispatch import reparam1, supports
from lograd_fast._engine.rng import make_stream
from lograd_fast.families.exponential import Exponential, ExponentialParams, ExponentialScores


@numba.njit
def _reparam_all(p, key, x, dx, B):
    for a in range(x.shape[0]):
        reparam1(p, a % B, make_stream(key[0], key[1], key[2], key[3] + a), x, a, dx)


def _reparam(d, n, seed):
    n_atoms = n * d._B
    x = np.empty(n_atoms, d.dtype)
    dx = ExponentialScores(np.empty(n_atoms, d.dtype))
    _reparam_all(d._record, (np.uint64(seed), np.uint64(0), np.uint64(0), np.int64(0)), x, dx,
                 d._B)
    return x.reshape((n,) + d.full_shape), dx.log_rate.reshape((n,) + d.full_shape)


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_support_edge(backend):
    d = Exponential(np.array([0.5, -1.0]), backend=backend)
    rate = np.exp([0.5, -1.0])
    np.testing.assert_array_equal(d.log_prob(np.zeros(2)), [0.5, -1.0])
    np.testing.assert_array_equal(d.log_prob(np.array([-1e-300, -3.0])), -np.inf)
    np.testing.assert_array_equal(d.score(np.array([-2.0, -0.0]))["log_rate"], [0.0, 1.0])
    np.testing.assert_array_equal(d.log_prob(np.array([np.inf, np.inf])), -np.inf)
    np.testing.assert_allclose(d.score(np.array([1.0, 2.0]))["log_rate"],
                               1.0 - rate * [1.0, 2.0], rtol=1e-15)


def test_reparam_draws_the_samples_and_their_derivative():
    log_rate = np.array([-1.0, 0.0, 2.5])
    d = Exponential(log_rate)
    assert supports(ExponentialParams, "reparam1") and not supports(ExponentialParams, "reflect1")
    x, dx = _reparam(d, 200, seed=5)
    np.testing.assert_array_equal(x, d.sample(200, seed=5))
    h = 1e-6
    fd = (Exponential(log_rate + h).sample(200, seed=5)
          - Exponential(log_rate - h).sample(200, seed=5)) / (2 * h)
    np.testing.assert_allclose(dx, fd, rtol=1e-7, atol=1e-12)
    np.testing.assert_array_equal(dx, -x)


def test_float32_reparam():
    d = Exponential(np.array([0.3, -2.0], np.float32))
    x, dx = _reparam(d, 50, seed=1)
    assert x.dtype == dx.dtype == np.float32
    np.testing.assert_array_equal(x, d.sample(50, seed=1))


def test_moments_and_ks():
    log_rate = np.array([-3.0, 0.0, 4.0])
    n = 20_000
    x = Exponential(log_rate).sample(n, seed=8)
    mean = np.exp(-log_rate)
    np.testing.assert_allclose(Exponential(log_rate).mean, mean, rtol=1e-15)
    # SE of the mean: sd / sqrt(n) with sd = mean
    assert np.all(np.abs(x.mean(axis=0) - mean) <= 5 * mean / np.sqrt(n))
    for b in range(3):
        assert stats.kstest(x[:, b], stats.expon(scale=mean[b]).cdf).pvalue > 1e-6


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_kl_for_nearby_and_distant_rates(backend):
    d = 1e-7
    p = Exponential(np.array([0.0, 0.0, 5.0]), backend=backend)
    q = Exponential(np.array([-d, 3.0, -5.0]), backend=backend)
    # KL = log(lp/lq) + lq/lp - 1
    ref = [d * d / 2 - d**3 / 6, np.exp(3.0) - 1 - 3.0, np.exp(-10.0) - 1 + 10.0]
    np.testing.assert_allclose(p.kl(q), ref, rtol=1e-9)
    np.testing.assert_array_equal(p.kl(p), 0.0)


def test_float32_without_overflow():
    log_rate = np.array([-80.0, 80.0], np.float32)  # mean 5.5e34 and 1.8e-35
    d32, d64 = Exponential(log_rate), Exponential(log_rate.astype(np.float64))
    x, lp, s = d32.sample_and_score(100, seed=3)
    assert np.isfinite(x).all() and (x > 0).all() and np.isfinite(lp).all()
    # (float32 draws use 23-bit uniforms: other samples than float64's, same law)
    np.testing.assert_allclose(lp, d64.log_prob(x.astype(np.float64)), rtol=1e-6)
    assert np.isfinite(d32.mean).all()


def test_bad_input():
    with pytest.raises(ValueError, match="log_rate"):
        Exponential(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="log_rate"):
        Exponential(np.array([800.0]))  # rate overflows
    with pytest.raises(ValueError, match="x has shape"):
        Exponential(np.zeros(3)).log_prob(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        Exponential(np.zeros(2)).log_prob(np.array([1.0, np.nan]))
