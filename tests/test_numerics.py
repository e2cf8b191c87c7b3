"""Numerical edges found by the outside audit (issue 15), checked against references
we did not write: mpmath at 40 digits, scipy, closed forms."""

import numpy as np
import pytest

import lograd_fast as lf


# --------------------------------------------------------------------------- dtypes (item 6)
@pytest.mark.parametrize("cls,args", [(lf.Normal, 2), (lf.Gamma, 2), (lf.Poisson, 1),
                                      (lf.StudentT, 3)], ids=lambda v: getattr(v, "__name__", ""))
def test_numpy_float32_scalars_are_float32_parameters(cls, args):
    d = cls(*[np.float32(0.5)] * args)
    assert d.dtype == np.float32
    assert d.sample(3).dtype == (np.int64 if cls is lf.Poisson else np.float32)
    # Python floats stay weak (NEP 50): they take the arrays' dtype ...
    assert cls(np.float32(0.5), *[0.5] * (args - 1)).dtype == np.float32
    # ... while a numpy float64 scalar is a float64 parameter
    if args > 1:
        assert cls(np.zeros(2, np.float32), *[np.float64(0.5)] * (args - 1)).dtype == np.float64
    assert cls(*[0.5] * args).dtype == np.float64


# --------------------------------------------------------------------------- KL for p ~ q (item 3)
mp = pytest.importorskip("mpmath")
mp.mp.dps = 40


def _mpf(v):
    return mp.mpf(float(v))


def _kl_normal(p, q):
    (mu_p, ls_p), (mu_q, ls_q) = [[_mpf(v) for v in t] for t in (p, q)]
    sp, sq = mp.exp(ls_p), mp.exp(ls_q)
    return ls_q - ls_p + (sp**2 + (mu_p - mu_q) ** 2) / (2 * sq**2) - mp.mpf(1) / 2


def _kl_exponential(p, q):
    lp, lq = mp.exp(_mpf(p[0])), mp.exp(_mpf(q[0]))
    return mp.log(lp / lq) + lq / lp - 1


def _kl_poisson(p, q):
    lp, lq = mp.exp(_mpf(p[0])), mp.exp(_mpf(q[0]))
    return lp * mp.log(lp / lq) + lq - lp


def _kl_laplace(p, q):
    (mu_p, ls_p), (mu_q, ls_q) = [[_mpf(v) for v in t] for t in (p, q)]
    bp, bq, delta = mp.exp(ls_p), mp.exp(ls_q), abs(mu_p - mu_q)
    return ls_q - ls_p + delta / bq + bp / bq * mp.exp(-delta / bp) - 1


def _kl_gamma(p, q):
    (ap, lbp), (aq, lbq) = [(mp.exp(_mpf(a)), _mpf(b)) for a, b in (p, q)]
    return ((ap - aq) * mp.digamma(ap) - mp.loggamma(ap) + mp.loggamma(aq)
            + aq * (lbp - lbq) + ap * (mp.exp(lbq - lbp) - 1))


def _log_beta(alphas):
    return sum(mp.loggamma(a) for a in alphas) - mp.loggamma(sum(alphas))


def _kl_dirichlet_mp(ap, aq):
    a0 = sum(ap)
    return (_log_beta(aq) - _log_beta(ap)
            - sum((x - y) * (mp.digamma(a0) - mp.digamma(x)) for x, y in zip(ap, aq)))


def _kl_beta(p, q):
    return _kl_dirichlet_mp([mp.exp(_mpf(v)) for v in p], [mp.exp(_mpf(v)) for v in q])


def _kl_dirichlet(p, q):
    return _kl_dirichlet_mp([mp.exp(_mpf(v)) for v in p[0]], [mp.exp(_mpf(v)) for v in q[0]])


def _kl_bernoulli(p, q):
    pp, pq = 1 / (1 + mp.exp(-_mpf(p[0]))), 1 / (1 + mp.exp(-_mpf(q[0])))
    return pp * mp.log(pp / pq) + (1 - pp) * mp.log((1 - pp) / (1 - pq))


