"""Estimators on the other families, against exact values we did not compute with
the package: enumeration (Bernoulli), scipy quadrature (``scipy.stats ... .expect``)
differentiated by central finite differences (Gamma, Beta, Poisson, Exponential,
LogNormal), closed-form moments (Laplace, StudentT, MultivariateNormal) and
Gauss-Hermite quadrature (TanhNormal).  5-standard-error tolerances, fixed seeds."""

import math

import numba
import numpy as np
import pytest
from scipy import stats

import lograd_fast as lf
from lograd_fast.families.bernoulli import Bernoulli
from lograd_fast.families.beta import Beta
from lograd_fast.families.exponential import Exponential
from lograd_fast.families.gamma import Gamma
from lograd_fast.families.laplace import Laplace
from lograd_fast.families.lognormal import LogNormal
from lograd_fast.families.multivariate_normal import MultivariateNormal
from lograd_fast.families.poisson import Poisson
from lograd_fast.families.student_t import StudentT
from lograd_fast.families.tanh_normal import TanhNormal

N = 2**17


def _within(est, exact: dict, k: float = 5.0):
    for name, ex in exact.items():
        g, se = np.asarray(est.grad[name], float), np.asarray(est.stderr[name], float)
        assert g.shape == np.shape(ex), (name, g.shape)
        assert np.all(np.abs(g - ex) <= k * se + 1e-12), (est.estimator, name, g, ex, se)


# ----------------------------------------------------------------------------- Bernoulli
C = np.array([1.5, -0.7])


@numba.njit
def _bern_reward(x):
    return C[0] * x[0] + C[1] * x[1] + 2.0 * x[0] * x[1]


@pytest.mark.parametrize("baseline", [None, "loo", "optimal"])
def test_bernoulli_matches_enumeration(baseline):
    logits = np.array([0.3, -1.2])
    p = 1.0 / (1.0 + np.exp(-logits))
    outcomes = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    prob = np.prod(np.where(outcomes == 1, p, 1 - p), axis=1)
    f = np.array([_bern_reward(o) for o in outcomes])
    score = outcomes - p  # d log p / d logit
    exact = (prob * f) @ score
    # the same gradient from the closed form E f = c.p + 2 p0 p1
    np.testing.assert_allclose(exact, p * (1 - p) * (C + 2.0 * p[::-1]), rtol=1e-12)
    if baseline is None:
        b = np.zeros(2)
    elif baseline == "loo":
        b = np.full(2, prob @ f)
    else:
        b = (prob * f) @ score**2 / (prob @ score**2)
    terms = (f[:, None] - b) * score
    var = prob @ (terms - exact) ** 2
    m4 = prob @ (terms - exact) ** 4
    est = lf.score_function(Bernoulli(logits), _bern_reward, N, seed=31, baseline=baseline)
    _within(est, {"logits": exact})
    se_var = np.sqrt((m4 - var**2 * (N - 3) / (N - 1)) / N)
    if baseline == "loo":
        # the baseline is the mean of the other draws' f, so the variance estimate also
        # moves with the sample mean of f (delta method: dV/db = -2 cov(term, score));
        # for logit 0 this makes its standard error 2.6x the one above
        cov = prob @ ((terms - exact) * (score - prob @ score))
        q = (terms - exact) ** 2 - 2 * cov * (f - prob @ f)[:, None]
        se_var = np.sqrt(prob @ (q - prob @ q) ** 2 / N)
    assert np.all(np.abs(est.var["logits"] - var) <= 5 * se_var), (est.var, var)


# ----------------------------------------------------------------------------- finite differences
def _fd_gradient(expect, params: dict, h: float = 1e-4) -> dict:
    """Central differences of ``expect(params)`` in every (unconstrained) parameter."""
    out = {}
    for name, value in params.items():
        plus, minus = dict(params), dict(params)
        plus[name], minus[name] = value + h, value - h
        out[name] = (expect(plus) - expect(minus)) / (2 * h)
    return out


@numba.njit
def _sqrt_reward(x):
    return math.sqrt(x[0])


@numba.njit
def _exp_reward(x):
    return math.exp(x[0])


@numba.njit
def _log1p_reward(x):
    return math.log1p(x[0])


