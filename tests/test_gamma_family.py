"""Gamma, Beta, Dirichlet and Student t: the edges the generic table cannot reach.

The generic checks (scipy log-pdfs and entropies, finite-difference scores, KS,
Monte-Carlo KL, backends, float32, shapes) run on the cases in tests/cases/; here:

* the log-space Gamma draw itself (``_rng.std_gamma_log``): KS of ``log G`` against
  the exact CDF down to ``alpha = 1e-3`` (where ``G`` underflows), compiled == numpy;
* parameters down to 1e-3 and up to 1e4: no NaN, samples in the support, moments
  against closed forms (scipy's) within 5 standard errors, and the fused scores,
  which use the exact log-space draw, with mean zero within 5 standard errors;
* support boundaries (Beta and Gamma at 0 and 1, Dirichlet rows with zeros,
  Student t at huge |x|) against scipy / mpmath: finite or +-inf, never NaN;
* float32 where the squared standardised value overflows float32 but not float64;
* bad input, Student t's KL, the CUDA simulator against the CPU, bitwise.
"""

import math
import os
import subprocess
import sys
import textwrap

import mpmath
import numba
import numpy as np
import pytest
from cases import assert_same_draws
from scipy import special, stats

from lograd_fast._engine import numpy as npb
from lograd_fast._engine import rng as _rng
from lograd_fast.families.beta import Beta
from lograd_fast.families.dirichlet import Dirichlet
from lograd_fast.families.gamma import Gamma
from lograd_fast.families.student_t import StudentT
from lograd_fast.families.student_t import scalar as student_t_scalar

BACKENDS = ("cpu", "numpy")
KEY = (np.uint64(7), np.uint64(0), np.uint64(2), np.int64(0))


def _within_5se(values, expected, variance, what):
    """Sample mean of ``values`` (axis 0) within 5 standard errors of ``expected``."""
    n = values.shape[0]
    se = np.sqrt(variance / n)
    assert np.all(np.abs(values.mean(axis=0) - expected) <= 5 * se), (what, values.mean(0),
                                                                     expected, se)


def _moments_within_5se(x, mean, var, kurtosis_excess, what):
    """Sample mean and variance within 5 SE (the variance's SE from the 4th moment)."""
    n = x.shape[0]
    _within_5se(x, mean, var, f"{what} mean")
    mu4 = (np.asarray(kurtosis_excess) + 3.0) * var**2
    se_var = np.sqrt((mu4 - var**2) / n)
    assert np.all(np.abs(x.var(axis=0, ddof=1) - var) <= 5 * se_var), (
        what, x.var(axis=0, ddof=1), var, se_var)


def _check_stored(d, x, at_boundary):
    """log_prob of stored draws is never NaN; score(x) raises the clear underflow error
    exactly when some draw rounded onto the boundary (issue 15, item 13), and is never
    NaN otherwise."""
    _no_nan(d.log_prob(x))
    if at_boundary.any():
        with pytest.raises(ValueError, match="underflowed.*sample_and_score"):
            d.score(x)
    else:
        _no_nan(d.score(x))


def _no_nan(*arrays):
    for a in arrays:
        for v in (a.values() if isinstance(a, dict) else [a]):
            assert not np.isnan(v).any()


# --------------------------------------------------------------------------- the Gamma draw
@numba.njit(cache=True)
def _jit_log_gammas(key, alpha, like):
    out = np.empty(alpha.shape[0])
    blocks = np.empty(alpha.shape[0], np.int64)
    for i in range(alpha.shape[0]):
        st = _rng.make_stream(key[0], key[1], key[2], key[3] + i)
        out[i], blocks[i] = _rng.std_gamma_log(like, st, 0, alpha[i])
    return out, blocks


def _log_gamma_cdf(t, alpha):
    """P(log G <= t), G ~ Gamma(alpha, 1); P(alpha, y) ~ y^alpha / Gamma(alpha + 1) as y -> 0."""
    with np.errstate(under="ignore", over="ignore"):
        direct = special.gammainc(alpha, np.exp(t))
        tiny = np.exp(alpha * t - special.gammaln(alpha + 1.0))
    return np.where(t < -50.0, tiny, direct)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("alpha", [1e-3, 0.01, 0.3, 1.0, 2.5, 1e4])
