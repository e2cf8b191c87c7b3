"""Estimators against exact values we did not compute with the package.

Oracles: Gauss-Hermite quadrature (``numpy.polynomial.hermite_e``, exact for the
polynomial terms of f(x) = (x - k)^2 under x ~ N(mu, sigma)), ``scipy.integrate``
for the measure-valued terms (Rayleigh and double-sided Maxwell integrals), and
exact enumeration for the Categorical.  Every statistical check uses a fixed seed
and a 5-standard-error tolerance; the standard error of a sample variance is
``sqrt((m4 - var^2 (n-3)/(n-1)) / n)`` with the exact 4th central moment ``m4``.
"""

import math

import numba
import numpy as np
import pytest
from scipy import integrate

import lograd_fast as lf

GH_Z, GH_W = np.polynomial.hermite_e.hermegauss(80)
GH_W = GH_W / math.sqrt(2.0 * math.pi)
SQRT_2PI = math.sqrt(2.0 * math.pi)


# ----------------------------------------------------------------------------- oracles
def expect(fn) -> float:
    """E[fn(z)], z ~ N(0, 1), by 80-point Gauss-Hermite (exact for degree < 160)."""
    return float(np.sum(GH_W * fn(GH_Z)))


def moments_from(expectation, fn):
    """(mean, variance, 4th central moment) of the term fn under ``expectation``."""
    m = expectation(fn)
    var = expectation(lambda *a: (fn(*a) - m) ** 2)
    m4 = expectation(lambda *a: (fn(*a) - m) ** 4)
    return m, var, m4


def var_se(var: float, m4: float, n: int) -> float:
    return math.sqrt(max(m4 - var * var * (n - 3) / (n - 1), 0.0) / n)


def rayleigh_expect(fn) -> float:
    """E[fn(w)], w ~ Weibull(2, 1/2) = Rayleigh (density w exp(-w^2/2))."""
    return integrate.quad(lambda w: fn(w) * w * math.exp(-0.5 * w * w), 0, np.inf,
                          epsabs=1e-13, epsrel=1e-12)[0]


def normal_exp_expect(fn) -> float:
    """E[fn(z, e)], z ~ N(0, 1), e ~ Exp(1) independent; split at z = 0 (where the
    coupled Maxwell draw changes sign)."""
    def integrand(e, z):
        dens = math.exp(-0.5 * z * z - e) / SQRT_2PI
        return (fn(z, e) + fn(-z, e)) * dens
    return integrate.dblquad(integrand, 0, 12, 0, 60, epsabs=1e-11, epsrel=1e-11)[0]