FD_CASES = {
    "gamma": (lambda q: Gamma(q["log_concentration"], q["log_rate"]),
              {"log_concentration": math.log(2.5), "log_rate": math.log(1.5)},
              lambda q: stats.gamma(math.exp(q["log_concentration"]),
                                    scale=math.exp(-q["log_rate"])).expect(math.sqrt),
              _sqrt_reward),
    "beta": (lambda q: Beta(q["log_alpha"], q["log_beta"]),
             {"log_alpha": math.log(2.0), "log_beta": math.log(3.0)},
             lambda q: stats.beta(math.exp(q["log_alpha"]), math.exp(q["log_beta"]))
             .expect(math.exp), _exp_reward),
    "poisson": (lambda q: Poisson(q["log_rate"]), {"log_rate": math.log(3.2)},
                lambda q: stats.poisson(math.exp(q["log_rate"])).expect(
                    lambda k: np.sqrt(k), maxcount=10**6, tolerance=1e-14), _sqrt_reward),
    "exponential": (lambda q: Exponential(q["log_rate"]), {"log_rate": math.log(0.7)},
                    lambda q: stats.expon(scale=math.exp(-q["log_rate"])).expect(math.log1p),
                    _log1p_reward),
    "lognormal": (lambda q: LogNormal(q["loc"], q["log_scale"]),
                  {"loc": 0.2, "log_scale": math.log(0.5)},
                  lambda q: stats.lognorm(math.exp(q["log_scale"]),
                                          scale=math.exp(q["loc"])).expect(math.log1p),
                  _log1p_reward),
}


@pytest.mark.parametrize("family", list(FD_CASES))
def test_score_function_matches_finite_differences_of_quadrature(family):
    make, params, expect, reward = FD_CASES[family]
    exact = _fd_gradient(expect, params)
    d = make(params)
    for baseline in ("loo", "optimal"):
        _within(lf.score_function(d, reward, N, seed=32, baseline=baseline), exact)


# ----------------------------------------------------------------------------- symmetric families
K = 0.4


@numba.njit
def _sq_reward(x):
    acc = 0.0
    for v in x:
        acc += (v - K) ** 2
    return acc


@numba.njit
def _sq_elem(x):
    return (x - K) ** 2


@numba.njit
def _sq_elem_derivative(x):
    return 2.0 * (x - K)


def test_laplace_antithetic_pathwise_score():
    """E (x - k)^2 = 2 b^2 + (mu - k)^2: d/dloc = 2 (mu - k), d/dlog_scale = 4 b^2."""
    mu, log_b = np.array([-0.3, 1.1]), np.array([0.2, -0.5])
    d = Laplace(mu, log_b)
    exact = {"loc": 2 * (mu - K), "log_scale": 4 * np.exp(2 * log_b)}
    _within(lf.antithetic(d, _sq_reward, N, seed=33, baseline="optimal"), exact)
    _within(lf.pathwise(d, _sq_elem, _sq_elem_derivative, N, seed=34), exact)
    _within(lf.score_function(d, _sq_reward, N, seed=35, baseline="loo"), exact)


def test_student_t_antithetic_and_score_and_no_pathwise():
    """E (x - k)^2 = s^2 nu/(nu - 2) + (mu - k)^2 (nu > 2)."""
    mu, log_s, log_nu = 0.5, -0.2, math.log(9.0)
    s2, nu = math.exp(2 * log_s), 9.0
    exact = {"loc": 2 * (mu - K), "log_scale": 2 * s2 * nu / (nu - 2),
             "log_df": -2 * s2 * nu / (nu - 2) ** 2}
    d = StudentT(mu, log_s, log_nu)
    _within(lf.antithetic(d, _sq_reward, N, seed=36, baseline="loo"), exact)
    _within(lf.score_function(d, _sq_reward, N, seed=37, baseline="optimal"), exact)


def test_tanh_normal_against_gauss_hermite():
    """x = tanh(mu + sigma z), f = x: d/dmu = E sech^2(u), d/dlog_sigma = sigma E[sech^2(u) z]."""
    mu, log_sigma = 0.3, -0.4
    sigma = math.exp(log_sigma)
    z, w = np.polynomial.hermite_e.hermegauss(120)
    w = w / math.sqrt(2 * math.pi)
    sech2 = 1.0 / np.cosh(mu + sigma * z) ** 2
    exact = {"loc": w @ sech2, "log_scale": sigma * (w @ (sech2 * z))}

    @numba.njit
    def ident(x):
        return x[0]

    @numba.njit
    def ident_elem(x):
        return x

    @numba.njit
    def one(x):
        return 1.0

    d = TanhNormal(mu, log_sigma)
    _within(lf.antithetic(d, ident, N, seed=38, baseline="optimal"), exact)
    _within(lf.pathwise(d, ident_elem, one, N, seed=39), exact)
    _within(lf.score_function(d, ident, N, seed=40, baseline="loo"), exact)


