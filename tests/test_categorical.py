"""Categorical from the logits in one pass: the per-row kernels agree bitwise with the
lazily built tables (so every backend draws the same classes), allowed classes whose
probability underflows keep their score, and the KL is exact at p = q, accurate for
p ~ q (40-digit mpmath references) and never negative."""

import mpmath
import numpy as np
import pytest

import lograd_fast as lf
from lograd_fast.families import categorical as cat

mpmath.mp.dps = 40


def _logits(B, K, seed=0, scale=2.0):
    return np.random.default_rng(seed).normal(scale=scale, size=(B, K))


MASK = np.array([[True, False, True, True, True], [False, True, True, True, True],
                 [True, True, True, True, False]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mask", [None, MASK], ids=["nomask", "mask"])
def test_one_pass_equals_the_tables_bitwise(dtype, mask):
    logits = _logits(3, 5).astype(dtype)
    logits[2, 1] = -np.inf  # masked by its logit
    logits[0, 3] = -745.0  # allowed, probability underflows to 0
    def fresh():  # its first operation reads the logits (one pass, no tables)
        return lf.Categorical(logits, mask=mask)

    n = cat.SMALL_N
    d = fresh()
    assert d._kernel_record(n) is d._record
    d = fresh()
    assert d._kernel_record(n + 1) is d.tables
    d = fresh()
    d.entropy()
    assert d._kernel_record(None) is d.tables  # a later operation: tables, built once
    # n=None and n <= SMALL_N read the logits, n > SMALL_N the tables: the same draws
    x, lp, s = fresh().sample_and_score(n, seed=4)
    many = fresh().sample_and_score(200, seed=4)
    np.testing.assert_array_equal(x, many[0][:n])
    np.testing.assert_array_equal(lp, many[1][:n])
    np.testing.assert_array_equal(s["logits"], many[2]["logits"][:n])
    np.testing.assert_array_equal(fresh().sample(n, seed=9), fresh().sample(300, seed=9)[:n])
    np.testing.assert_array_equal(fresh().sample(None, seed=9), fresh().sample(300, seed=9)[0])
    xs = many[0]
    np.testing.assert_array_equal(fresh().log_prob(xs[:n]), fresh().log_prob(xs)[:n])
    np.testing.assert_array_equal(fresh().score(xs[:n])["logits"],
                                  fresh().score(xs)["logits"][:n])
    np.testing.assert_array_equal(fresh().entropy(), d.entropy())
    lp2, s2 = fresh()._log_prob_and_score(xs[:n])
    np.testing.assert_array_equal(lp2, lp)
    np.testing.assert_array_equal(s2["logits"], s["logits"])
    # ... and the numpy backend (the reference) draws them too
    dn = lf.Categorical(logits, mask=mask, backend="numpy")
    np.testing.assert_array_equal(dn.sample(n, seed=4), x)
    np.testing.assert_array_equal(dn.sample_and_score(200, seed=4)[0], xs)
    # a masked class is never drawn; an allowed one that underflows is not either
    allowed = np.isfinite(logits) & (True if mask is None else mask)
    assert allowed[np.arange(3), xs].all() and not (xs[:, 0] == 3).any()


def test_draws_follow_the_probabilities_at_large_batch():
    """One draw per row of many identical rows (the one-pass kernel), chi-square."""
    logits = np.array([0.3, -1.0, 2.0, 0.0, -np.inf, 1.0])
    B = 200_000
    x = lf.Categorical(np.tile(logits, (B, 1))).sample(None, seed=3)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    counts = np.bincount(x, minlength=6)
    assert counts[4] == 0
    keep = p > 0
    chi2 = ((counts[keep] - B * p[keep]) ** 2 / (B * p[keep])).sum()
    assert chi2 < 30.0  # 4 dof: P(chi2 > 30) ~ 5e-6


def test_score_of_an_allowed_class_whose_probability_underflows():
    d = lf.Categorical(np.array([0.0, -800.0]))
    assert d.log_prob(np.array([1]))[0] == -800.0
    np.testing.assert_array_equal(d.score(np.array([1]))["logits"], [[-1.0, 1.0]])
    est = lf.score_function(d, rewards=np.array([1.0, 2.0]), x=np.array([1, 0]))
    np.testing.assert_allclose(est.grad["logits"], [-0.5, 0.5])
    # masked means the mask or a -inf logit
    for d in (lf.Categorical(np.array([0.0, -np.inf])),
              lf.Categorical(np.array([0.0, 1.0]), mask=np.array([True, False]))):
        assert d.log_prob(np.array([1]))[0] == -np.inf
        with pytest.raises(ValueError, match="masked"):
            d.score(np.array([1]))


def _kl_mp(lp, lq):
    """KL(p||q) of one row by 40-digit arithmetic (finite logits)."""
    a = [mpmath.mpf(float(v)) for v in lp]
    b = [mpmath.mpf(float(v)) for v in lq]
    zp = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in a))
    zq = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in b))
    return mpmath.fsum(mpmath.exp(x - zp) * ((x - zp) - (y - zq)) for x, y in zip(a, b))


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_kl_is_zero_at_p_equals_q_accurate_near_it_and_never_negative(backend):
    rng = np.random.default_rng(5)
    logits = _logits(40, 7, seed=1)
    d = lf.Categorical(logits, backend=backend)
    assert (d.kl(d) == 0.0).all()
    # the same distribution from shifted logits: KL 0 up to rounding, never negative
    shifted = lf.Categorical(logits + 3.0, backend=backend).kl(d)
    assert (shifted >= 0).all() and (shifted < 1e-15).all()
    for eps in (1e-9, 1e-6, 1e-3, 0.3, 3.0):
        other = logits + eps * rng.normal(size=logits.shape)
        got = d.kl(lf.Categorical(other, backend=backend))
        ref = np.array([float(_kl_mp(a, b)) for a, b in zip(logits, other)])
        assert (got >= 0).all()
        # relative accuracy also where the KL is ~1e-18
        np.testing.assert_allclose(got, ref, rtol=1e-9 if eps < 1e-3 else 1e-12, atol=0)


