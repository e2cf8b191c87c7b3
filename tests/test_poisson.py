"""Poisson: both samplers from tiny to huge rates, the exact log-mass, entropy, edges."""

import math

import numpy as np
import pytest
from cases.poisson import entropy_by_sum, entropy_series, log_pmf_exact
from scipy import stats

from lograd_fast.families import poisson as poisson_module
from lograd_fast.families.poisson import Poisson

RATES = [1e-6, 0.5, 9.99, 10.0, 1e3, 1e7, 2.0**50]


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_sample_mean_and_variance_match_the_rate(backend):
    rates = np.array(RATES)
    n = 20_000
    x = Poisson(np.log(rates), backend=backend).sample(n, seed=21)
    assert x.dtype == np.int64 and (x >= 0).all()
    xf = x.astype(np.float64)
    mean = xf.mean(axis=0)
    var = xf.var(axis=0, ddof=1)
    # SE of the mean sqrt(l/n); of the sample variance sqrt((mu4 - l^2)/n), mu4 = l(1+3l)
    assert np.all(np.abs(mean - rates) <= 5 * np.sqrt(rates / n)), (mean, rates)
    se_var = np.sqrt((rates + 2 * rates**2) / n)
    assert np.all(np.abs(var - rates) <= 5 * se_var + 1e-12), (var, rates)


@pytest.mark.parametrize("rate", [0.5, 9.99, 10.0, 10.01, 37.0, 250.0])
def test_chi_square_against_the_pmf(rate):
    """Both samplers, on either side of the switch at 10."""
    n = 30_000
    x = Poisson(np.log(rate)).sample(n, seed=22)
    dist = stats.poisson(rate)
    lo, hi = int(dist.ppf(1e-3)), int(dist.isf(1e-3))
    edges = np.arange(lo, hi + 2)
    # cells: (-inf, lo], lo+1, ..., hi, (hi, inf)
    counts = np.array([np.sum(x <= lo)] + [np.sum(x == k) for k in edges[1:-1]]
                      + [np.sum(x > hi)])
    probs = np.array([dist.cdf(lo)] + [dist.pmf(k) for k in edges[1:-1]] + [dist.sf(hi)])
    assert counts.sum() == n
    assert stats.chisquare(counts, probs / probs.sum() * n).pvalue > 1e-6


@pytest.mark.parametrize("rate", [1e7, 2.0**50])
def test_huge_rates_are_normal_after_standardising(rate):
    n = 20_000
    x = Poisson(np.log(rate)).sample(n, seed=23).astype(np.float64)
    z = (x - rate) / math.sqrt(rate)
    # skewness 1/sqrt(rate) < 3e-4: indistinguishable from N(0, 1) at this n
    assert stats.kstest(z, "norm").pvalue > 1e-6


def test_log_prob_at_zero_and_negative_counts():
    rates = np.array([1e-6, 0.5, 10.0, 1e7])
    d = Poisson(np.log(rates))
    np.testing.assert_array_equal(d.log_prob(np.zeros(4, np.int64)), -d._record.rate)
    np.testing.assert_array_equal(d.log_prob(np.array([-1, -5, -1, -(2**62)])), -np.inf)
    np.testing.assert_array_equal(d.score(np.array([-1, 0, -3, 0]))["log_rate"],
                                  [0.0, -d._record.rate[1], 0.0, -d._record.rate[3]])
    # float counts must be integral; integral floats are fine
    np.testing.assert_array_equal(d.log_prob(np.array([0.0, 1.0, 2.0, 3.0])),
                                  d.log_prob(np.array([0, 1, 2, 3])))
    with pytest.raises(ValueError, match="integer"):
        d.log_prob(np.array([0.0, 1.5, 2.0, 3.0]))


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("log_rate", [math.log(r) for r in (1e-6, 3.0, 15.5, 16.0, 200.0, 1e7,
                                                               2.0**50)] + [-740.0])
def test_log_prob_against_exact_decimal_arithmetic(log_rate, backend):
    """Every branch (table below 16; series, log1p and, for the subnormal rate
    exp(-740), direct bd0) against 50-digit arithmetic."""
    rate = math.exp(log_rate)
    sd = math.sqrt(rate)
    ks = {0, 1, 15, 16, 17, 40}
    for t in (-30, -10, -3, -1, 0, 1, 3, 10, 30):
        ks.add(max(0, int(rate + t * sd)))
    # both sides of the |k - rate| = 0.1 (k + rate) switch of bd0, and far tails
    for c in (rate * 0.9 / 1.1, rate * 1.1 / 0.9, 3 * rate, 10 * rate + 50):
        ks.update({max(0, int(c) - 1), int(c), int(c) + 1})
    k = np.array(sorted(ks), np.int64)
    d = Poisson(np.full(k.shape, log_rate), backend=backend)
    got = d.log_prob(k)
    ref = np.array([log_pmf_exact(int(v), log_rate) for v in k])
    np.testing.assert_allclose(got, ref, rtol=4e-15, atol=4e-15)