def test_multivariate_normal_antithetic_and_pathwise():
    """f = sum_e (x_e - k)^2: E f = tr(L L^T) + |loc - k|^2, so d/dloc = 2 (loc - k),
    d/dS_jk = 2 L_jk (j > k), d/dS_kk = 2 L_kk^2 (L_kk = exp(S_kk)), 0 above."""
    loc = np.array([0.2, -0.6, 1.0])
    S = np.array([[0.1, 9.0, 9.0], [0.5, -0.3, 9.0], [-0.4, 0.2, 0.0]])  # upper: ignored
    L = np.tril(S, -1) + np.diag(np.exp(np.diag(S)))
    gS = np.tril(2 * L, -1) + np.diag(2 * np.diag(L) ** 2)
    exact = {"loc": 2 * (loc - K), "scale_tril_unconstrained": gS}
    d = MultivariateNormal(loc, S)
    _within(lf.pathwise(d, _sq_elem, _sq_elem_derivative, N // 4, seed=41), exact)
    _within(lf.antithetic(d, _sq_reward, N // 4, seed=42, baseline="optimal"), exact)
    _within(lf.score_function(d, _sq_reward, N // 4, seed=43, baseline="loo"), exact)


def test_families_without_the_entry_points_are_refused():
    with pytest.raises(TypeError, match="dist.*reparam1"):
        lf.pathwise(StudentT(0.0, 0.0, 1.0), _sq_elem, _sq_elem_derivative, 10)
    with pytest.raises(TypeError, match="dist.*reflect1"):
        lf.antithetic(Gamma(0.0, 0.0), _sq_reward, 10)
    with pytest.raises(TypeError, match="dist.*Normal"):
        lf.measure_valued(Laplace(0.0, 0.0), _sq_reward, 10)


# ------------------------------------------------------------------ antithetic, odd scores
@numba.njit
def _shifted_square(x):
    return (x[0] + 0.4) ** 2


def test_antithetic_optimal_baseline_is_unbiased_where_the_pair_score_vanishes():
    """Issue 15, item 1: the pair average of an odd score (loc) is identically 0, so
    the cross-fitted coefficient sum(u h)/sum(h^2) was noise/noise (~1e16) and biased
    the estimate by 13 SE at mu = 0.3.  Exact: d/dloc = 2 (mu + 0.4) = 1.4,
    d/dlog_scale = 2 sigma^2."""
    mu, log_sigma = 0.3, math.log(0.1)
    exact = {"loc": 2 * (mu + 0.4), "log_scale": 2 * math.exp(2 * log_sigma)}
    d = lf.Normal(mu, log_sigma)
    est = lf.antithetic(d, _shifted_square, 10**6, seed=0, baseline="optimal")
    _within(est, exact)
    # no coefficient for loc (was ~1e16): the terms are those of the plain estimator
    assert abs(est.extra["baseline_value"]["loc"] - est.extra["mean_reward"]) < 0.01
    plain = lf.antithetic(d, _shifted_square, 10**6, seed=0)
    np.testing.assert_allclose(est.grad["loc"], plain.grad["loc"], rtol=1e-12)  # untouched
    assert est.var["log_scale"] < plain.var["log_scale"]  # the even coordinate still gains


REFLECTED = [
    (lf.Normal, (np.array([0.3, -1.0]), np.array([-0.2, 0.5]))),
    (Laplace, (np.array([0.3, -1.0]), np.array([-0.2, 0.5]))),
    (StudentT, (np.array([0.3, -1.0]), np.array([-0.2, 0.5]), np.array([0.4, 2.0]))),
    (TanhNormal, (np.array([0.3, -1.0]), np.array([-0.2, 0.5]))),
    (MultivariateNormal, (np.array([0.3, -1.0]), np.array([[0.2, 0.0], [0.7, -0.3]]))),
]


@pytest.mark.parametrize("cls,params", REFLECTED, ids=lambda v: getattr(v, "__name__", ""))
def test_reflect_odd_declarations_match_the_scores(cls, params):
    """``Family.reflect_odd`` names exactly the parameters whose score flips sign under
    the family's own reflection (the others' are unchanged), checked on draws."""
    from lograd_fast._engine.dispatch import REGISTRY

    d = cls(*params)
    assert d.family.reflect_odd == ("loc",)
    x = d.sample(50, seed=3)
    flat = x.reshape((-1,) + d.sample_event_shape).copy()
    reflect1 = REGISTRY[type(d._record)].reflect1
    for i in range(flat.shape[0]):
        reflect1(d._record, i % d._B, flat, i)
    s, s_ref = d.score(x), d.score(flat.reshape(x.shape))
    for name in d.family.param_names:
        sign = -1.0 if name in d.family.reflect_odd else 1.0
        np.testing.assert_allclose(s_ref[name], sign * s[name], rtol=1e-6, atol=1e-9,
                                   err_msg=name)
