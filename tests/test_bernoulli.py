"""Bernoulli: probabilities exactly 0/1 at extreme logits, -inf logits, the support."""

import numpy as np
import pytest
from scipy import special

from lograd_fast.families.bernoulli import Bernoulli

BACKENDS = ["cpu", "numpy"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_extreme_logits_give_exact_probabilities_and_finite_log_probs(backend):
    logits = np.array([800.0, -800.0, 1e3, -1e3])
    d = Bernoulli(logits, backend=backend)
    np.testing.assert_array_equal(d.probs, [1.0, 0.0, 1.0, 0.0])
    x, lp, s = d.sample_and_score(500, seed=3)
    np.testing.assert_array_equal(x, np.broadcast_to([1, 0, 1, 0], x.shape))
    np.testing.assert_array_equal(lp, 0.0)
    np.testing.assert_array_equal(s["logits"], 0.0)
    # the impossible outcomes: finite log-probabilities (log-sigmoid), exact scores
    other = 1 - x[:1]
    np.testing.assert_array_equal(d.log_prob(other), [[-800.0, -800.0, -1e3, -1e3]])
    np.testing.assert_array_equal(d.score(other)["logits"], [[-1.0, 1.0, -1.0, 1.0]])
    np.testing.assert_array_equal(d.entropy(), 0.0)
    assert np.isfinite(d.kl(Bernoulli(logits[::-1].copy(), backend=backend))).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_scores_near_certainty_keep_their_relative_accuracy(backend):
    logits = np.array([40.0, -40.0, 700.0])
    d = Bernoulli(logits, backend=backend)
    s1 = d.score(np.ones(3, np.int64))["logits"]
    s0 = d.score(np.zeros(3, np.int64))["logits"]
    # d/dl log sigma(l) = sigma(-l), here ~4e-18 and ~1e-304: not rounded to 0
    np.testing.assert_allclose(s1, special.expit(-logits), rtol=1e-14)
    np.testing.assert_allclose(s0, -special.expit(logits), rtol=1e-14)
    assert s1[0] > 0 and s1[2] > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_minus_inf_logits_mean_probability_zero(backend):
    d = Bernoulli(np.array([-np.inf, 0.0]), backend=backend)
    np.testing.assert_array_equal(d.probs, [0.0, 0.5])
    x = d.sample(300, seed=1)
    assert (x[:, 0] == 0).all() and 0 < x[:, 1].sum() < 300
    lp = d.log_prob(np.array([[1, 1], [0, 0]]))
    np.testing.assert_array_equal(lp[:, 0], [-np.inf, 0.0])
    np.testing.assert_array_equal(d.score(np.array([1, 0]))["logits"], [1.0, -0.5])
    np.testing.assert_allclose(d.entropy(), [0.0, np.log(2.0)], rtol=1e-15)
    q = Bernoulli(np.array([0.0, -np.inf]), backend=backend)
    kl = d.kl(q)  # p allows x = 1 in the second atom, q does not
    assert kl[0] == pytest.approx(np.log(2.0), rel=1e-15) and kl[1] == np.inf
    assert not np.isnan(q.kl(d)).any()


@pytest.mark.parametrize("backend", BACKENDS)
def test_exact_enumeration(backend):
    logits = np.array([-3.0, -0.2, 0.0, 1.7, 25.0])
    q_logits = np.array([0.5, 0.0, -1.0, 1.0, 20.0])
    d, q = Bernoulli(logits, backend=backend), Bernoulli(q_logits, backend=backend)
    both = np.array([np.zeros(5, np.int64), np.ones(5, np.int64)])
    lp, lq = d.log_prob(both), q.log_prob(both)
    np.testing.assert_allclose(np.exp(lp).sum(axis=0), 1.0, rtol=1e-15)
    np.testing.assert_allclose(d.entropy(), -(np.exp(lp) * lp).sum(axis=0), rtol=1e-13)
    np.testing.assert_allclose(d.kl(q), (np.exp(lp) * (lp - lq)).sum(axis=0), rtol=1e-12)
    # score = x - p, and its mean under p is exactly 0
    s = d.score(both)["logits"]
    np.testing.assert_allclose((np.exp(lp) * s).sum(axis=0), 0.0, atol=1e-16)
    np.testing.assert_allclose(d.mean, special.expit(logits), rtol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_values_outside_the_support(backend):
    d = Bernoulli(np.array([0.3, -1.0]), backend=backend)
    x = np.array([[2, -1], [5, 1]])
    lp = d.log_prob(x)
    np.testing.assert_array_equal(lp[0], [-np.inf, -np.inf])
    assert lp[1, 0] == -np.inf and np.isfinite(lp[1, 1])
    np.testing.assert_array_equal(d.score(x)["logits"][0], 0.0)
    # integral floats are fine
    np.testing.assert_array_equal(d.log_prob(np.array([1.0, 0.0])),
                                  d.log_prob(np.array([1, 0])))
    with pytest.raises(ValueError, match="integer"):
        d.log_prob(np.array([0.5, 1.0]))


def test_sampled_frequency_matches_the_probability():
    p = special.expit(np.array([-2.0, 0.4, 3.0]))
    n = 40_000
    x = Bernoulli(np.array([-2.0, 0.4, 3.0])).sample(n, seed=17)
    se = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(x.mean(axis=0) - p) <= 5 * se)


def test_float32_never_overflows():
    logits = np.array([100.0, -100.0, 88.0], np.float32)  # exp(100) overflows float32
    d32, d64 = Bernoulli(logits), Bernoulli(logits.astype(np.float64))
    x = np.array([0, 1, 0])
    lp32 = d32.log_prob(x)
    assert lp32.dtype == np.float32 and np.isfinite(lp32).all()
    np.testing.assert_allclose(lp32, d64.log_prob(x), rtol=1e-7)
    s32 = d32.score(x)["logits"]
    assert s32.dtype == np.float32 and np.isfinite(s32).all()
    ent = d32.entropy()  # ~1e-42: subnormal in float32, not NaN
    assert ent.dtype == np.float32
    # float32 rounding, including the subnormal spacing 1.4e-45
    np.testing.assert_allclose(ent, d64.entropy(), rtol=1e-6, atol=1e-44)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_bad_logits(bad):
    with pytest.raises(ValueError, match="logits"):
        Bernoulli(np.array([0.0, bad]))


def test_bad_shapes_and_dtypes():
    d = Bernoulli(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="x has shape"):
        d.log_prob(np.zeros((4, 2, 2), np.int64))
    with pytest.raises(TypeError, match="logits"):
        Bernoulli(np.array(["a"]))
    with pytest.raises(TypeError, match="x"):
        d.log_prob(np.zeros((2, 3), complex))
    # booleans are outcomes (False, True) = (0, 1): tests/test_errors.py