class Quadratic:
    """x ~ N(mu, sigma), f(x) = (x - k)^2: E f = sigma^2 + (mu - k)^2."""

    def __init__(self, mu, sigma, k):
        self.mu, self.sigma, self.k = mu, sigma, k
        self.exact = {"loc": 2.0 * (mu - k), "log_scale": 2.0 * sigma**2}

        @numba.njit
        def f(x):
            return (x[0] - k) ** 2

        @numba.njit
        def f_elem(x):
            return (x - k) ** 2

        @numba.njit
        def df_elem(x):
            return 2.0 * (x - k)

        self.f, self.f_elem, self.df_elem = f, f_elem, df_elem

    def __repr__(self):
        return f"mu={self.mu},sigma={self.sigma:.3g},k={self.k}"

    def dist(self, dtype=np.float64, backend="cpu"):
        return lf.Normal(np.asarray(self.mu, dtype), np.asarray(math.log(self.sigma), dtype),
                         backend=backend)

    def fx(self, z):
        return (self.mu + self.sigma * z - self.k) ** 2

    def baseline_value(self, baseline, u, h):
        """The exact (population) baseline of the terms u - b h."""
        if baseline is None:
            return 0.0
        if baseline in ("mean", "loo"):
            return expect(self.fx)
        den = expect(lambda z: h(z) ** 2)
        return expect(lambda z: u(z) * h(z)) / den if den > 0 else 0.0

    def score_terms(self, baseline):
        s = {"loc": lambda z: z / self.sigma, "log_scale": lambda z: z * z - 1.0}
        out = {}
        for name, h in s.items():
            def u(z, h=h):
                return self.fx(z) * h(z)
            b = self.baseline_value(baseline, u, h)
            out[name] = lambda z, u=u, h=h, b=b: u(z) - b * h(z)
        return out

    def antithetic_terms(self, baseline):
        sig = self.sigma
        pairs = {
            "loc": (lambda z: 0.5 * (self.fx(z) - self.fx(-z)) * z / sig, lambda z: 0.0 * z),
            "log_scale": (lambda z: 0.5 * (z * z - 1.0) * (self.fx(z) + self.fx(-z)),
                          lambda z: z * z - 1.0),
        }
        out = {}
        for name, (u, h) in pairs.items():
            b = self.baseline_value(baseline, u, h)
            out[name] = lambda z, u=u, h=h, b=b: u(z) - b * h(z)
        return out

    def pathwise_terms(self):
        return {"loc": lambda z: 2.0 * (self.mu + self.sigma * z - self.k),
                "log_scale": lambda z: 2.0 * (self.mu + self.sigma * z - self.k)
                * self.sigma * z}

    def mvd_moments(self):
        mu, sig, k = self.mu, self.sigma, self.k

        def f(x):
            return (x - k) ** 2

        def t_loc(w):
            return (f(mu + sig * w) - f(mu - sig * w)) / (sig * SQRT_2PI)

        def t_ls(z, e):
            d = math.copysign(math.sqrt(2.0 * e + z * z), z)
            return f(mu + sig * d) - f(mu + sig * z)

        return {"loc": moments_from(rayleigh_expect, t_loc),
                "log_scale": moments_from(normal_exp_expect, t_ls)}


CASES = [Quadratic(1.0, 1.0, 1.0), Quadratic(1.0, 1.0, -3.0),
         Quadratic(-0.4, math.exp(-0.5), 0.7)]


def _check_estimate(est, moments: dict, exact: dict, n: int):
    """grad within 5 SE of the exact gradient, var within 5 SE of the exact variance."""
    for name, (mean, var, m4) in moments.items():
        assert mean == pytest.approx(exact[name], rel=1e-9, abs=1e-9), (name, "oracle")
        g, v = float(est.grad[name]), float(est.var[name])
        se = math.sqrt(var / n)
        assert abs(g - exact[name]) <= 5 * se + 1e-9, (name, g, exact[name], se)
        assert abs(v - var) <= 5 * var_se(var, m4, n) + 1e-9, (name, v, var,
                                                                 var_se(var, m4, n))
        assert float(est.stderr[name]) == pytest.approx(math.sqrt(v / n), rel=1e-12)
    assert est.n == n


# ----------------------------------------------------------------------------- the oracle
def test_oracle_reproduces_the_published_variances():
    """x ~ N(1, 1), f = (x - 1)^2: single-draw variances of d/dmu: score function 15,
    exact mean baseline 10, exact optimal baseline 6, pathwise 4; k = -3: 495."""
    q = Quadratic(1.0, 1.0, 1.0)
    loc_var = {b: moments_from(expect, q.score_terms(b)["loc"])[1]
               for b in (None, "mean", "optimal")}
    assert loc_var[None] == pytest.approx(15.0, rel=1e-12)
    assert loc_var["mean"] == pytest.approx(10.0, rel=1e-12)
    assert loc_var["optimal"] == pytest.approx(6.0, rel=1e-12)
    assert moments_from(expect, q.pathwise_terms()["loc"])[1] == pytest.approx(4.0, rel=1e-12)
    q3 = Quadratic(1.0, 1.0, -3.0)
    assert moments_from(expect, q3.score_terms(None)["loc"])[1] == pytest.approx(495.0,
                                                                                 rel=1e-12)
    # Gauss-Hermite against adaptive quadrature, for a non-polynomial check of the rule
    t = q3.score_terms("optimal")["log_scale"]
    quad = integrate.quad(lambda z: t(z) ** 2 * math.exp(-0.5 * z * z) / SQRT_2PI,
                          -np.inf, np.inf, epsabs=1e-12)[0]
    assert expect(lambda z: t(z) ** 2) == pytest.approx(quad, rel=1e-9)


