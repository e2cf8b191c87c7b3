"""Generic checks run on every case of the shared table (tests/cases/)."""

import math

import numpy as np
import pytest
from cases import assert_same_draws, atom_params, broadcast_params
from scipy import stats

import lograd_fast as lf

EPS64 = np.finfo(np.float64).eps


def _atoms(d, x, n):
    """x as (n, B, *sample_event)."""
    return np.asarray(x).reshape((n, d._B) + d.sample_event_shape)


def _reference_log_prob(case, d, x, n):
    xa = _atoms(d, x, n)
    ref = np.empty((n, d._B))
    for b in range(d._B):
        dist = case.scipy(atom_params(d, b), case.kwargs)
        f = dist.logpmf if case.kind == "discrete" else dist.logpdf
        ref[:, b] = f(xa[:, b])
    return ref.reshape(n, -1, d._E).sum(axis=2).reshape((n,) + d.batch_shape)


def test_log_prob_matches_scipy(scipy_case):
    case = scipy_case
    d = case.make()
    n = 64
    x = d.sample(n, seed=1)
    points = [x]
    if case.kind == "continuous":
        # far from where the samples fall, too
        mean = np.broadcast_to(np.asarray(d.mean), x.shape[1:])
        points.append(mean + 3.0 * (x - mean))
    for xx in points:
        got = d.log_prob(xx)
        ref = _reference_log_prob(case, d, xx, n)
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)


def test_score_matches_finite_differences(case):
    d = case.make()
    n = 6
    x = d.sample(n, seed=2)
    score = d.score(x)
    base = broadcast_params(case, d)
    batch_axes = tuple(range(1, 1 + len(d.batch_shape)))
    for name, value in base.items():
        for j in np.ndindex(value.shape):
            if not np.isfinite(value[j]):
                continue
            fds = []
            for h in (case.fd_step * max(1.0, abs(value[j])),
                      0.5 * case.fd_step * max(1.0, abs(value[j]))):
                lps = []
                for sign in (1.0, -1.0):
                    params = {k: v.copy() for k, v in base.items()}
                    params[name][j] += sign * h
                    lp = case.make(params=params).log_prob(x)
                    lps.append(lp.sum(axis=batch_axes) if batch_axes else lp)
                fds.append((lps[0] - lps[1]) / (2 * h))
            got = score[name][(slice(None),) + j]
            # the two step sizes bound the finite-difference error
            tol = 1e-6 + 1e-6 * np.abs(got) + 10 * np.abs(fds[0] - fds[1])
            assert np.all(np.abs(got - fds[1]) <= tol), (name, j, got, fds[1])


@pytest.mark.slow
def test_score_has_zero_mean(stat_case):
    """E[d log p / d theta] = 0: the mean score is 0 within 5 standard errors."""
    d = stat_case.make()
    n = 20_000
    _, _, score = d.sample_and_score(n, seed=3)
    for name, s in score.items():
        mean = s.mean(axis=0)
        se = s.std(axis=0, ddof=1) / math.sqrt(n)
        assert np.all(np.abs(mean) <= 5 * se + 1e-12), (name, mean, se)


@pytest.mark.slow
def test_samples_follow_the_distribution(univariate_stat_case):
    case = univariate_stat_case
    d = case.make()
    n = 4000
    xa = _atoms(d, d.sample(n, seed=4), n)
    for b in range(d._B):
        dist = case.scipy(atom_params(d, b), case.kwargs)
        if case.kind == "continuous":
            p = stats.kstest(xa[:, b], dist.cdf).pvalue
        else:
            support = np.arange(xa[:, b].max() + 1)
            expected = dist.pmf(support) * n
            counts = np.bincount(xa[:, b], minlength=support.size)
            assert np.all(counts[expected == 0] == 0), "a zero-probability value was sampled"
            keep = expected > 0
            # pool the sparse tail so every cell expects >= 5
            order = np.argsort(expected[keep])[::-1]
            e, c = expected[keep][order], counts[keep][order]
            cut = max(1, int(np.sum(e >= 5)))
            e = np.append(e[:cut], n - e[:cut].sum())
            c = np.append(c[:cut], n - c[:cut].sum())
            if e[-1] < 1e-9:
                e, c = e[:-1], c[:-1]
            p = stats.chisquare(c, e).pvalue if e.size > 1 else 1.0
        assert p > 1e-6, (b, p)


