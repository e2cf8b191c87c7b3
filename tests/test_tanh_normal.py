"""TanhNormal: the bounds +-1, clipping, entropy and mean by quadrature, mirror, pathwise."""

import numba
import numpy as np
import pytest
from cases.tanh_normal import _TanhNormal
from scipy import stats

from lograd_fast._engine import maths as m
from lograd_fast._engine.dispatch import reflect1, reparam1, supports
from lograd_fast._engine.rng import make_stream
from lograd_fast.families.normal import Normal
from lograd_fast.families.tanh_normal import TanhNormal, TanhNormalParams, TanhNormalScores

BELOW_ONE = np.nextafter(1.0, 0.0)
BELOW_ONE_F32 = np.nextafter(np.float32(1.0), np.float32(0.0))


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
    dx = TanhNormalScores(np.empty(n_atoms, d.dtype), np.empty(n_atoms, d.dtype))
    _reparam_all(d._record, (np.uint64(seed), np.uint64(0), np.uint64(0), np.int64(0)), x, dx,
                 d._B)
    shape = (n,) + d.full_shape
    return x.reshape(shape), {k: v.reshape(shape) for k, v in dx._asdict().items()}


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_log_prob_at_and_near_the_bounds(backend):
    d = TanhNormal(np.array([0.0, 3.0, -2.0]), np.array([0.0, 1.0, 0.5]), backend=backend)
    at = np.array([[1.0, -1.0, 1.0], [1.5, -7.0, np.inf], [-np.inf, 1.0 + 1e-16, -1.0]])
    lp = d.log_prob(at)
    np.testing.assert_array_equal(lp, -np.inf)
    for s in d.score(at).values():
        np.testing.assert_array_equal(s, 0.0)
    near = np.array([[BELOW_ONE, -BELOW_ONE, BELOW_ONE], [1 - 1e-10, -(1 - 1e-10), 0.999],
                     [-BELOW_ONE, BELOW_ONE, -0.5]])
    lp = d.log_prob(near)
    assert np.isfinite(lp).all()
    ref = np.array([[_TanhNormal(*pb).logpdf(v) for v, pb in zip(row, [(0.0, 0.0), (3.0, 1.0),
                                                                        (-2.0, 0.5)])]
                    for row in near])
    np.testing.assert_allclose(lp, ref, rtol=1e-13)
    for s in d.score(near).values():
        assert np.isfinite(s).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_samples_are_never_exactly_one(backend, dtype):
    d = TanhNormal(np.array([30.0, -30.0, 0.0, 9.0], dtype), np.array([0.0, 0.0, 3.0, -1.0], dtype),
                   backend=backend)
    x, lp, s = d.sample_and_score(300, seed=6)
    bound = BELOW_ONE_F32 if dtype == np.float32 else BELOW_ONE
    assert x.dtype == dtype and (np.abs(x) <= bound).all() and (np.abs(x) < 1.0).all()
    np.testing.assert_array_equal(x[:, 0], bound)
    np.testing.assert_array_equal(x[:, 1], -bound)
    assert (np.abs(x[:, 2]) == bound).any()  # scale e^3: a good share of draws is clipped
    assert np.isfinite(lp).all() and all(np.isfinite(v).all() for v in s.values())
    # the fused pass returns the log-prob and scores of the stored (clipped) sample
    np.testing.assert_array_equal(lp, d.log_prob(x))
    for k, v in d.score(x).items():
        np.testing.assert_array_equal(s[k], v)


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_entropy_against_adaptive_quadrature(backend):
    loc = np.array([0.0, 0.3, -5.0, 2.0, 20.0, 0.0, 1.0, -0.5, 3.0, 0.0, 7.0])
    scale = np.array([1e-3, 0.1, 0.5, 0.59, 0.6, 0.61, 1.0, 3.0, 30.0, 1e3, 1e-8])
    d = TanhNormal(loc, np.log(scale), backend=backend)
    ref = np.array([_TanhNormal(a, np.log(b)).entropy() for a, b in zip(loc, scale)])
    np.testing.assert_allclose(d.entropy(), ref, rtol=1e-12, atol=1e-12)


def test_mean_against_adaptive_quadrature_and_samples():
    loc = np.array([0.0, 0.3, -5.0, 2.0, 20.0, 1.0, -0.5, 3.0, 0.0])
    scale = np.array([1e-3, 0.1, 0.5, 0.59, 0.6, 1.0, 3.0, 30.0, 1e3])
    d = TanhNormal(loc, np.log(scale))
    ref = np.array([_TanhNormal(a, np.log(b)).mean() for a, b in zip(loc, scale)])
    np.testing.assert_allclose(d.mean, ref, rtol=1e-12, atol=1e-13)
    n = 20_000
    x = d.sample(n, seed=12)
    se = x.std(axis=0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(x.mean(axis=0) - d.mean) <= 5 * se + 1e-15)


def test_kl_is_the_kl_of_the_pre_squash_normals():
    loc, log_scale = np.array([0.0, 1.0, -3.0]), np.array([0.0, -1.0, 2.0])
    loc_q, log_scale_q = np.array([0.5, 1.0, 0.0]), np.array([0.3, -1.0, 0.0])
    got = TanhNormal(loc, log_scale).kl(TanhNormal(loc_q, log_scale_q))
    np.testing.assert_array_equal(got, Normal(loc, log_scale).kl(Normal(loc_q, log_scale_q)))