# ----------------------------------------------------------------------------- variances
N_VAR = 2**18


@pytest.mark.parametrize("baseline", [None, "loo", "optimal"])
@pytest.mark.parametrize("q", CASES, ids=repr)
def test_score_function_matches_exact_gradient_and_variance(q, baseline):
    est = lf.score_function(q.dist(), q.f, N_VAR, seed=11, baseline=baseline)
    moments = {k: moments_from(expect, t) for k, t in q.score_terms(baseline).items()}
    _check_estimate(est, moments, q.exact, N_VAR)


@pytest.mark.parametrize("baseline", [None, "loo", "optimal"])
@pytest.mark.parametrize("q", CASES, ids=repr)
def test_antithetic_matches_exact_gradient_and_variance(q, baseline):
    """var is the variance of the per-pair averaged terms."""
    est = lf.antithetic(q.dist(), q.f, N_VAR, seed=12, baseline=baseline)
    moments = {k: moments_from(expect, t) for k, t in q.antithetic_terms(baseline).items()}
    _check_estimate(est, moments, q.exact, N_VAR)
    assert est.estimator == "antithetic"


@pytest.mark.parametrize("q", CASES, ids=repr)
def test_pathwise_matches_exact_gradient_and_variance(q):
    est = lf.pathwise(q.dist(), q.f_elem, q.df_elem, N_VAR, seed=13)
    moments = {k: moments_from(expect, t) for k, t in q.pathwise_terms().items()}
    _check_estimate(est, moments, q.exact, N_VAR)
    # the objective E f = sigma^2 + (mu - k)^2
    assert est.extra["objective"] == pytest.approx(q.sigma**2 + (q.mu - q.k) ** 2,
                                                   abs=5 * math.sqrt(
                                                       moments_from(expect, q.fx)[1] / N_VAR))


@pytest.mark.parametrize("q", CASES, ids=repr)
def test_measure_valued_matches_exact_gradient_and_variance(q):
    est = lf.measure_valued(q.dist(), q.f, N_VAR, seed=14)
    _check_estimate(est, q.mvd_moments(), q.exact, N_VAR)


def test_the_estimators_rank_as_the_literature_says():
    """For f = (x - 1)^2 at mu = sigma = 1 (Mohamed et al. 2020, sec. 8): d/dmu variance
    score (15) > mean baseline (10) > optimal (6) > pathwise (4)."""
    q = CASES[0]
    d = q.dist()
    v = [float(lf.score_function(d, q.f, 2**16, seed=3, baseline=b).var["loc"])
         for b in (None, "loo", "optimal")]
    v.append(float(lf.pathwise(d, q.f_elem, q.df_elem, 2**16, seed=3).var["loc"]))
    assert v == sorted(v, reverse=True)


# ----------------------------------------------------------------------------- unbiasedness
def _flat(est):
    return np.concatenate([np.ravel(est.grad[k]) for k in sorted(est.grad)])


def _exact_flat(q):
    return np.array([q.exact[k] for k in sorted(q.exact)])


def _seed_average(run, seeds):
    grads = np.array([_flat(run(s)) for s in range(seeds)])
    return grads.mean(axis=0), grads.std(axis=0, ddof=1) / math.sqrt(seeds)


SEEDS = 1500
Q_SMALL = Quadratic(1.0, 1.0, -3.0)