def test_kl_with_masks_and_underflowing_classes():
    p = np.array([[0.0, -800.0, 1.0], [0.0, 1.0, 2.0], [1e30, -1e30, 0.0]])
    q = np.array([[-800.0, 0.0, 1.0], [0.0, 1.0, -np.inf], [0.0, 1.0, 2.0]])
    mask = np.array([[True, True, True], [True, True, True], [False, True, True]])
    for backend in ("cpu", "numpy"):
        kl = lf.Categorical(p, mask=mask, backend=backend).kl(
            lf.Categorical(q, mask=mask, backend=backend))
        # row 0 by mpmath; row 1: q masks a class p allows; row 2: p has mass on one class
        assert kl[0] == pytest.approx(float(_kl_mp(p[0], q[0])), rel=1e-12)
        assert kl[1] == np.inf
        assert kl[2] == pytest.approx(float(_kl_mp([0.0], [2.0]) - 2.0 + np.log(
            np.exp(1.0) + np.exp(2.0))), rel=1e-12)
    # q allows a class that p masks: KL over p's support, q normalised over its own
    d1 = lf.Categorical(np.zeros(3), mask=np.array([True, True, False]))
    d2 = lf.Categorical(np.zeros(3))
    assert d1.kl(d2) == pytest.approx(np.log(1.5), rel=1e-14)
    with pytest.raises(ValueError, match=r"kl: logits has shape \(1, 4\)"):
        lf.Categorical(np.zeros(4), mask=np.ones(4, bool)).kl(lf.Categorical(np.zeros(3)))
    # a mask on one side only: compared with the other's all-allowed classes
    masked = lf.Categorical(np.array([0.0, 1.0, 2.0]), mask=np.array([True, True, True]))
    np.testing.assert_array_equal(masked.kl(lf.Categorical(np.array([0.0, 1.0, 2.0]))), 0.0)


def test_multi_categorical_kl_and_entropy_use_the_same_row_maths():
    nvec = (3, 2)
    a, b = _logits(4, 5, seed=2), _logits(4, 5, seed=3)
    for backend in ("cpu", "numpy"):
        p = lf.MultiCategorical(a, nvec=nvec, backend=backend)
        q = lf.MultiCategorical(b, nvec=nvec, backend=backend)
        ref = sum(lf.Categorical(a[:, lo:hi]).kl(lf.Categorical(b[:, lo:hi]))
                  for lo, hi in ((0, 3), (3, 5)))
        np.testing.assert_allclose(p.kl(q), ref, rtol=1e-13)
        assert (p.kl(p) == 0).all()


def test_tables_compile_to_ptx():
    """The CUDA backend draws from the tables: their kernels compile for the GPU."""
    pytest.importorskip("numba.cuda")
    import numba
    from numba import cuda
    from numba.cuda import dispatcher

    class _Device:
        compute_capability = (9, 0)

    original = dispatcher.get_current_device
    dispatcher.get_current_device = lambda: _Device()
    try:
        from lograd_fast._engine import cuda as _cuda
    except Exception as exc:  # no numba-cuda toolchain
        dispatcher.get_current_device = original
        pytest.skip(f"numba-cuda unavailable: {exc}")
    try:
        d = lf.Categorical(_logits(2, 3))
        rec = type(d.tables)(*(np.array(v) for v in d.tables))
        T, i64 = numba.typeof, numba.int64
        x = np.empty(4, np.int64)
        s = d._flat_scores(d._outputs(2, None, False, False, True)[0], 4)
        lp = np.empty(4)
        key = (np.uint64(1), np.uint64(0), np.uint64(0), np.int64(0))
        sigs = {"sample": (T(rec), T(key), T(x), i64),
                "log_prob": (T(rec), T(x), T(lp), i64, i64),
                "score": (T(rec), T(x), T(s), i64),
                "sample_score": (T(rec), T(key), T(x), T(s), T(lp), i64, i64)}
        for name, kernel in _cuda.KERNELS.items():
            ptx, _ = cuda.compile_ptx(kernel.py_func, sigs[name], cc=(9, 0))
            assert ".entry" in ptx, name
    finally:
        dispatcher.get_current_device = original


def test_nan_logit_is_still_a_clear_error_on_the_lean_path():
    good = _logits(4, 3)
    lf.Categorical(good)  # the layout is known now: the next ones take the fast path
    for bad in (np.nan, np.inf):
        logits = good.copy()
        logits[3, 2] = bad
        with pytest.raises(ValueError, match=r"logits contains NaN or \+inf values "
                                             r"\(first at index \(3, 2\)\)"):
            lf.Categorical(logits)
    with pytest.raises(ValueError, match="outside"):
        lf.Categorical(good).log_prob(np.array([0, 1, 3, 0]))