def _perturb(params, rel):
    return tuple(np.asarray(v) + rel * (1.0 + np.abs(v)) * (0.7 if i else -1.3)
                 for i, v in enumerate(params))


KL_CASES = [
    (lf.Normal, (0.3, -0.2), _kl_normal),
    (lf.LogNormal, (0.3, -0.2), _kl_normal),
    (lf.TanhNormal, (0.3, 1.2), _kl_normal),
    (lf.Exponential, (0.4,), _kl_exponential),
    (lf.Poisson, (2.0,), _kl_poisson),
    (lf.Laplace, (0.3, -0.2), _kl_laplace),
    (lf.Gamma, (np.log(2.5), 0.0), _kl_gamma),
    (lf.Gamma, (np.log(1e-2), 3.0), _kl_gamma),
    (lf.Gamma, (np.log(3e5), -1.0), _kl_gamma),
    (lf.Beta, (np.log(2.5), np.log(0.7)), _kl_beta),
    (lf.Beta, (np.log(300.0), np.log(0.01)), _kl_beta),
    (lf.Dirichlet, (np.log([0.5, 2.0, 30.0]),), _kl_dirichlet),
    (lf.Bernoulli, (0.3,), _kl_bernoulli),
    (lf.Bernoulli, (12.0,), _kl_bernoulli),
    (lf.Bernoulli, (-30.0,), _kl_bernoulli),
]


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("rel", [1e-9, 1e-6, 1e-3, 0.3])
@pytest.mark.parametrize("cls,p,ref", KL_CASES,
                         ids=[f"{c.__name__}{i}" for i, (c, _, _) in enumerate(KL_CASES)])
def test_kl_of_nearby_distributions_keeps_its_relative_accuracy(cls, p, ref, rel, backend):
    """KL(p, p) is exactly 0, and KL(p, q) for q ~ p (down to KL ~ 1e-18) matches
    mpmath to 1e-9 relative (the literal formulas had an absolute error ~ eps x their
    terms: negative or wrong at 1e-17)."""
    q = _perturb(p, rel)
    dp, dq = cls(*p, backend=backend), cls(*q, backend=backend)
    assert dp.kl(dp) == 0.0
    got = float(dp.kl(dq))
    expected = ref(p, q)
    assert got >= 0.0
    assert abs(got - float(expected)) <= 1e-9 * float(expected), (got, expected)


# ------------------------------------------------------------ NaN without warning (item 15)
def test_poisson_entropy_of_a_vanishing_rate_is_zero():
    """log_rate = -1e308: the point mass at 0 (p_k = 0 from k = 2 on, where
    -exp(lp) * lp was 0 * inf = NaN); mpmath's sum for moderate tiny rates too."""
    for backend in ("cpu", "numpy"):
        assert lf.Poisson(-1e308, backend=backend).entropy() == 0.0
        with mp.workdps(200):  # p_0 = 1 - 5e-131
            lam = mp.exp(-300)
            ref = -sum(p * mp.log(p) for p in (mp.exp(-lam) * lam**k / mp.factorial(k)
                                                for k in range(40)))
        np.testing.assert_allclose(lf.Poisson(-300.0, backend=backend).entropy(),
                                   float(ref), rtol=1e-12)


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_dirichlet_boundary_point_without_a_limit_is_minus_inf(backend):
    """x = (0, 0, 1) with alpha = (0.5, 2, 2): factors 0**-0.5 = inf and 0**1 = 0; the
    product is taken as 0 (0 * inf = 0), never NaN; the other boundary values stay."""
    d = lf.Dirichlet(np.log([0.5, 2.0, 2.0]), backend=backend)
    assert d.log_prob(np.array([0.0, 0.0, 1.0])) == -np.inf
    assert d.log_prob(np.array([0.0, 0.5, 0.5])) == np.inf  # only the inf factor
    flat = lf.Dirichlet(np.zeros(3), backend=backend)  # alpha = 1: density 2 everywhere
    np.testing.assert_allclose(flat.log_prob(np.array([0.0, 0.0, 1.0])), np.log(2.0))