@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 4, 8])
@pytest.mark.parametrize("baseline", ["loo", "optimal"])
def test_streaming_baselines_are_unbiased_at_small_n(baseline, n):
    q = Q_SMALL
    d = q.dist()
    mean, se = _seed_average(
        lambda s: lf.score_function(d, q.f, n, seed=s, baseline=baseline), SEEDS)
    assert np.all(np.abs(mean - _exact_flat(q)) <= 5 * se), (mean, se)


@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 8])
@pytest.mark.parametrize("baseline", ["loo", "optimal"])
def test_antithetic_baselines_are_unbiased_at_small_n(baseline, n):
    q = Q_SMALL
    d = q.dist()
    mean, se = _seed_average(
        lambda s: lf.antithetic(d, q.f, n, seed=s, baseline=baseline), SEEDS)
    exact = _exact_flat(q)
    # the loc pair terms have no noise here; the others must be within 5 SE
    assert np.all(np.abs(mean - exact) <= 5 * se + 1e-9), (mean, se)


@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 4, 8])
def test_rewards_path_baselines_are_unbiased_and_a_naive_optimal_is_not(n):
    q = Q_SMALL
    d = q.dist()
    grads = {"loo": [], "optimal": [], "naive": []}
    for seed in range(SEEDS):
        x = d.sample(n, seed=seed)
        r = (x - q.k) ** 2
        for baseline in ("loo", "optimal"):
            grads[baseline].append(_flat(lf.score_function(d, rewards=r, x=x,
                                                           baseline=baseline)))
        # the in-sample optimal baseline (same draws), to show the test has power
        s = d.score(x)
        grads["naive"].append([np.mean((r - np.sum(r * s[k] ** 2) / np.sum(s[k] ** 2)) * s[k])
                               for k in sorted(s)])
    exact = _exact_flat(q)
    for name, g in grads.items():
        g = np.array(g)
        mean, se = g.mean(axis=0), g.std(axis=0, ddof=1) / math.sqrt(SEEDS)
        if name == "naive":
            assert np.any(np.abs(mean - exact) > 5 * se), (mean, se)
        else:
            assert np.all(np.abs(mean - exact) <= 5 * se), (name, mean, se)