def test_reflect_mirrors_u_about_loc():
    loc = np.array([0.0, 0.7, -1.5])
    d = TanhNormal(loc, np.array([0.0, -1.0, 0.5]))
    assert supports(TanhNormalParams, "reflect1")
    x = d.sample(4000, seed=2)
    y = x.reshape(-1).copy()
    _reflect_all(d._record, y, d._B)
    y = y.reshape(x.shape)
    np.testing.assert_allclose(np.arctanh(y), 2.0 * loc - np.arctanh(x), rtol=1e-9, atol=1e-9)
    for b in range(3):  # the mirror image has the same law
        assert stats.kstest(y[:, b], _TanhNormal(loc[b], d._record.log_scale[b]).cdf).pvalue > 1e-6
    bounds = np.array([1.0, -1.0, BELOW_ONE])
    _reflect_all(d._record, bounds, d._B)
    np.testing.assert_array_equal(bounds[:2], [-1.0, 1.0])
    assert -1.0 < bounds[2] < 0.0


def test_reparam_draws_the_samples_and_their_derivatives():
    loc, log_scale = np.array([-1.0, 0.0, 2.0]), np.array([0.2, -0.5, -1.0])
    d = TanhNormal(loc, log_scale)
    assert supports(TanhNormalParams, "reparam1")
    x, dx = _reparam(d, 200, seed=5)
    np.testing.assert_array_equal(x, d.sample(200, seed=5))
    h = 1e-6
    for name in ("loc", "log_scale"):
        plus = {"loc": loc, "log_scale": log_scale}
        minus = dict(plus)
        plus[name] = plus[name] + h
        minus[name] = minus[name] - h
        fd = (TanhNormal(**plus).sample(200, seed=5)
              - TanhNormal(**minus).sample(200, seed=5)) / (2 * h)
        np.testing.assert_allclose(dx[name], fd, rtol=1e-6, atol=1e-9)


def test_float32_without_overflow():
    loc = np.array([0.0, 12.0, -3.0], np.float32)
    log_scale = np.array([3.0, 0.0, -10.0], np.float32)
    d32 = TanhNormal(loc, log_scale)
    d64 = TanhNormal(loc.astype(np.float64), log_scale.astype(np.float64))
    x, lp, s = d32.sample_and_score(200, seed=3)
    assert lp.dtype == np.float32 and np.isfinite(lp).all()
    np.testing.assert_allclose(lp, d64.log_prob(x.astype(np.float64)), rtol=1e-6)
    assert np.isfinite(d32.entropy()).all() and np.isfinite(d32.mean).all()


def test_bad_input():
    with pytest.raises(ValueError, match="loc"):
        TanhNormal(np.array([np.inf]), 0.0)
    with pytest.raises(ValueError, match="log_scale"):
        TanhNormal(0.0, np.array([np.nan]))
    with pytest.raises(ValueError, match="log_scale"):
        TanhNormal(0.0, 1e3)
    with pytest.raises(ValueError, match="do not broadcast"):
        TanhNormal(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="NaN"):
        TanhNormal(0.0, 0.0).log_prob(np.array(np.nan))


# --------------------------------------------------------------------------- tanh within 1 ulp
@numba.njit
def _tanh_abs_compiled(a):
    out = np.empty_like(a)
    for i in range(a.shape[0]):
        out[i] = m.tanh_abs(a[i])
    return out


def _ulps_from_correctly_rounded(got, a):
    import mpmath

    mpmath.mp.dps = 40
    ref = np.array([float(mpmath.tanh(mpmath.mpf(float(v)))) for v in a])
    return np.abs(got.view(np.int64) - ref.view(np.int64))


def test_tanh_is_within_one_ulp_of_the_correctly_rounded_value():
    """Issue 15, item 4: the sampler's tanh (maths.tanh_abs) on every target is at most
    1 ulp from mpmath's correctly rounded tanh (the old t/(t+2) was up to 2.4 ulp off
    on 1019 of these 4001 points in [0, 20])."""
    rng = np.random.default_rng(4)
    a = np.concatenate([np.linspace(0.0, 20.0, 4001), np.linspace(0.0, 1.0, 4001),
                        rng.uniform(0.0, 3.0, 20_000), np.geomspace(1e-300, 1.0, 1001),
                        [0.55, np.nextafter(0.55, 0.0), 22.0, 40.0, 800.0]])
    for got in (_tanh_abs_compiled(a), m.tanh_abs(a), np.array([m.tanh_abs(float(v))
                                                                 for v in a[::7]])):
        where = a if got.size == a.size else a[::7]
        ulps = _ulps_from_correctly_rounded(got, where)
        assert ulps.max() <= 1, (where[np.argmax(ulps)], ulps.max())


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_fraction_of_draws_on_the_clip_value_is_exact(backend):
    """A draw lands on the clip value 1 - 2**-53 exactly when the correctly rounded
    tanh(u) does, i.e. when |u| >= atanh(1 - 1.5 * 2**-53): that probability (mpmath)
    within 5 standard errors at sigma = e**2 (the old tanh gave 0.70% for 0.65%)."""
    import mpmath

    mpmath.mp.dps = 40
    loc, sigma, n = 3.0, np.exp(2.0), 2**20
    u_star = mpmath.atanh(1 - mpmath.mpf(1.5) * mpmath.mpf(2) ** -53)
    p = float(mpmath.ncdf(-(u_star - loc) / sigma) + mpmath.ncdf(-(u_star + loc) / sigma))
    x = TanhNormal(loc, 2.0, backend=backend).sample(n, seed=11)
    frac = np.mean(np.abs(x) == BELOW_ONE)
    assert abs(frac - p) <= 5 * np.sqrt(p * (1 - p) / n), (frac, p)