@pytest.mark.parametrize("rate", [0.5, 9.99, 10.0, 1e3, 1e5])
def test_the_mass_sums_to_one(rate):
    sd = math.sqrt(rate)
    k = np.arange(max(0, int(rate - 15 * sd)), int(rate + 15 * sd + 40), dtype=np.int64)
    d = Poisson(np.full(k.shape, math.log(rate)))
    assert math.fsum(np.exp(d.log_prob(k))) == pytest.approx(1.0, abs=1e-13)


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_entropy_against_summation_and_the_series(backend):
    rates = np.array([1e-6, 0.5, 9.99, 10.0, 400.0, 999.999, 1000.0, 1e4, 1e5])
    got = Poisson(np.log(rates), backend=backend).entropy()
    ref = np.array([entropy_by_sum(math.log(r)) for r in rates])
    np.testing.assert_allclose(got, ref, rtol=2e-14, atol=1e-15)
    huge = np.array([1e7, 2.0**50])
    np.testing.assert_allclose(Poisson(np.log(huge), backend=backend).entropy(),
                               [entropy_series(r) for r in huge], rtol=1e-15)


def test_the_entropy_series_is_continuous_at_its_threshold():
    t = poisson_module.ENTROPY_SERIES_MIN_RATE
    below = Poisson(np.log(np.nextafter(t, 0.0))).entropy()
    at = Poisson(np.log(t)).entropy()
    assert abs(at - below) < 1e-14


def test_rate_underflow_is_the_point_mass_at_zero():
    d = Poisson(np.array([-800.0]))
    assert d._record.rate[0] == 0.0
    assert (d.sample(100, seed=1) == 0).all()
    lp = d.log_prob(np.array([[0], [1], [20]]))
    np.testing.assert_array_equal(lp[:2, 0], [0.0, -800.0])
    assert lp[2, 0] == pytest.approx(-16000.0 - math.lgamma(21.0), rel=1e-15)
    assert d.entropy()[0] == 0.0


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_kl_against_enumeration_and_for_nearby_rates(backend):
    lp_rate = np.log(np.array([0.5, 3.0, 12.0, 40.0]))
    lq_rate = np.log(np.array([2.0, 2.5, 30.0, 41.0]))
    kl = Poisson(lp_rate, backend=backend).kl(Poisson(lq_rate, backend=backend))
    k = np.arange(200)
    ref = [np.sum(stats.poisson.pmf(k, math.exp(a))
                  * (stats.poisson.logpmf(k, math.exp(a)) - stats.poisson.logpmf(k, math.exp(b))))
           for a, b in zip(lp_rate, lq_rate)]
    np.testing.assert_allclose(kl, ref, rtol=1e-12)
    # p ~ q: KL = rate (d^2/2 - d^3/6 + ...) without cancellation
    d = 1e-7
    near = Poisson(np.array([math.log(1e6)]), backend=backend).kl(
        Poisson(np.array([math.log(1e6) - d]), backend=backend))
    assert near[0] == pytest.approx(1e6 * (d * d / 2 - d**3 / 6), rel=1e-8)


def test_cpu_and_numpy_draw_the_same_counts_on_either_side_of_every_switch():
    rates = np.array([9.999999, 10.0, 10.000001, 1e-300, 123.4, 1e12])
    a = Poisson(np.log(rates)).sample(500, seed=4)
    b = Poisson(np.log(rates), backend="numpy").sample(500, seed=4)
    np.testing.assert_array_equal(a, b)


def test_float32_without_overflow():
    log_rate = np.array([30.0, -30.0, 2.0], np.float32)  # rate 1e13, 1e-13, 7.4
    d32 = Poisson(log_rate)
    d64 = Poisson(log_rate.astype(np.float64))
    x, lp, s = d32.sample_and_score(50, seed=2)
    np.testing.assert_array_equal(x, d64.sample(50, seed=2))
    assert lp.dtype == np.float32 and np.isfinite(lp).all()
    assert np.isfinite(s["log_rate"]).all()
    np.testing.assert_allclose(lp, d64.log_prob(x), rtol=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match="log_rate"):
        Poisson(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="log_rate"):
        Poisson(np.array([np.inf]))
    with pytest.raises(ValueError, match="log_rate"):
        Poisson(np.array([40.0]))  # rate 2.4e17 > 2**52
    with pytest.raises(ValueError, match="x has shape"):
        Poisson(np.zeros(3)).log_prob(np.zeros((2, 4), np.int64))
    with pytest.raises(ValueError, match="shapes differ"):
        Poisson(np.zeros(3)).kl(Poisson(np.zeros(2)))