@pytest.mark.parametrize("n", [2, 3, 10])
def test_mean_baseline_has_exactly_the_documented_bias(n):
    """grad_mean = (n-1)/n grad_loo draw by draw, so E[grad_mean] = (n-1)/n grad."""
    q = Q_SMALL
    d = q.dist()
    for seed in range(5):
        mean_est = lf.score_function(d, q.f, n, seed=seed, baseline="mean")
        loo_est = lf.score_function(d, q.f, n, seed=seed, baseline="loo")
        np.testing.assert_allclose(_flat(mean_est), (n - 1) / n * _flat(loo_est), rtol=1e-10,
                                   atol=1e-12)
        x = d.sample(n, seed=seed)
        rew = {b: lf.score_function(d, rewards=(x - q.k) ** 2, x=x, baseline=b)
               for b in ("mean", "loo")}
        np.testing.assert_allclose(_flat(rew["mean"]), (n - 1) / n * _flat(rew["loo"]),
                                   rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_mean_baseline_bias_is_visible_across_seeds():
    q = Q_SMALL
    d = q.dist()
    n = 2
    mean, se = _seed_average(lambda s: lf.score_function(d, q.f, n, seed=s, baseline="mean"),
                             SEEDS)
    exact = _exact_flat(q)
    assert np.all(np.abs(mean - (n - 1) / n * exact) <= 5 * se), (mean, se)
    assert abs(mean[0] - exact[0]) > 5 * se[0]  # d/dloc: 4 instead of 8


def test_broadcast_parameters_and_several_atoms():
    """loc shared by 3 atoms (its gradient sums over them), log_scale per atom;
    f = sum_b (x_b - k_b)^2: d/dloc = sum_b 2 (mu - k_b), d/dlog_scale_b = 2 sigma_b^2."""
    k = np.array([0.5, -1.0, 2.0])
    log_scale = np.array([0.0, -0.5, 0.3])
    mu = 0.25
    d = lf.Normal(mu, log_scale)

    @numba.njit
    def f(x):
        return np.sum((x - k) ** 2)

    @numba.njit
    def f_elem(x):
        return x * x

    @numba.njit
    def df_elem(x):
        return 2.0 * x

    exact = {"loc": np.sum(2.0 * (mu - k)), "log_scale": 2.0 * np.exp(2 * log_scale)}
    n = 2**16
    ests = [lf.score_function(d, f, n, seed=1, baseline=b) for b in (None, "loo", "optimal")]
    ests += [lf.antithetic(d, f, n, seed=2, baseline="optimal"),
             lf.measure_valued(d, f, n, seed=3)]
    for est in ests:
        assert est.grad["loc"].shape == () and est.grad["log_scale"].shape == (3,)
        for name in exact:
            assert np.all(np.abs(est.grad[name] - exact[name]) <= 5 * est.stderr[name]), \
                (est.estimator, name, est.grad[name], exact[name])
    # the pathwise objective sum_b x_b^2 has gradient 2 mu * 3 and 2 sigma_b^2
    est = lf.pathwise(d, f_elem, df_elem, n, seed=4)
    for name, ex in (("loc", 6 * mu), ("log_scale", 2.0 * np.exp(2 * log_scale))):
        assert np.all(np.abs(est.grad[name] - ex) <= 5 * est.stderr[name]), (name, est.grad)


# ----------------------------------------------------------------------------- Categorical
LOGITS = np.array([0.5, -1.0, 0.0, 1.5])
VALUES = np.array([1.0, 4.0, -2.0, 0.5])


@numba.njit
def _cat_reward(x):
    return VALUES[x[0]]


def _categorical_moments(probs, values, baseline):
    """Exact mean, variance, m4 of (v_x - b_j)(onehot(x)_j - p_j) by enumeration."""
    K = probs.size
    s = np.eye(K) - probs[None, :]  # s[x, j]
    out = []
    for j in range(K):
        if baseline is None:
            b = 0.0
        elif baseline in ("mean", "loo"):
            b = probs @ values
        else:
            b = np.sum(probs * values * s[:, j] ** 2) / np.sum(probs * s[:, j] ** 2)
        t = (values - b) * s[:, j]
        m = probs @ t
        out.append((m, probs @ (t - m) ** 2, probs @ (t - m) ** 4))
    return np.array(out).T


@pytest.mark.parametrize("baseline", [None, "loo", "optimal"])
def test_categorical_matches_enumeration(baseline):
    d = lf.Categorical(LOGITS)
    p = np.exp(LOGITS) / np.exp(LOGITS).sum()
    exact = p * (VALUES - p @ VALUES)
    mean, var, m4 = _categorical_moments(p, VALUES, baseline)
    np.testing.assert_allclose(mean, exact, rtol=1e-12, atol=1e-15)
    n = 2**17
    est = lf.score_function(d, _cat_reward, n, seed=21, baseline=baseline)
    se = np.sqrt(var / n)
    assert np.all(np.abs(est.grad["logits"] - exact) <= 5 * se), (est.grad, exact)
    vse = np.array([var_se(v, m, n) for v, m in zip(var, m4)])
    assert np.all(np.abs(est.var["logits"] - var) <= 5 * vse), (est.var, var)


def test_categorical_masked_classes_give_exact_zeros():
    mask = np.array([True, False, True, True])
    d = lf.Categorical(LOGITS, mask=mask)
    for baseline in (None, "mean", "loo", "optimal"):
        est = lf.score_function(d, _cat_reward, 5000, seed=2, baseline=baseline)
        assert np.all(np.isfinite(est.grad["logits"])) and np.all(np.isfinite(est.var["logits"]))
        assert est.grad["logits"][1] == 0.0 and est.var["logits"][1] == 0.0
        x = d.sample(500, seed=3)
        rew = lf.score_function(d, rewards=VALUES[x], x=x, baseline=baseline)
        assert rew.grad["logits"][1] == 0.0 and np.all(np.isfinite(rew.var["logits"]))


def test_categorical_has_no_pathwise_antithetic_or_mvd():
    d = lf.Categorical(LOGITS)
    with pytest.raises(TypeError, match="dist.*reflect1"):
        lf.antithetic(d, _cat_reward, 10)
    with pytest.raises(TypeError, match="dist.*reparam1"):
        lf.pathwise(d, _scalar_sq, _scalar_sq, 10)
    with pytest.raises(TypeError, match="dist.*Normal"):
        lf.measure_valued(d, _cat_reward, 10)


@numba.njit
def _scalar_sq(x):
    return x * x


# ----------------------------------------------------------------------------- cross-checks
@pytest.mark.parametrize("baseline", [None, 0.7, "mean", "loo", "optimal"])
def test_streaming_equals_rewards_path_and_numpy_backend(baseline):
    """Same draws, same estimator: streaming (cpu and numpy backends) and the rewards
    path agree to rounding, for every baseline (the cross-fitting folds included)."""
    n = 3000  # several lanes, folds of unequal size
    d = lf.Normal(np.array([-0.4, 0.3]), np.array([-0.5, 0.1]))

    @numba.njit
    def f(x):
        return (x[0] - 0.7) ** 2 + x[0] * x[1]

    stream_cpu = lf.score_function(d, f, n, seed=5, baseline=baseline)
    dn = lf.Normal(np.array([-0.4, 0.3]), np.array([-0.5, 0.1]), backend="numpy")
    stream_np = lf.score_function(dn, f, n, seed=5, baseline=baseline)
    x = d.sample(n, seed=5)
    r = np.array([f(row) for row in x])
    rew = lf.score_function(d, rewards=r, x=x, baseline=baseline, return_terms=True)
    for k in ("loc", "log_scale"):
        for other in (stream_np, rew):
            np.testing.assert_allclose(stream_cpu.grad[k], other.grad[k], rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(stream_cpu.var[k], other.var[k], rtol=1e-9, atol=1e-12)
        assert rew.terms[k].shape == (n, 2)
        np.testing.assert_allclose(rew.terms[k].mean(axis=0), rew.grad[k], rtol=1e-12)


def test_optimal_with_n_folds_equal_n_is_leave_one_out():
    """n_folds = n: each draw's baseline is b_j = sum_{i' != i} r s_j^2 / sum_{i' != i} s_j^2
    (computed here by hand)."""
    d = lf.Normal(np.array([0.2, -0.3]), np.array([0.0, 0.4]))
    n = 7
    x = d.sample(n, seed=8)
    r = np.sin(3 * x[:, 0]) + x[:, 1] ** 2
    est = lf.score_function(d, rewards=r, x=x, baseline="optimal", n_folds=n, return_terms=True)
    s = d.score(x)
    for k in ("loc", "log_scale"):
        sc = s[k]
        num, den = (r[:, None] * sc * sc).sum(0), (sc * sc).sum(0)
        b = (num[None] - r[:, None] * sc * sc) / (den[None] - sc * sc)
        terms = (r[:, None] - b) * sc
        np.testing.assert_allclose(est.terms[k], terms, rtol=1e-12)
        np.testing.assert_allclose(est.grad[k], terms.mean(0), rtol=1e-12)
        np.testing.assert_allclose(est.var[k], terms.var(0, ddof=1), rtol=1e-12)


def test_per_element_rewards_and_event_dims():
    """rewards (n, *batch_shape): each element's reward multiplies its own score."""
    d = lf.Normal(np.array([[0.1, -0.2], [0.3, 0.0]]), 0.0, event_ndims=1)  # batch (2,), event 2
    n = 50
    x = d.sample(n, seed=1)
    r = x.sum(axis=2) ** 2  # (n, 2)
    s = d.score(x)
    for baseline in (None, "loo", "optimal"):
        est = lf.score_function(d, rewards=r, x=x, baseline=baseline, return_terms=True)
        assert est.grad["loc"].shape == (2, 2) and est.grad["log_scale"].shape == ()
        assert est.terms["log_scale"].shape == (n,)
    est = lf.score_function(d, rewards=r, x=x, return_terms=True)
    np.testing.assert_allclose(est.terms["loc"], r[:, :, None] * s["loc"], rtol=1e-12)
    np.testing.assert_allclose(est.terms["log_scale"],
                               (r[:, :, None] * s["log_scale"]).sum(axis=(1, 2)), rtol=1e-12)


def test_float32_stays_float32():
    q = CASES[1]
    d32, d64 = q.dist(np.float32), q.dist(np.float64)
    n = 20_000
    runs = [lambda d: lf.score_function(d, q.f, n, seed=1, baseline="optimal"),
            lambda d: lf.antithetic(d, q.f, n, seed=1, baseline="loo"),
            lambda d: lf.pathwise(d, q.f_elem, q.df_elem, n, seed=1),
            lambda d: lf.measure_valued(d, q.f, n, seed=1)]
    for run in runs:
        e32, e64 = run(d32), run(d64)
        for k in e32.grad:
            assert e32.grad[k].dtype == np.float32 and e32.var[k].dtype == np.float32
            # float32 draws differ from float64 ones; both must be near the exact value
            assert abs(float(e32.grad[k]) - q.exact[k]) <= 5 * float(e64.stderr[k]) * 1.5


# ----------------------------------------------------------------------------- EMA
def test_ema_zero_debiasing_arithmetic():
    ema = lf.EMA(0.9)
    assert ema.value == 0.0 and ema.t == 0
    ema.update(3.0)
    assert ema.value == pytest.approx(3.0, rel=1e-15)  # debiased: not 0.3
    ema.update(5.0)
    assert ema.value == pytest.approx((0.9 * 0.1 * 3.0 + 0.1 * 5.0) / (1 - 0.9**2), rel=1e-15)
    ema.reset()
    assert ema.t == 0 and ema.value == 0.0


def test_ema_uses_the_value_from_before_the_call_then_updates():
    q = Q_SMALL
    d = q.dist()
    ema = lf.EMA(0.5)
    values = []
    for seed in range(4):
        before = ema.value
        est = lf.score_function(d, q.f, 500, seed=seed, baseline=ema)
        const = lf.score_function(d, q.f, 500, seed=seed, baseline=float(before))
        np.testing.assert_allclose(_flat(est), _flat(const), rtol=1e-10, atol=1e-12)
        assert est.extra["baseline_value"] == before
        values.append(est.extra["mean_reward"])
        assert est.baseline == "ema" and ema.t == seed + 1
    acc = 0.0
    for v in values:
        acc = 0.5 * acc + 0.5 * v
    assert ema.value == pytest.approx(acc / (1 - 0.5**4), rel=1e-12)
    # rewards path: per-element rewards keep a per-element state
    d2 = lf.Normal(np.zeros(3), 0.0)
    ema2 = lf.EMA(0.9)
    x = d2.sample(40, seed=1)
    lf.score_function(d2, rewards=x**2, x=x, baseline=ema2)
    np.testing.assert_allclose(ema2.value, (x**2).mean(axis=0), rtol=1e-12)
    est = lf.score_function(d2, rewards=x**2, x=x, baseline=ema2)
    const = lf.score_function(d2, rewards=x**2 - (x**2).mean(axis=0), x=x)
    np.testing.assert_allclose(est.grad["loc"], const.grad["loc"], rtol=1e-10)


@pytest.mark.slow
def test_ema_baseline_is_unbiased_across_calls():
    q = Q_SMALL
    d = q.dist()
    ema = lf.EMA(0.8)
    mean, se = _seed_average(lambda s: lf.score_function(d, q.f, 2, seed=s, baseline=ema),
                             SEEDS)
    assert np.all(np.abs(mean - _exact_flat(q)) <= 5 * se), (mean, se)
    ema_a = lf.EMA(0.8)
    mean, se = _seed_average(lambda s: lf.antithetic(d, q.f, 2, seed=s, baseline=ema_a), 400)
    assert np.all(np.abs(mean - _exact_flat(q)) <= 5 * se + 1e-9), (mean, se)


# ----------------------------------------------------------------------------- by name
def test_estimate_by_name_equals_the_functions():
    q = CASES[1]
    d = q.dist()
    n = 5000
    pairs = [
        (lf.estimate(d, q.f, n, 3, estimator="score", baseline="loo"),
         lf.score_function(d, q.f, n, 3, baseline="loo")),
        (lf.estimate(d, q.f, n, 3, estimator="antithetic", baseline="optimal"),
         lf.antithetic(d, q.f, n, 3, baseline="optimal")),
        (lf.estimate(d, q.f_elem, n, 3, estimator="pathwise", df=q.df_elem),
         lf.pathwise(d, q.f_elem, q.df_elem, n, 3)),
        (lf.estimate(d, q.f, n, 3, estimator="mvd"), lf.measure_valued(d, q.f, n, 3)),
    ]
    for a, b in pairs:
        np.testing.assert_array_equal(_flat(a), _flat(b))


def test_mvd_and_score_function_need_no_differentiable_f():
    """f(x) = 1[x > c]: E f = Phi(u), u = (mu - c)/sigma, so d/dmu = phi(u)/sigma and
    d/dlog_sigma = -u phi(u).  The pathwise estimator does not apply (f' = 0 a.e.)."""
    mu, log_sigma, c = 0.3, -0.2, 0.8
    sigma = math.exp(log_sigma)
    u = (mu - c) / sigma
    phi = math.exp(-0.5 * u * u) / SQRT_2PI
    exact = {"loc": phi / sigma, "log_scale": -u * phi}

    @numba.njit
    def step(x):
        return 1.0 if x[0] > c else 0.0

    d = lf.Normal(mu, log_sigma)
    for est in (lf.measure_valued(d, step, 2**17, seed=9),
                lf.score_function(d, step, 2**17, seed=9, baseline="optimal")):
        for k, ex in exact.items():
            assert abs(float(est.grad[k]) - ex) <= 5 * float(est.stderr[k]), (est.estimator, k)


@numba.njit
def _first_coordinate(x):
    return x[0]


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_a_constant_baseline_whose_terms_overflow_is_a_clear_error(backend):
    """Issue 15, item 15: baseline=1e308 gave grad -inf (streaming) or NaN (rewards
    path) silently; 1e200 an infinite variance."""
    d = lf.Normal(0.0, 0.0, backend=backend)
    x = d.sample(64, seed=1)
    for b in (1e308, 1e200, -1e308):
        with pytest.raises(ValueError, match="overflow float64.*baseline"):
            lf.score_function(d, _first_coordinate, 64, baseline=b)
        with pytest.raises(ValueError, match="overflow float64.*baseline"):
            lf.score_function(d, rewards=x, x=x, baseline=b)
        if backend == "cpu":
            with pytest.raises(ValueError, match="overflow float64.*baseline"):
                lf.antithetic(d, _first_coordinate, 64, baseline=b)
    est = lf.score_function(d, _first_coordinate, 64, baseline=1e100)  # still representable
    assert np.isfinite(est.var["loc"]) and np.isfinite(est.grad["loc"])