def test_log_gamma_draws_follow_the_gamma(alpha, dtype):
    n = 20_000
    alphas = np.full(n, alpha)
    log_g, blocks = npb.std_gamma_log(dtype, npb.streams(KEY, np.arange(n)), 0, alphas)
    assert np.all(np.isfinite(log_g))
    assert stats.kstest(log_g, lambda t: _log_gamma_cdf(t, alpha)).pvalue > 1e-6
    # Marsaglia-Tsang: one normal + one uniform block per proposal, >= 95% accepted;
    # alpha < 1 adds the boost uniform
    assert 2.0 + (alpha < 1) <= blocks.mean() < 2.12 + (alpha < 1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_compiled_and_numpy_gamma_draws_agree_bitwise(dtype):
    n = 3000
    alpha = np.exp(np.random.default_rng(0).uniform(np.log(1e-3), np.log(1e4), n))
    got, blocks = _jit_log_gammas(KEY, alpha, np.zeros(1, dtype))
    ref, ref_blocks = npb.std_gamma_log(dtype, npb.streams(KEY, np.arange(n)), 0, alpha)
    assert_same_draws(got, ref)  # log/exp: libm in the kernels, numpy here
    np.testing.assert_array_equal(blocks, ref_blocks)  # the same accept/reject decisions
    # the scalar function runs as plain Python too (CUDA simulator, NUMBA_DISABLE_JIT)
    for i in (0, 1, 2):
        st = _rng.make_stream(KEY[0], KEY[1], KEY[2], i)
        assert _rng.std_gamma_log(np.zeros(1, dtype), st, 0, alpha[i]) == (got[i], blocks[i])


def test_normal_draws_with_blocks_take_one_block_each():
    st = npb.streams(KEY, np.arange(50_000))
    for dtype in (np.float64, np.float32):
        z, block = npb.std_normal_next(dtype, st, 0)
        assert z.dtype == dtype and np.all(block == 1)  # Box-Muller: one block per normal
        assert stats.kstest(z, stats.norm.cdf).pvalue > 1e-6


# --------------------------------------------------------------------------- Gamma
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("alpha,log_rate", [(1e-3, 0.0), (1e-3, 5.0), (0.05, -3.0),
                                            (1e4, 0.0), (1e4, -69.0)])
def test_gamma_extreme_concentrations(alpha, log_rate, backend):
    n = 40_000
    d = Gamma(np.log(alpha), log_rate, backend=backend)
    x, lp, s = d.sample_and_score(n, seed=21)
    _no_nan(x, lp, s)
    assert np.all(x >= 0.0) and np.all(np.isfinite(x))
    assert np.all(np.isfinite(lp)) and all(np.all(np.isfinite(v)) for v in s.values())
    beta = math.exp(log_rate)
    _moments_within_5se(x, alpha / beta, alpha / beta**2, 6.0 / alpha, "gamma")
    # the fused scores use the exact log-space draw: mean zero within 5 SE
    _within_5se(s["log_concentration"], 0.0, s["log_concentration"].var(), "score conc")
    _within_5se(s["log_rate"], 0.0, alpha, "score rate")  # Var(alpha - G) = alpha
    # log_prob / score of the *stored* x: +inf where x rounded to 0, never NaN
    _check_stored(d, x, x == 0.0)
    if alpha < 1e-2 and backend == "cpu":
        assert np.any(x == 0.0)  # underflow happens: the edge is exercised


def test_gamma_float32_keeps_large_values():
    # x ~ 1e34: fine in float32; beta * x and log x are computed in float64
    d32 = Gamma(np.array(np.log(1e4), np.float32), np.array(-69.0, np.float32))
    x, lp, s = d32.sample_and_score(20_000, seed=3)
    assert x.dtype == np.float32 and np.all(np.isfinite(x)) and np.all(np.isfinite(lp))
    mean, var = 1e4 / math.exp(-69.0), 1e4 / math.exp(-69.0) ** 2
    _moments_within_5se(x.astype(np.float64), mean, var, 6e-4, "gamma f32")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gamma_log_prob_at_zero(backend, dtype):
    alpha = np.array([0.3, 1.0, 2.5])
    log_rate = np.array([0.7, 0.7, 0.7])
    d = Gamma(np.log(alpha).astype(dtype), log_rate.astype(dtype), backend=backend)
    lp = d.log_prob(np.zeros(3, dtype))
    ref = stats.gamma(alpha.astype(dtype), scale=np.exp(-log_rate.astype(dtype))).logpdf(0.0)
    np.testing.assert_allclose(lp, ref.astype(dtype), rtol=1e-6)
    assert lp[0] == np.inf and np.isfinite(lp[1]) and lp[2] == -np.inf
    # the score at 0 is -inf (for log_concentration): refused, naming the underflow
    with pytest.raises(ValueError, match="equal to 0.*underflowed"):
        d.score(np.zeros(3, dtype))


@pytest.mark.parametrize("backend", BACKENDS)
def test_gamma_outside_the_support(backend):
    d = Gamma(np.zeros(3), 0.0, backend=backend)
    lp = d.log_prob(np.array([-1.0, np.inf, 1.0]))
    assert lp[0] == -np.inf and lp[1] == -np.inf and np.isfinite(lp[2])
    with pytest.raises(ValueError, match="support"):
        d.score(np.array([-1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="support"):
        d.score(np.array([np.inf, 1.0, 1.0]))


# --------------------------------------------------------------------------- Beta
BOUNDARY_AB = [(0.5, 2.0), (1.0, 1.0), (1.0, 3.0), (2.0, 1.0), (3.0, 0.5), (0.2, 0.2)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_beta_log_prob_at_0_and_1(backend, dtype):
    a, b = (np.array(v) for v in zip(*BOUNDARY_AB))
    d = Beta(np.log(a).astype(dtype), np.log(b).astype(dtype), backend=backend)
    a64 = np.exp(np.log(a).astype(dtype).astype(np.float64))
    b64 = np.exp(np.log(b).astype(dtype).astype(np.float64))
    for edge in (0.0, 1.0):
        x = np.full(a.shape, edge, dtype)
        lp = d.log_prob(x)
        ref = stats.beta(a64, b64).logpdf(edge)
        assert not np.isnan(lp).any()
        np.testing.assert_array_equal(np.isinf(lp), np.isinf(ref))
        np.testing.assert_allclose(lp, ref.astype(dtype), rtol=1e-6)
        with pytest.raises(ValueError, match="equal to 0 or 1.*underflowed"):
            d.score(x)
    # a == 1 at 0 (and b == 1 at 1) is finite: log b (log a)
    lp0 = d.log_prob(np.zeros(a.shape, dtype))
    assert np.isfinite(lp0[1]) and np.isfinite(lp0[2]) and lp0[0] == np.inf


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("a,b", [(1e-3, 1e-3), (1e-3, 1.0), (1e-3, 1e4), (1e4, 1e-3),
                                 (1e4, 1e4), (0.5, 1e4)])
def test_beta_extreme_parameters(a, b, backend):
    n = 40_000
    d = Beta(np.log(a), np.log(b), backend=backend)
    x, lp, s = d.sample_and_score(n, seed=22)
    _no_nan(x, lp, s)
    assert np.all((x >= 0.0) & (x <= 1.0))
    assert np.all(np.isfinite(lp)) and all(np.all(np.isfinite(v)) for v in s.values())
    mean, var, kurt = (float(v) for v in stats.beta.stats(a, b, moments="mvk"))
    _moments_within_5se(x, mean, var, kurt, "beta")
    for name, v in s.items():
        _within_5se(v, 0.0, v.var(), f"score {name}")
    _check_stored(d, x, (x == 0.0) | (x == 1.0))


def test_beta_tiny_parameters_pile_up_at_the_ends():
    n = 20_000
    x = Beta(np.log(1e-3), np.log(2e-3)).sample(n, seed=1)
    # Beta(1e-3, 2e-3) has ~95% of its mass within 1e-30 of 0 or 1e-15 of 1 (and many
    # draws round to exactly 0 or 1): the frequencies match the CDF within 5 SE
    for frac, p in (((x < 1e-30).mean(), special.betainc(1e-3, 2e-3, 1e-30)),
                    ((x > 1 - 1e-15).mean(), special.betainc(2e-3, 1e-3, 1e-15)),
                    ((x < 0.5).mean(), special.betainc(1e-3, 2e-3, 0.5))):
        assert abs(frac - p) <= 5 * math.sqrt(p * (1 - p) / n), (frac, p)
    assert np.any(x == 0.0) and np.any(x == 1.0)


def test_beta_float32_mean_near_one():
    # a / (a + b) within 1e-8 of 1: exact in float64, rounds to 1 in float32, never NaN
    d = Beta(np.array(np.log(1e5), np.float32), np.array(np.log(1e-3), np.float32))
    x, lp, s = d.sample_and_score(1000, seed=2)
    assert x.dtype == np.float32 and np.all((x >= 0) & (x <= 1))
    _no_nan(lp, s)
    assert np.all(np.isfinite(lp))


@pytest.mark.parametrize("backend", BACKENDS)
def test_beta_outside_the_support(backend):
    d = Beta(np.zeros(3), 0.0, backend=backend)
    lp = d.log_prob(np.array([-0.1, 1.5, 0.5]))
    assert lp[0] == -np.inf and lp[1] == -np.inf and lp[2] == 0.0
    with pytest.raises(ValueError, match="support"):
        d.score(np.array([0.5, 1.5, 0.5]))


# --------------------------------------------------------------------------- Dirichlet
@pytest.mark.parametrize("backend", BACKENDS)
def test_dirichlet_marginals_are_betas(backend):
    alpha = np.array([[0.7, 2.0, 4.5], [0.3, 0.3, 8.0]])
    d = Dirichlet(np.log(alpha), backend=backend)
    n = 4000
    x = d.sample(n, seed=31)
    assert x.shape == (n, 2, 3)
    np.testing.assert_allclose(x.sum(axis=-1), 1.0, rtol=0, atol=8 * np.finfo(float).eps)
    for r in range(2):
        a0 = alpha[r].sum()
        for k in range(3):
            beta = stats.beta(alpha[r, k], a0 - alpha[r, k])
            assert stats.kstest(x[:, r, k], beta.cdf).pvalue > 1e-6, (r, k)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("alpha", [[1e-3, 1e-3, 1e-3], [1e-3, 1.0, 1e4], [1e4, 1e4, 1e4],
                                   [1e-3, 0.5, 2.0, 1e-3]])
def test_dirichlet_extreme_concentrations(alpha, backend):
    alpha = np.array(alpha)
    n = 40_000
    d = Dirichlet(np.log(alpha), backend=backend)
    x, lp, s = d.sample_and_score(n, seed=23)
    _no_nan(x, lp, s)
    assert np.all((x >= 0.0) & (x <= 1.0))
    # x_k = exp(log G_k - logsumexp): with log G ~ -1e3 (alpha = 1e-3) the rounding of
    # the logs (eps * 1e3) is the rows' relative error
    np.testing.assert_allclose(x.sum(axis=-1), 1.0, rtol=0, atol=1e-11)
    assert np.all(np.isfinite(lp)) and np.all(np.isfinite(s["log_concentration"]))
    a0 = alpha.sum()
    for k in range(alpha.size):
        mean, var, kurt = (float(v) for v in stats.beta.stats(alpha[k], a0 - alpha[k],
                                                               moments="mvk"))
        _moments_within_5se(x[:, k], mean, var, kurt, f"dirichlet marginal {k}")
    score = s["log_concentration"]
    _within_5se(score, 0.0, score.var(axis=0), "dirichlet score")
    _check_stored(d, x, x == 0.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dirichlet_rows_with_zeros(backend):
    alpha = np.array([[0.5, 2.0, 1.0], [1.0, 3.0, 2.0], [3.0, 1.0, 0.5]])
    d = Dirichlet(np.log(alpha), backend=backend)
    x = np.array([[0.0, 0.4, 0.6], [0.0, 0.4, 0.6], [0.0, 0.4, 0.6]])
    lp = d.log_prob(x)
    # xlogy(alpha - 1, x) - log B(alpha): alpha_0 < 1 -> +inf, == 1 -> finite, > 1 -> -inf
    ref = (special.xlogy(alpha - 1.0, x).sum(axis=1) - special.gammaln(alpha).sum(axis=1)
           + special.gammaln(alpha.sum(axis=1)))
    np.testing.assert_allclose(lp, ref, rtol=1e-12)
    assert lp[0] == np.inf and np.isfinite(lp[1]) and lp[2] == -np.inf
    np.testing.assert_allclose(lp[1], stats.dirichlet(alpha[1]).logpdf(x[1]), rtol=1e-12)
    with pytest.raises(ValueError, match="equal to 0.*underflowed"):
        d.score(x)


def test_dirichlet_float32():
    d = Dirichlet(np.log(np.array([1e-3, 1.0, 1e4], np.float32)))
    x, lp, s = d.sample_and_score(2000, seed=4)
    assert x.dtype == np.float32 and lp.dtype == np.float32
    np.testing.assert_allclose(x.sum(axis=-1), 1.0, atol=8 * np.finfo(np.float32).eps)
    _no_nan(x, lp, s)
    assert np.all(np.isfinite(lp))
    # float32 rows draw their Gammas twice (sample and fused paths must still agree)
    np.testing.assert_array_equal(x, d.sample(2000, seed=4))


def test_dirichlet_bad_input():
    with pytest.raises(ValueError, match="log_concentration"):
        Dirichlet(np.zeros((3, 1)))
    with pytest.raises(ValueError, match="log_concentration"):
        Dirichlet(0.0)
    with pytest.raises(ValueError, match="log_concentration"):
        Dirichlet(np.array([0.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match="log_concentration"):
        Dirichlet(np.array([0.0, 800.0]))
    d = Dirichlet(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="sum to 1"):
        d.log_prob(np.array([[0.2, 0.2, 0.2], [0.2, 0.3, 0.5]]))
    with pytest.raises(ValueError, match="outside"):
        d.log_prob(np.array([[-0.2, 0.7, 0.5], [0.2, 0.3, 0.5]]))
    with pytest.raises(ValueError, match="x has shape"):
        d.log_prob(np.full((2, 4), 0.25))


# --------------------------------------------------------------------------- Student t
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("df", [0.1, 0.5, 1.0])
def test_student_t_heavy_tails_follow_scipy(df, backend):
    d = StudentT(1.0, np.log(2.0), np.log(df), backend=backend)
    x, lp, s = d.sample_and_score(4000, seed=24)
    _no_nan(x, lp, s)
    assert stats.kstest(x, stats.t(df, 1.0, 2.0).cdf).pvalue > 1e-6
    for name, v in s.items():
        _within_5se(v, 0.0, v.var(), f"score {name}")
    assert np.isnan(d.mean)


@pytest.mark.parametrize("backend", BACKENDS)
def test_student_t_tiny_df(backend):
    # nu = 1e-3: |a| = |z| / sqrt(2 G(nu/2)) overflowed for most draws: refused now
    # (issue 15, item 14); nu = 0.1 is the heavy-tailed edge that still fits float64
    with pytest.raises(ValueError, match="log_df.*overflow float64"):
        StudentT(0.0, 0.0, np.log(1e-3), backend=backend)
    d = StudentT(0.0, 0.0, np.log(0.1), backend=backend)
    x, lp, s = d.sample_and_score(20_000, seed=25)
    _no_nan(x, lp, s)
    assert np.all(np.isfinite(x)) and np.abs(x).max() > 1e30  # heavy tails, no inf
    assert np.all(np.isfinite(lp)) and all(np.all(np.isfinite(v)) for v in s.values())
    for name, v in s.items():
        _within_5se(v, 0.0, v.var(), f"score {name}")
    _no_nan(d.log_prob(x), d.score(x))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("df", [10.0, 1e4])
def test_student_t_moments(df, backend):
    d = StudentT(-3.0, np.log(0.5), np.log(df), backend=backend)
    x = d.sample(40_000, seed=26)
    mean, var, kurt = (float(v) for v in stats.t.stats(df, -3.0, 0.5, moments="mvk"))
    _moments_within_5se(x, mean, var, kurt, "student t")
    np.testing.assert_allclose(d.variance, var, rtol=1e-12)
    np.testing.assert_allclose(d.mean, mean)


def _mp_student_t_logpdf(x, loc, scale, df):
    x, loc, scale, df = (mpmath.mpf(float(v)) for v in (x, loc, scale, df))
    return float(mpmath.loggamma((df + 1) / 2) - mpmath.loggamma(df / 2)
                 - mpmath.log(df * mpmath.pi) / 2 - mpmath.log(scale)
                 - (df + 1) / 2 * mpmath.log1p(((x - loc) / scale) ** 2 / df))


@pytest.mark.parametrize("backend", BACKENDS)
def test_student_t_log_prob_far_out(backend):
    mpmath.mp.dps = 40
    loc, scale, df = 0.5, 2.0, np.array([3.0, 0.5, 1e4])
    x = np.array([1e200, -1e300, 1e160])  # a**2 overflows float64
    d = StudentT(loc, np.log(scale), np.log(df), backend=backend)
    lp = d.log_prob(x)
    ref = [_mp_student_t_logpdf(*v) for v in zip(x, [loc] * 3, [scale] * 3, df)]
    np.testing.assert_allclose(lp, ref, rtol=1e-13)
    s = d.score(x)
    _no_nan(s)
    assert np.all(np.isfinite(s["log_df"]))
    lp_inf = d.log_prob(np.array([np.inf, -np.inf, np.inf]))
    assert np.all(lp_inf == -np.inf)
    _no_nan(d.score(np.array([np.inf, -np.inf, 0.5])))


def test_student_t_float32_without_overflow():
    # (x / scale)**2 ~ 1e60 overflows float32, not float64 (nor the log-space maths)
    df = np.array([3.0, 0.7], np.float32)
    x = np.array([1e30, -3e38], np.float32)
    d32 = StudentT(np.zeros(2, np.float32), np.zeros(2, np.float32), np.log(df))
    d64 = StudentT(np.zeros(2), np.zeros(2), np.log(df).astype(np.float64))
    lp32 = d32.log_prob(x)
    assert lp32.dtype == np.float32 and np.all(np.isfinite(lp32))
    np.testing.assert_allclose(lp32, d64.log_prob(x.astype(np.float64)), rtol=2e-7)
    s32, s64 = d32.score(x), d64.score(x.astype(np.float64))
    for k in s32:
        np.testing.assert_allclose(s32[k], s64[k], rtol=2e-6, atol=1e-30)


@pytest.mark.parametrize("backend", BACKENDS)
def test_student_t_has_no_closed_form_kl(backend):
    d = StudentT(0.0, 0.0, 1.0, backend=backend)
    with pytest.raises(NotImplementedError, match="no closed form"):
        d.kl(StudentT(1.0, 0.0, 1.0, backend=backend))
    # the kernel entry point exists (the registry is complete) and says NaN
    p = d._record
    assert math.isnan(student_t_scalar.kl1(p, p, 0))


def test_student_t_reflect_is_the_mirror_image():
    d = StudentT(np.array([1.5, -2.0]), 0.0, 1.0)
    x = np.array([4.0, 0.25])
    for i in range(2):
        y = x.copy()
        student_t_scalar.reflect1(d._record, i, y, i)
        assert y[i] == 2 * d._record.loc[i] - x[i]
        np.testing.assert_allclose(d.log_prob(y)[i], d.log_prob(x)[i], rtol=1e-14)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("make,name", [
    (lambda v: Gamma(v, 0.0), "log_concentration"),
    (lambda v: Gamma(0.0, v), "log_rate"),
    (lambda v: Beta(v, 0.0), "log_alpha"),
    (lambda v: Beta(0.0, v), "log_beta"),
    (lambda v: StudentT(0.0, v, 0.0), "log_scale"),
    (lambda v: StudentT(0.0, 0.0, v), "log_df"),
])
@pytest.mark.parametrize("bad", [np.nan, np.inf, 800.0, -800.0])
def test_bad_parameters_name_the_argument(make, name, bad):
    with pytest.raises(ValueError, match=name):
        make(np.array([0.0, bad]))


def test_mismatched_shapes():
    with pytest.raises(ValueError, match="do not broadcast"):
        Gamma(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="do not broadcast"):
        StudentT(np.zeros(2), 0.0, np.zeros(3))
    with pytest.raises(ValueError, match="x has shape"):
        Beta(np.zeros(3), 0.0).log_prob(np.full((2, 4), 0.5))


# --------------------------------------------------------------------------- CUDA simulator
SIMULATOR_SETTINGS = {
    "Gamma": dict(log_concentration=np.log([1e-3, 0.4, 3.0, 1e4]),
                  log_rate=np.array([0.0, 1.0, -2.0, 0.5])),
    "Beta": dict(log_alpha=np.log([1e-3, 0.5, 1.0, 1e4]), log_beta=np.log([1e-3, 2.0, 1e4, 3.0])),
    "Dirichlet": dict(log_concentration=np.log([[1e-3, 1.0, 1e4], [0.7, 2.0, 4.5]])),
    "StudentT": dict(loc=np.array([0.0, 1.0, -2.0]), log_scale=np.array([0.0, 0.5, -1.0]),
                     log_df=np.log([0.8, 1.0, 1e4])),
}
FAMILY_CLASSES = {"Gamma": Gamma, "Beta": Beta, "Dirichlet": Dirichlet, "StudentT": StudentT}


def _backend_outputs(backend, host=np.asarray):
    """Every setting, float64 and float32: sample_and_score, sample, log_prob, score."""
    out = {}
    for name, params in SIMULATOR_SETTINGS.items():
        for dtype in (np.float64, np.float32):
            d = FAMILY_CLASSES[name](**{k: v.astype(dtype) for k, v in params.items()},
                                     backend=backend)
            tag = f"{name}|{np.dtype(dtype).name}"
            x, lp, s = d.sample_and_score(3, seed=5, stream=1)
            out[f"{tag}|x"], out[f"{tag}|lp"] = host(x), host(lp)
            out.update({f"{tag}|s_{k}": host(v) for k, v in s.items()})
            out[f"{tag}|sample"] = host(d.sample(3, seed=6))
            out[f"{tag}|log_prob"] = host(d.log_prob(out[f"{tag}|x"]))
            # scores in the open support (draws that underflowed onto 0 or 1 are refused)
            info = np.finfo(dtype)
            x_open = np.clip(out[f"{tag}|x"], info.tiny, 1.0 - info.epsneg) \
                if name in ("Beta", "Dirichlet") else np.maximum(out[f"{tag}|x"], info.tiny)
            out.update({f"{tag}|score_{k}": host(v) for k, v in d.score(x_open).items()})
    return out


_SIMULATOR_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, sys.argv[2])
    from test_gamma_family import _backend_outputs
    host = lambda a: a.copy_to_host() if hasattr(a, "copy_to_host") else np.asarray(a)
    np.savez(sys.argv[1], **_backend_outputs("cuda", host))
""")


@pytest.mark.slow
@pytest.mark.cuda
def test_cuda_simulator_matches_cpu_bitwise(tmp_path):
    """The CUDA kernels (run as Python by the simulator, in a subprocess) give the CPU's
    numbers bitwise, at the extreme parameters too (alpha = 1e-3, nu = 0.8, ...)."""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    out = tmp_path / "sim.npz"
    proc = subprocess.run([sys.executable, "-W", "ignore::RuntimeWarning", "-c",
                           _SIMULATOR_SCRIPT, str(out), os.path.dirname(__file__)],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    sim = np.load(out)
    cpu = _backend_outputs("cpu")
    # per family and dtype: x, log_prob, sample, log_prob(x), two score dicts
    assert set(sim.files) == set(cpu)
    assert len(cpu) == sum(2 * (4 + 2 * len(p)) for p in SIMULATOR_SETTINGS.values())
    for key, value in cpu.items():
        np.testing.assert_array_equal(sim[key], value, err_msg=key)


# --------------------------------------------------------------------------- huge concentrations
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("log_conc", [20.0, 30.0, 35.0, 40.0])
def test_gamma_log_prob_and_entropy_at_huge_concentration(log_conc, backend):
    """Issue 15, item 12: (alpha - 1) log x - beta x - lgamma(alpha) cancels terms of
    size alpha log alpha (at alpha = e**40: -1024 for -21.44).  Against mpmath at 50
    digits: log_prob of the stored draws, the fused log-prob (at the unrounded draw,
    so within the rounding of x times the slope), and the entropy.  Tolerance: 1e-13
    plus the change of log p over 4 ulp of x (``beta x`` is rounded once: the
    backward error of any float evaluation; ~1e-11 at alpha = e**40)."""
    mpmath.mp.dps = 50
    log_rate = 1.5
    d = Gamma(log_conc, log_rate, backend=backend)
    a, b = mpmath.exp(log_conc), mpmath.exp(log_rate)
    x, lp_fused, _ = d.sample_and_score(64, seed=5)

    def ref(v):
        v = mpmath.mpf(float(v))
        return float(a * mpmath.log(b) + (a - 1) * mpmath.log(v) - b * v - mpmath.loggamma(a))

    expected = np.array([ref(v) for v in x])
    slope = np.array([float(abs((a - 1) / mpmath.mpf(float(v)) - b)) for v in x])
    tol = 1e-13 * (1.0 + np.abs(expected)) + 4.0 * slope * np.spacing(x)
    assert np.all(np.abs(d.log_prob(x) - expected) <= tol)
    assert np.all(np.abs(lp_fused - expected) <= tol)
    entropy = a - mpmath.log(b) + mpmath.loggamma(a) + (1 - a) * mpmath.digamma(a)
    np.testing.assert_allclose(d.entropy(), float(entropy), rtol=1e-14)