def test_edge_arithmetic_does_not_warn_on_any_backend():
    """The numpy backend warned (RuntimeWarning: overflow / invalid value) on edge
    values the maths handles (0 * -inf at a vanishing Poisson rate, a Dirichlet
    boundary), where the compiled backends are silent: the same values, no warnings."""
    import warnings

    for backend in ("cpu", "numpy"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert lf.Poisson(-1e308, backend=backend).entropy() == 0.0
            d = lf.Dirichlet(np.log([0.5, 2.0, 2.0]), backend=backend)
            assert d.log_prob(np.array([0.0, 0.0, 1.0])) == -np.inf


# ------------------------------------------------------ underflow at small concentrations (item 13)
@pytest.mark.parametrize("make,name", [
    (lambda v: lf.Gamma(v, 0.0), "log_concentration"),
    (lambda v: lf.Beta(v, 0.0), "log_alpha"),
    (lambda v: lf.Beta(0.0, v), "log_beta"),
    (lambda v: lf.Dirichlet(np.array([0.0, v])), "log_concentration"),
])
def test_concentrations_below_the_supported_range_are_refused(make, name):
    with pytest.raises(ValueError, match=f"{name} out of range: concentrations below 0.001"):
        make(np.log(9e-4))
    make(np.log(1e-3))  # the documented edge works
    make(np.float32(np.log(1e-3)))


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_underflowed_draws_name_the_underflow_end_to_end(backend):
    """At alpha = 1e-3 about half of the Gamma draws underflow to 0.0: the score there
    is -inf and the rewards-path estimate was NaN.  Now score(x) and
    score_function(rewards=, x=) refuse with a message naming the underflow and the
    way out (the fused scores), and that way gives a finite, unbiased estimate:
    d/dlog_rate E[x] = -E[x] = -alpha / rate."""
    d = lf.Gamma(np.log(1e-3), 0.0, backend=backend)
    x, _, s = d.sample_and_score(40_000, seed=3)
    assert (x == 0.0).mean() > 0.4
    with pytest.raises(ValueError, match="underflowed.*sample_and_score"):
        d.score(x)
    with pytest.raises(ValueError, match="underflowed"):
        lf.score_function(d, rewards=x, x=x)
    est = lf.batched_score_function(x, s["log_rate"])
    assert abs(float(est.grad["score"]) + 1e-3) <= 5 * float(est.stderr["score"])
    assert np.isfinite(est.grad["score"])


# ----------------------------------------------------------- draws that overflow (item 14)
@pytest.mark.parametrize("make,names", [
    (lambda: lf.LogNormal(710.0, np.log(0.2)), "loc/log_scale"),
    (lambda: lf.LogNormal(0.0, 20.0), "loc/log_scale"),
    (lambda: lf.LogNormal(-700.0, 0.0), "loc/log_scale"),  # draws round to 0
    (lambda: lf.StudentT(0.0, 0.0, -20.0), "log_df"),
    (lambda: lf.Gamma(0.0, -710.0), "log_rate"),
    (lambda: lf.MultivariateNormal(np.zeros(2), np.array([[0.0, 0.0], [1e308, 0.0]])),
     "scale_tril_unconstrained"),
    (lambda: lf.Normal(1e308, 708.0), "log_scale"),
    (lambda: lf.Normal(np.float32(3e38), np.float32(86.0)), "loc"),
    (lambda: lf.Laplace(0.0, 706.0), "log_scale"),
    (lambda: lf.Exponential(-707.0), "log_rate"),
    (lambda: lf.StudentT(np.float32(0.0), np.float32(0.0), np.float32(np.log(0.3))), "log_df"),
], ids=range(11))
def test_parameters_whose_draws_overflow_are_refused(make, names):
    with pytest.raises(ValueError, match=f"{names}.* out of range: .*(overflow|towards 0)"):
        make()


@pytest.mark.parametrize("make", [
    lambda: lf.LogNormal(700.0, np.log(0.5)), lambda: lf.LogNormal(-700.0, np.log(0.5)),
    lambda: lf.Gamma(np.log(1e3), -700.0), lambda: lf.Exponential(-700.0),
    lambda: lf.Normal(1e308, 0.0), lambda: lf.StudentT(0.0, 0.0, np.log(0.15)),
    lambda: lf.Laplace(0.0, 700.0),
    lambda: lf.MultivariateNormal(np.zeros(2), np.array([[0.0, 0.0], [1e300, 0.0]])),
    lambda: lf.LogNormal(np.float32(78.0), np.float32(0.0)),
], ids=range(9))
def test_parameters_near_the_edge_draw_finite_values(make):
    dist = make()
    x, lp, s = dist.sample_and_score(20_000, seed=9)
    assert np.all(np.isfinite(x)) and np.all(np.isfinite(lp))
    assert all(np.all(np.isfinite(v)) for v in s.values())
    if isinstance(dist, lf.LogNormal):
        assert np.all(x > 0.0)


# --------------------------------------------------------- fused vs separate exactness (item 5)
def test_fused_scores_are_exact_at_the_unrounded_draw_and_score_at_the_stored_one():
    """What the family docstrings state (Normal at loc = 1e3, log_scale = -20, where the
    two differ by 0.4%): the fused scores equal mpmath's score at the real-valued draw
    loc + scale z (z: the same stream's standard normal, the draws of Normal(0, 0)),
    score(x) mpmath's at the stored x.  Exponential likewise with E = lambda x."""
    loc, log_scale = 1e3, -20.0
    z = lf.Normal(0.0, 0.0).sample(200, seed=4)
    x, _, s = lf.Normal(loc, log_scale).sample_and_score(200, seed=4)
    sep = lf.Normal(loc, log_scale).score(x)
    inv = mp.exp(-mp.mpf(log_scale))
    fused_ref = np.array([float(mp.mpf(float(v)) * inv) for v in z])  # (x* - loc)/scale^2
    stored_ref = np.array([float((mp.mpf(float(v)) - loc) * inv**2) for v in x])
    np.testing.assert_allclose(s["loc"], fused_ref, rtol=1e-14)
    np.testing.assert_allclose(sep["loc"], stored_ref, rtol=1e-14)
    assert np.max(np.abs(sep["loc"] / s["loc"] - 1.0)) > 1e-3  # the rounding of x
    e = lf.Exponential(0.0).sample(200, seed=4)
    x, _, s = lf.Exponential(3.0).sample_and_score(200, seed=4)
    np.testing.assert_allclose(s["log_rate"], 1.0 - e, rtol=1e-15, atol=1e-15)
    rate = mp.exp(3)
    np.testing.assert_allclose(lf.Exponential(3.0).score(x)["log_rate"],
                               [float(1 - rate * mp.mpf(float(v))) for v in x], rtol=1e-13,
                               atol=1e-15)


# ------------------------------------------------------------------ seeds and streams (item 7)
def test_same_seed_and_stream_share_blocks_across_families_and_streams_separate_them():
    """What the README says: one seed and stream give two families the same Philox
    blocks (|Normal| and Exponential draws correlate: far beyond 20 standard errors of
    an independent pair's correlation, 1/sqrt(n)); a stream per distribution makes them
    independent (correlation within 5 SE of 0)."""
    n = 20_000
    z = np.abs(lf.Normal(0.0, 0.0).sample(n, seed=7))
    same = lf.Exponential(0.0).sample(n, seed=7)
    other = lf.Exponential(0.0).sample(n, seed=7, stream=1)
    assert abs(np.corrcoef(z, same)[0, 1]) > 20.0 / np.sqrt(n)
    assert abs(np.corrcoef(z, other)[0, 1]) < 5.0 / np.sqrt(n)