def test_entropy_matches_scipy(scipy_case):
    case = scipy_case
    d = case.make()
    ref = np.array([case.scipy(atom_params(d, b), case.kwargs).entropy() for b in range(d._B)])
    ref = ref.reshape(-1, d._E).sum(axis=1).reshape(d.batch_shape)
    np.testing.assert_allclose(d.entropy(), ref, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_kl_matches_monte_carlo(kl_case):
    case = kl_case
    p = case.make()
    q = case.make(params=case.kl_to)
    n = 40_000
    x = p.sample(n, seed=6)
    diff = p.log_prob(x) - q.log_prob(x)
    mc = diff.mean(axis=0)
    se = diff.std(axis=0, ddof=1) / math.sqrt(n)
    kl = p.kl(q)
    assert kl.shape == p.batch_shape
    assert np.all(kl >= -1e-12)
    assert np.all(np.abs(kl - mc) <= 5 * se + 1e-9), (kl, mc, se)
    np.testing.assert_allclose(p.kl(p), 0.0, atol=1e-12)


def _close(a, b, dtype, cond=1.0):
    """Equal to ``8 eps`` relative to the largest value, times ``cond`` (the
    condition number of the quantity when the inputs themselves differ by ulps)."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.dtype.kind in "iu":
        np.testing.assert_array_equal(a, b)
        return
    eps = np.finfo(dtype).eps * cond
    with np.errstate(invalid="ignore"):
        scale = np.nanmax(np.abs(np.where(np.isfinite(b), b, 0.0)), initial=1.0)
    np.testing.assert_allclose(a, b, rtol=8 * eps, atol=8 * eps * scale)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cpu_and_numpy_backends_agree(case, dtype):
    dc = case.make("cpu", dtype)
    dn = case.make("numpy", dtype)
    xc = dc.sample(16, seed=5)
    xn = dn.sample(16, seed=5)
    if case.bitwise:
        assert_same_draws(xc, xn)
    else:
        _close(xc, xn, dtype)
    _close(dc.log_prob(xc), dn.log_prob(xc), dtype)
    sc, sn = dc.score(xc), dn.score(xc)
    for k in sc:
        _close(sc[k], sn[k], dtype)
    xc2, lpc, sc2 = dc.sample_and_score(9, seed=8)
    xn2, lpn, sn2 = dn.sample_and_score(9, seed=8)
    if case.bitwise:
        assert_same_draws(xc2, xn2)
    # draws a few ulp apart (libm vs numpy transcendentals) move the fused log-prob and
    # scores by their condition number: up to ~1e4 here (Gamma's concentration score at
    # alpha = 1e4); the same-x comparisons above stay at a few eps
    cond = 1.0 if np.array_equal(xc2, xn2) else 1e4
    _close(lpc, lpn, dtype, cond)
    for k in sc2:
        _close(sc2[k], sn2[k], dtype, cond)
    _close(dc.entropy(), dn.entropy(), dtype)


def test_float32_stays_float32(case):
    d32 = case.make(dtype=np.float32)
    # float64 twin with the float32-rounded parameters: the maths must then agree
    # to float32 rounding of the result
    d64 = case.make(params={k: np.asarray(v, np.float32).astype(np.float64)
                            for k, v in case.params.items()})
    assert d32.dtype == np.float32
    x, lp, s = d32.sample_and_score(8, seed=9)
    discrete = case.cls.family.discrete
    assert x.dtype == (np.int64 if discrete else np.float32)
    assert lp.dtype == np.float32
    assert all(v.dtype == np.float32 for v in s.values())
    assert d32.log_prob(x).dtype == np.float32
    assert d32.entropy().dtype == np.float32
    lp32 = d32.log_prob(x)
    lp64 = d64.log_prob(np.asarray(x, dtype=np.int64 if discrete else np.float64))
    np.testing.assert_array_equal(np.isfinite(lp32), np.isfinite(lp64))
    finite = np.isfinite(lp64)
    np.testing.assert_allclose(lp32[finite], lp64[finite], rtol=2e-7, atol=2e-7)


def test_sample_and_score_equals_separate_calls(case):
    d = case.make()
    x, lp, s = d.sample_and_score(12, seed=7)
    np.testing.assert_array_equal(x, d.sample(12, seed=7))
    # the fused pass uses the exact standardised draw; log_prob re-derives it from
    # the rounded x, so allow the rounding of x (ill-conditioned when scale << |loc|)
    np.testing.assert_allclose(lp, d.log_prob(x), rtol=1e-9, atol=1e-9)
    s2 = d.score(x)
    for k in s:
        np.testing.assert_allclose(s[k], s2[k], rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_prob_and_score_in_one_pass_equal_the_separate_calls(case, dtype):
    """The adapters' call (``_log_prob_and_score``: one compiled pass for both,
    ``cpu.log_prob_score``) gives bitwise ``log_prob(x)`` and ``score(x)``, with and
    without a sample axis, on a fresh distribution (Categorical's first call of a
    distribution reads the raw logits, later ones its tables) and a used one."""
    fused, separate = case.make(dtype=dtype), case.make(dtype=dtype)
    x = separate.sample(5, seed=3)
    for xs in (x, x[2]):
        try:
            want_s = separate.score(xs)
        except ValueError:  # a draw on the support's edge (Beta/Gamma underflow)
            with pytest.raises(ValueError):
                fused._log_prob_and_score(xs)
            continue
        lp, s = fused._log_prob_and_score(xs)
        np.testing.assert_array_equal(lp, separate.log_prob(xs))
        assert lp.dtype == dtype and s.keys() == want_s.keys()
        for k in s:
            assert s[k].shape == want_s[k].shape, k
            np.testing.assert_array_equal(s[k], want_s[k], err_msg=k)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["Normal", "TanhNormal"])
def test_the_one_call_update_path_equals_the_general_one(name, dtype, monkeypatch):
    """``log_prob_and_score_flat`` (the adapters' update) of a family with a compiled
    ``prepare1``: one compiled call (``cpu.checked_log_prob_score``: the checks, the
    derived fields, the kernel), bitwise the general path's log-probs and scores (one
    atom and three per item), and for every bad value the general path's error; calls
    of ``_ONE_CALL_ATOMS`` atoms or more take the general path."""
    from lograd_fast import distribution as dist_mod
    from lograd_fast._engine import cpu
    from lograd_fast.families import FAMILY_CLASSES

    fam = FAMILY_CLASSES[name].family
    other = FAMILY_CLASSES["Exponential"].family  # no prepare1: the general path
    assert cpu.checked_log_prob_score(other.params_cls, other.scores_cls, dtype) is None
    calls = []
    one_call = cpu.checked_log_prob_score(fam.params_cls, fam.scores_cls, dtype)

    def counted(*args):
        calls.append(1)
        return one_call(*args)
    monkeypatch.setattr(cpu, "checked_log_prob_score", lambda *a: counted)
    rng = np.random.default_rng(5)
    loc = rng.normal(size=12).astype(dtype)
    log_scale = (0.3 * rng.normal(size=12)).astype(dtype)
    x = rng.normal(size=12).astype(dtype)
    if name == "TanhNormal":
        x = np.tanh(x)

    one_call_atoms = dist_mod._ONE_CALL_ATOMS

    def both(loc, log_scale, x, E):
        """(the one-call path's result or error, the general path's)"""
        got = []
        for limit in (one_call_atoms, 0):
            monkeypatch.setattr(dist_mod, "_ONE_CALL_ATOMS", limit)
            try:
                got.append(dist_mod.log_prob_and_score_flat(fam, [loc, log_scale], x, E))
            except ValueError as exc:
                got.append(str(exc))
        return got

    for E in (1, 3):
        calls.clear()
        block, ref = both(loc, log_scale, x, E)
        assert calls == [1]  # the one-call path was taken, the general one was not
        assert block.shape == (3, 12) and block.dtype == dtype
        np.testing.assert_array_equal(block[0, :12 // E], ref[0, :12 // E])  # log-probs
        np.testing.assert_array_equal(block[1:], ref[1:])  # scores
    bad = [("loc", 4, np.nan), ("log_scale", 7, np.inf), ("log_scale", 2, -1000.0),
           ("x", 5, np.nan)]
    if name == "Normal":  # the draws' extent check: loc + 9.2 scale beyond the dtype
        bad.append(("log_scale", 3, np.log(np.finfo(dtype).max / 4)))
    arrays = {"loc": loc, "log_scale": log_scale, "x": x}
    for which, i, value in bad:
        changed = {k: v.copy() for k, v in arrays.items()}
        changed[which][i] = value
        if which == "log_scale" and i == 3:  # with a large loc
            changed["loc"][3] = np.finfo(dtype).max / 2
        one, general = both(changed["loc"], changed["log_scale"], changed["x"], 1)
        assert isinstance(one, str) and one == general, (which, value)
    monkeypatch.setattr(dist_mod, "_ONE_CALL_ATOMS", 12)  # 12 atoms: the general path
    calls.clear()
    dist_mod.log_prob_and_score_flat(fam, [loc, log_scale], x, 1)
    assert not calls


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rl_step_path_equals_the_general_one(case, dtype):
    """``sample_and_score(None)`` without ``out`` (the RL step) runs through a cached
    call plan (``cpu.sample_score_step``): bitwise what the general path (``out=``
    buffers) gives, for small and 2**32-plus seeds, other streams, both dtypes and the
    second call of a distribution too (Categorical's tables); the caller's parameter
    arrays stay writeable and unchanged (the record holds copies or read-only views).
    Calls after a plan's first skip Numba's dispatcher (``cpu._entry_point``)."""
    given = {k: np.array(v, dtype) for k, v in case.params.items()}
    before = {k: v.copy() for k, v in given.items()}
    lean, general = case.make(params=given, dtype=dtype), case.make(params=given, dtype=dtype)
    for seed, stream in ((3, 0), (2**40 + 5, 0), (11, 7), (2**64 - 1, 2**32 - 1)):
        x, lp, s = lean.sample_and_score(None, seed=seed, stream=stream)
        out = (np.empty_like(x), np.empty_like(lp), {k: np.empty_like(v) for k, v in s.items()})
        general.sample_and_score(None, seed=seed, stream=stream, out=out)
        np.testing.assert_array_equal(x, out[0])
        np.testing.assert_array_equal(lp, out[1])
        assert s.keys() == out[2].keys()
        for k in s:
            np.testing.assert_array_equal(s[k], out[2][k])
    for k, v in given.items():
        assert v.flags.writeable, k
        np.testing.assert_array_equal(v, before[k])
    # from its second call a plan calls the compiled function itself (no dispatcher)
    from numba.core.dispatcher import Dispatcher

    from lograd_fast._engine import cpu

    plans = [p for p in cpu._STEPS.values() if p is not False and p[5]]
    assert plans and not any(isinstance(p[0], Dispatcher) for p in plans)


def test_rl_step_of_a_batch_split_between_threads():
    """A batch too large for one thread's call (>= 8 chunks of atoms) takes the
    threaded path from the RL step's plan: the same numbers as the general path."""
    loc = np.linspace(-1.0, 1.0, 9 * 4096)
    d = lf.Normal(loc, np.full_like(loc, -0.5))
    x, lp, s = d.sample_and_score(None, seed=4)
    out = (np.empty_like(x), np.empty_like(lp), {k: np.empty_like(v) for k, v in s.items()})
    d.sample_and_score(None, seed=4, out=out)
    np.testing.assert_array_equal(x, out[0])
    np.testing.assert_array_equal(lp, out[1])
    for k in s:
        np.testing.assert_array_equal(s[k], out[2][k])


def test_shapes_and_out_buffers(case):
    d = case.make()
    ev = d.sample_event_shape
    assert d.sample(None, seed=1).shape == d.full_shape + ev
    assert d.sample(3, seed=1).shape == (3,) + d.full_shape + ev
    x1 = d.sample(None, seed=1)
    assert d.log_prob(x1).shape == d.batch_shape
    assert d.log_prob(d.sample(3, seed=1)).shape == (3,) + d.batch_shape
    for name, s in d.score(x1).items():
        assert s.shape == d.full_shape + d._param_tail[name]
    buf = np.empty((3,) + d.full_shape + ev, d._sample_dtype)
    assert d.sample(3, seed=1, out=buf) is buf
    np.testing.assert_array_equal(buf, d.sample(3, seed=1))
    x, lp, s = d.sample_and_score(3, seed=2)
    out = (np.empty_like(x), np.empty_like(lp), {k: np.empty_like(v) for k, v in s.items()})
    got = d.sample_and_score(3, seed=2, out=out)
    assert got[0] is out[0] and got[1] is out[1] and got[2] is out[2]
    np.testing.assert_array_equal(out[1], lp)
    lp_out = np.empty_like(lp)
    assert d.log_prob(x, out=lp_out) is lp_out
    np.testing.assert_array_equal(lp_out, d.log_prob(x))


def test_different_seeds_and_streams_differ(case):
    d = case.make()
    a = d.sample(200, seed=1)
    assert not np.array_equal(a, d.sample(200, seed=2))
    assert not np.array_equal(a, d.sample(200, seed=1, stream=1))
    np.testing.assert_array_equal(a, d.sample(200, seed=1, stream=0))
