"""LogNormal: the support edge, pathwise draws, mean, float32, bad input."""

import numba
import numpy as np
import pytest
from scipy import stats

from lograd_fast._engine.dispatch import reparam1, supports
from lograd_fast._engine.rng import make_stream
from lograd_fast.families.lognormal import LogNormal, LogNormalParams, LogNormalScores


@numba.njit
def _reparam_all(p, key, x, dx, B):
    for a in range(x.shape[0]):
        reparam1(p, a % B, make_stream(key[0], key[1], key[2], key[3] + a), x, a, dx)


def _reparam(d, n, seed):
    n_atoms = n * d._B
    x = np.empty(n_atoms, d.dtype)
    dx = LogNormalScores(np.empty(n_atoms, d.dtype), np.empty(n_atoms, d.dtype))
    _reparam_all(d._record, (np.uint64(seed), np.uint64(0), np.uint64(0), np.int64(0)), x, dx,
                 d._B)
    shape = (n,) + d.full_shape
    return x.reshape(shape), {k: v.reshape(shape) for k, v in dx._asdict().items()}


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_support_edge(backend):
    d = LogNormal(np.array([0.0, 1.0, -2.0]), np.array([0.0, -1.0, 0.5]), backend=backend)
    x = np.array([[0.0, -1.0, -np.inf], [np.inf, 1e-300, 5e-324]])
    lp = d.log_prob(x)
    np.testing.assert_array_equal(lp[0], -np.inf)
    assert lp[1, 0] == -np.inf and np.isfinite(lp[1, 1:]).all()
    s = d.score(x)
    for k in s:
        np.testing.assert_array_equal(s[k][0], 0.0)
        assert not np.isnan(s[k]).any()
    ref = stats.lognorm(s=np.exp(-1.0), scale=np.exp(1.0)).logpdf(1e-300)
    assert lp[1, 1] == pytest.approx(ref, rel=1e-13)


def test_reparam_draws_the_samples_and_their_derivatives():
    loc, log_scale = np.array([-1.0, 0.0, 2.0]), np.array([0.2, -0.5, -2.0])
    d = LogNormal(loc, log_scale)
    assert supports(LogNormalParams, "reparam1") and not supports(LogNormalParams, "reflect1")
    x, dx = _reparam(d, 200, seed=5)
    np.testing.assert_array_equal(x, d.sample(200, seed=5))
    h = 1e-6
    for name in ("loc", "log_scale"):
        plus = {"loc": loc, "log_scale": log_scale}
        minus = dict(plus)
        plus[name] = plus[name] + h
        minus[name] = minus[name] - h
        fd = (LogNormal(**plus).sample(200, seed=5) - LogNormal(**minus).sample(200, seed=5)) / (
            2 * h)
        np.testing.assert_allclose(dx[name], fd, rtol=1e-6, atol=1e-10)
    np.testing.assert_array_equal(dx["loc"], x)


def test_mean_and_median_against_samples():
    loc, log_scale = np.array([0.0, 2.0, -1.0]), np.array([-1.0, -2.0, 0.0])
    d = LogNormal(loc, log_scale)
    sigma = np.exp(log_scale)
    np.testing.assert_allclose(d.mean, np.exp(loc + sigma**2 / 2), rtol=1e-15)
    np.testing.assert_allclose(d.median, np.exp(loc), rtol=1e-15)
    n = 20_000
    x = d.sample(n, seed=9)
    sd = np.sqrt((np.exp(sigma**2) - 1) * np.exp(2 * loc + sigma**2))
    assert np.all(np.abs(x.mean(axis=0) - d.mean) <= 5 * sd / np.sqrt(n))


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_entropy_and_kl_against_numeric_integration(backend):
    from scipy import integrate

    p = LogNormal(np.array([0.7]), np.array([-0.3]), backend=backend)
    q = LogNormal(np.array([0.2]), np.array([0.1]), backend=backend)
    sp = stats.lognorm(s=np.exp(-0.3), scale=np.exp(0.7))
    sq = stats.lognorm(s=np.exp(0.1), scale=np.exp(0.2))
    kl = integrate.quad(lambda x: sp.pdf(x) * (sp.logpdf(x) - sq.logpdf(x)), 0, np.inf,
                        epsabs=1e-13, epsrel=1e-12, limit=200)[0]
    np.testing.assert_allclose(p.kl(q), [kl], rtol=1e-10)
    np.testing.assert_allclose(p.entropy(), [sp.entropy()], rtol=1e-13)


def test_float32_without_overflow():
    loc = np.array([80.0, -80.0], np.float32)  # exp(loc) near the float32 limits
    log_scale = np.array([-4.0, -4.0], np.float32)
    d32 = LogNormal(loc, log_scale)
    d64 = LogNormal(loc.astype(np.float64), log_scale.astype(np.float64))
    x, lp, s = d32.sample_and_score(100, seed=3)
    assert x.dtype == np.float32 and np.isfinite(x).all() and (x > 0).all()
    # (float32 draws use 23-bit uniforms: other samples than float64's, same law)
    np.testing.assert_allclose(lp, d64.log_prob(x.astype(np.float64)), rtol=1e-6)
    assert np.isfinite(d32.log_prob(x)).all() and np.isfinite(d32.mean).all()


def test_bad_input():
    with pytest.raises(ValueError, match="loc"):
        LogNormal(np.array([0.0, np.inf]), 0.0)
    with pytest.raises(ValueError, match="log_scale"):
        LogNormal(0.0, np.array([np.nan]))
    with pytest.raises(ValueError, match="log_scale"):
        LogNormal(0.0, -800.0)
    with pytest.raises(ValueError, match="do not broadcast"):
        LogNormal(np.zeros(3), np.zeros(2))
