"""Laplace: the kink at loc, antithetic mirror, pathwise draws, KL, bad input."""

import numba
import numpy as np
import pytest
from scipy import integrate, stats

from lograd_fast._engine.dispatch import reflect1, reparam1, supports
from lograd_fast._engine.rng import make_stream
from lograd_fast.families.laplace import Laplace, LaplaceParams, LaplaceScores


@numba.njit
def _reparam_all(p, key, x, dx, B):
    for a in range(x.shape[0]):
        reparam1(p, a % B, make_stream(key[0], key[1], key[2], key[3] + a), x, a, dx)


@numba.njit
def _reflect_all(p, x, B):
    for a in range(x.shape[0]):
        reflect1(p, a % B, x, a)


def _reparam(d, n, seed):
    n_atoms = n * d._B
    x = np.empty(n_atoms, d.dtype)
    dx = LaplaceScores(np.empty(n_atoms, d.dtype), np.empty(n_atoms, d.dtype))
    _reparam_all(d._record, (np.uint64(seed), np.uint64(0), np.uint64(0), np.int64(0)), x, dx,
                 d._B)
    shape = (n,) + d.full_shape
    return x.reshape(shape), {k: v.reshape(shape) for k, v in dx._asdict().items()}


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_score_at_the_kink_is_zero(backend):
    loc = np.array([0.0, 2.5, -1e3])
    d = Laplace(loc, np.array([0.0, -1.0, 3.0]), backend=backend)
    s = d.score(loc)
    np.testing.assert_array_equal(s["loc"], 0.0)
    np.testing.assert_array_equal(s["log_scale"], -1.0)
    inv = np.exp(-np.array([0.0, -1.0, 3.0]))
    np.testing.assert_array_equal(d.score(np.nextafter(loc, np.inf))["loc"], inv)
    np.testing.assert_array_equal(d.score(np.nextafter(loc, -np.inf))["loc"], -inv)


def test_reflect_mirrors_about_loc():
    loc = np.array([0.0, 1.5, -3.0])
    d = Laplace(loc, np.array([0.0, -1.0, 0.5]))
    assert supports(LaplaceParams, "reflect1")
    x = d.sample(4000, seed=2)
    y = x.copy().reshape(-1)
    _reflect_all(d._record, y, d._B)
    y = y.reshape(x.shape)
    np.testing.assert_array_equal(y, 2.0 * loc - x)
    # the mirror image has the same law (symmetric family)
    for b in range(3):
        ref = stats.laplace(loc=loc[b], scale=d.scale[b])
        assert stats.kstest(y[:, b], ref.cdf).pvalue > 1e-6


def test_reparam_draws_the_samples_and_their_derivatives():
    loc, log_scale = np.array([-1.0, 0.0, 2.0]), np.array([0.2, -0.5, 1.0])
    d = Laplace(loc, log_scale)
    assert supports(LaplaceParams, "reparam1")
    x, dx = _reparam(d, 200, seed=5)
    np.testing.assert_array_equal(x, d.sample(200, seed=5))
    h = 1e-6
    for name in ("loc", "log_scale"):
        plus = {"loc": loc, "log_scale": log_scale}
        minus = dict(plus)
        plus[name] = plus[name] + h
        minus[name] = minus[name] - h
        fd = (Laplace(**plus).sample(200, seed=5) - Laplace(**minus).sample(200, seed=5)) / (2 * h)
        np.testing.assert_allclose(dx[name], fd, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(dx["log_scale"], x - loc, rtol=1e-12, atol=1e-15)


def test_float32_draws_are_symmetric_and_laplace():
    d = Laplace(np.array([0.0], np.float32), np.array([0.0], np.float32))
    x = d.sample(20_000, seed=4)
    assert x.dtype == np.float32
    assert stats.kstest(x[:, 0].astype(np.float64), stats.laplace().cdf).pvalue > 1e-6
    # P(x > 0) = 1/2: the sign is its own bit
    assert abs((x > 0).mean() - 0.5) <= 5 * 0.5 / np.sqrt(20_000)


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize(("p", "q"), [((0.0, 0.0), (1.0, 0.5)), ((2.0, -1.0), (-1.0, 1.0)),
                                      ((0.3, 0.2), (0.3 + 1e-7, 0.2 - 1e-7))])
def test_kl_against_numeric_integration(p, q, backend):
    dp = Laplace(np.array([p[0]]), np.array([p[1]]), backend=backend)
    dq = Laplace(np.array([q[0]]), np.array([q[1]]), backend=backend)
    sp = stats.laplace(p[0], np.exp(p[1]))
    sq = stats.laplace(q[0], np.exp(q[1]))

    def integrand(x):
        return sp.pdf(x) * (sp.logpdf(x) - sq.logpdf(x))

    pts = sorted({p[0], q[0]})
    lo, hi = pts[0] - 60 * np.exp(p[1]), pts[-1] + 60 * np.exp(p[1])
    edges = [lo, *pts, hi]
    ref = sum(integrate.quad(integrand, a, b, epsabs=1e-15, epsrel=1e-12, limit=200)[0]
              for a, b in zip(edges[:-1], edges[1:]) if b > a)
    np.testing.assert_allclose(dp.kl(dq), [ref], rtol=1e-7, atol=1e-15)
    np.testing.assert_array_equal(dp.kl(dp), 0.0)


def test_bad_input():
    with pytest.raises(ValueError, match="loc"):
        Laplace(np.array([np.nan]), 0.0)
    with pytest.raises(ValueError, match="log_scale"):
        Laplace(0.0, np.array([-1e3]))
    with pytest.raises(ValueError, match="do not broadcast"):
        Laplace(np.zeros(3), np.zeros(2))
