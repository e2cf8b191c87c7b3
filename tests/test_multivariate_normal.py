"""MultivariateNormal: checks beyond the generic table (tests/cases/multivariate_normal.py)."""

import math
import os
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numba
import numpy as np
import pytest
from cases.multivariate_normal import random_raw, scale_tril
from scipy import stats

import lograd_fast as lf
from lograd_fast._engine import dispatch as _dispatch
from lograd_fast._engine.rng import make_stream
from lograd_fast.families.multivariate_normal import (
    MAX_DIM,
    MultivariateNormal,
    MultivariateNormalScores,
)

ROOT = Path(__file__).resolve().parent.parent


def _make(D, seed=0, batch=(), dtype=np.float64, backend="cpu"):
    rng = np.random.default_rng(seed)
    loc = rng.normal(size=batch + (D,))
    raw = random_raw(rng, D, off=0.3 / math.sqrt(D))
    return MultivariateNormal(loc.astype(dtype), raw.astype(dtype), backend=backend), loc, raw


def _cov(raw):
    tril = scale_tril(raw)
    return tril @ tril.T


@pytest.mark.parametrize("D", [1, 2, 8, 64])
def test_log_prob_and_entropy_match_scipy(D):
    d, loc, raw = _make(D, seed=D)
    ref = stats.multivariate_normal(loc, _cov(raw))
    x = d.sample(16, seed=1)
    assert x.shape == (16, D)
    far = loc + 4.0 * (x - loc)
    for xx in (x, far):
        np.testing.assert_allclose(d.log_prob(xx), ref.logpdf(xx), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(d.entropy(), ref.entropy(), rtol=1e-12)
    np.testing.assert_allclose(d.mean, loc)
    np.testing.assert_allclose(d.covariance, _cov(raw), rtol=1e-13, atol=1e-15)


def test_d64_numpy_backend_agrees_and_scores_match_finite_differences():
    d, loc, raw = _make(64, seed=3)
    dn = MultivariateNormal(loc, raw, backend="numpy")
    x, lp, s = d.sample_and_score(3, seed=2)
    xn, lpn, sn = dn.sample_and_score(3, seed=2)
    np.testing.assert_array_equal(x, xn)
    np.testing.assert_array_equal(lp, lpn)
    for k in s:
        np.testing.assert_array_equal(s[k], sn[k])
    np.testing.assert_array_equal(d.log_prob(x), dn.log_prob(x))
    # central differences for a few entries: diagonal, strictly lower, upper (ignored), loc
    h = 1e-6
    entries = [("scale_tril_unconstrained", (0, 0)), ("scale_tril_unconstrained", (63, 63)),
               ("scale_tril_unconstrained", (40, 7)), ("scale_tril_unconstrained", (63, 0)),
               ("scale_tril_unconstrained", (5, 60)), ("loc", (0,)), ("loc", (37,))]
    for name, j in entries:
        lps = []
        for sign in (1.0, -1.0):
            params = {"loc": loc.copy(), "scale_tril_unconstrained": raw.copy()}
            params[name][j] += sign * h
            lps.append(MultivariateNormal(**params).log_prob(x))
        fd = (lps[0] - lps[1]) / (2 * h)
        np.testing.assert_allclose(s[name][(slice(None),) + j], fd, rtol=1e-6, atol=1e-6)


def test_log_prob_and_score_are_accurate_when_ill_conditioned():
    """Forward substitution (no inverse) with scales 1e-3 .. 1e3 (cond(L) ~ 1e11):
    log p and the loc score agree with exact rational arithmetic on the same floats."""
    D = 12
    rng = np.random.default_rng(5)
    raw = rng.normal(scale=0.5, size=(D, D))
    raw[np.diag_indices(D)] = np.log(np.logspace(-3, 3, D))
    loc = rng.normal(size=D)
    d = MultivariateNormal(loc, raw)
    tril = d._record.scale_tril[0]
    assert np.linalg.cond(tril) > 1e10
    x = d.sample(10, seed=3)
    lp, score_loc = d.log_prob(x), d.score(x)["loc"]
    L = [[Fraction(v) for v in row] for row in tril]
    for row, lp_row, v_row in zip(x, lp, score_loc):
        z = []
        for j in range(D):
            acc = Fraction(row[j]) - Fraction(loc[j])
            acc -= sum((L[j][k] * z[k] for k in range(j)), Fraction(0))
            z.append(acc / L[j][j])
        v = [Fraction(0)] * D
        for j in range(D - 1, -1, -1):
            acc = z[j] - sum((L[k][j] * v[k] for k in range(j + 1, D)), Fraction(0))
            v[j] = acc / L[j][j]
        ref = -0.5 * float(sum(t * t for t in z)) - np.diag(raw).sum() \
            - 0.5 * D * math.log(2 * math.pi)
        assert abs(lp_row - ref) <= 1e-11 * abs(ref)
        v = np.array([float(t) for t in v])
        np.testing.assert_allclose(v_row, v, rtol=1e-9, atol=1e-12 * np.abs(v).max())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_samples_have_the_right_marginals_projection_and_covariance(dtype):
    d, loc, raw = _make(8, seed=11, dtype=dtype)
    loc, raw = loc.astype(dtype).astype(np.float64), raw.astype(dtype).astype(np.float64)
    cov = _cov(raw)
    n = 20_000
    x = d.sample(n, seed=12).astype(np.float64)
    assert x.shape == (n, 8)
    for j in range(8):
        p = stats.kstest(x[:, j], stats.norm(loc[j], math.sqrt(cov[j, j])).cdf).pvalue
        assert p > 1e-6, (j, p)
    w = np.random.default_rng(0).normal(size=8)
    proj = stats.norm(w @ loc, math.sqrt(w @ cov @ w))
    assert stats.kstest(x @ w, proj.cdf).pvalue > 1e-6
    r = x - loc
    se_mean = r.std(axis=0, ddof=1) / math.sqrt(n)
    assert np.all(np.abs(r.mean(axis=0)) <= 5 * se_mean)
    products = r[:, :, None] * r[:, None, :]
    se = products.std(axis=0, ddof=1) / math.sqrt(n)
    assert np.all(np.abs(products.mean(axis=0) - cov) <= 5 * se)


def _kl_reference(loc_p, raw_p, loc_q, raw_q):
    """KL between Gaussians from its textbook form (Rasmussen & Williams, eq. A.23)."""
    cov_p, cov_q = _cov(raw_p), _cov(raw_q)
    inv_q = np.linalg.inv(cov_q)
    diff = loc_q - loc_p
    logdet = np.linalg.slogdet(cov_q)[1] - np.linalg.slogdet(cov_p)[1]
    return 0.5 * (np.trace(inv_q @ cov_p) + diff @ inv_q @ diff - len(loc_p) + logdet)


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("D", [1, 2, 8, 64])
def test_kl_matches_the_closed_form(D, backend):
    rng = np.random.default_rng(D)
    locs = rng.normal(size=(2, 3, D))
    raws = [np.stack([random_raw(rng, D, off=0.3 / math.sqrt(D)) for _ in range(3)])
            for _ in range(2)]
    p = MultivariateNormal(locs[0], raws[0], backend=backend)
    q = MultivariateNormal(locs[1], raws[1], backend=backend)
    ref = [_kl_reference(locs[0][b], raws[0][b], locs[1][b], raws[1][b]) for b in range(3)]
    np.testing.assert_allclose(p.kl(q), ref, rtol=1e-9)
    np.testing.assert_array_equal(p.kl(p), 0.0)
    with pytest.raises(ValueError, match="event shapes differ"):
        E = D + 1 if D < MAX_DIM else D - 1
        p.kl(MultivariateNormal(np.zeros((3, E)), np.zeros((E, E)), backend=backend))


def test_upper_triangle_is_ignored_and_its_score_is_zero():
    rng = np.random.default_rng(2)
    raw = random_raw(rng, 4)
    loc = rng.normal(size=4)
    lower = np.tril(raw)
    a, b = MultivariateNormal(loc, lower), MultivariateNormal(loc, raw)
    x = a.sample(50, seed=4)
    np.testing.assert_array_equal(x, b.sample(50, seed=4))
    np.testing.assert_array_equal(a.log_prob(x), b.log_prob(x))
    s = b.score(x)["scale_tril_unconstrained"]
    upper = np.triu_indices(4, 1)
    assert np.all(s[:, upper[0], upper[1]] == 0.0)
    assert np.all(s[:, np.arange(4), np.arange(4)] != 0.0)
    np.testing.assert_array_equal(b.params["scale_tril_unconstrained"], raw)  # as passed


def test_constrained_constructors_round_trip():
    rng = np.random.default_rng(8)
    raw = random_raw(rng, 5)
    tril = scale_tril(raw)
    loc = rng.normal(size=5)
    d = MultivariateNormal.from_scale_tril(loc, tril)
    np.testing.assert_allclose(d.scale_tril, tril, rtol=1e-15, atol=0)
    np.testing.assert_allclose(d.params["scale_tril_unconstrained"], np.tril(raw), rtol=1e-14,
                               atol=1e-15)
    c = MultivariateNormal.from_covariance(loc, tril @ tril.T)
    np.testing.assert_allclose(c.covariance, tril @ tril.T, rtol=1e-12)
    np.testing.assert_allclose(c.scale_tril, tril, rtol=1e-12, atol=1e-15)
    c32 = MultivariateNormal.from_covariance(loc.astype(np.float32),
                                             (tril @ tril.T).astype(np.float32))
    assert c32.dtype == np.float32


def test_dimension_one_is_the_normal_family():
    """D = 1 draws the same normal from the same Philox block as lf.Normal."""
    loc, log_scale = np.array([[0.3], [-1.0]]), np.array([0.4, -0.2])
    mvn = MultivariateNormal(loc, log_scale[:, None, None])
    normal = lf.Normal(loc[:, 0], log_scale)
    x, lp, s = mvn.sample_and_score(50, seed=3)
    xn, lpn, sn = normal.sample_and_score(50, seed=3)
    np.testing.assert_array_equal(x[..., 0], xn)
    np.testing.assert_allclose(lp, lpn, rtol=1e-14)
    np.testing.assert_allclose(s["loc"][..., 0], sn["loc"], rtol=1e-13)
    np.testing.assert_allclose(s["scale_tril_unconstrained"][..., 0, 0], sn["log_scale"],
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mvn.entropy(), normal.entropy(), rtol=1e-15)


def test_batch_broadcasting_and_shapes():
    rng = np.random.default_rng(1)
    loc = rng.normal(size=(3, 1, 4))
    raw = np.stack([random_raw(rng, 4) for _ in range(2)])  # (2, 4, 4)
    d = MultivariateNormal(loc, raw)
    assert d.batch_shape == (3, 2) and d.event_shape == (4,)
    x, lp, s = d.sample_and_score(5, seed=1)
    assert x.shape == (5, 3, 2, 4) and lp.shape == (5, 3, 2)
    assert s["loc"].shape == (5, 3, 2, 4)
    assert s["scale_tril_unconstrained"].shape == (5, 3, 2, 4, 4)
    assert d.entropy().shape == (3, 2) and d.mean.shape == (3, 2, 4)
    for i in range(3):
        for j in range(2):
            one = MultivariateNormal(loc[i, 0], raw[j])
            np.testing.assert_allclose(lp[:, i, j], one.log_prob(x[:, i, j]), rtol=1e-14)


@pytest.mark.parametrize("D", [1, 64])
def test_float32_end_to_end(D):
    d32, loc, raw = _make(D, seed=4, dtype=np.float32)
    x, lp, s = d32.sample_and_score(6, seed=3)
    assert x.dtype == lp.dtype == np.float32
    assert all(v.dtype == np.float32 for v in s.values())
    assert d32.entropy().dtype == np.float32 and d32.scale_tril.dtype == np.float32
    d64 = MultivariateNormal(loc.astype(np.float32).astype(np.float64),
                             raw.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(d32.log_prob(x), d64.log_prob(x.astype(np.float64)), rtol=2e-7)
    dn = MultivariateNormal(loc.astype(np.float32), raw.astype(np.float32), backend="numpy")
    np.testing.assert_array_equal(x, dn.sample(6, seed=3))


@pytest.mark.parametrize("kwargs, match", [
    ({"loc": np.zeros(3), "scale_tril_unconstrained": np.zeros((3, 2))},
     "scale_tril_unconstrained must be square"),
    ({"loc": np.zeros(3), "scale_tril_unconstrained": np.zeros(3)},
     "scale_tril_unconstrained must be square"),
    ({"loc": np.zeros(3), "scale_tril_unconstrained": np.zeros((2, 2))}, "loc must have shape"),
    ({"loc": 0.0, "scale_tril_unconstrained": np.zeros((1, 1))}, "loc must have shape"),
    ({"loc": np.zeros((3, 2)), "scale_tril_unconstrained": np.zeros((4, 2, 2))},
     "do not broadcast"),
    ({"loc": np.array([0.0, np.nan]), "scale_tril_unconstrained": np.zeros((2, 2))},
     "loc contains NaN"),
    ({"loc": np.zeros(2), "scale_tril_unconstrained": np.array([[0.0, np.nan], [0.0, 0.0]])},
     "scale_tril_unconstrained contains NaN"),
    ({"loc": np.zeros(2), "scale_tril_unconstrained": np.array([[0.0, 0.0], [np.inf, 0.0]])},
     "scale_tril_unconstrained contains NaN or inf"),
    ({"loc": np.zeros(2), "scale_tril_unconstrained": np.array([[0.0, 0.0], [0.0, -800.0]])},
     "scale_tril_unconstrained: diagonal"),
    ({"loc": np.zeros(2), "scale_tril_unconstrained": np.array([[800.0, 0.0], [0.0, 0.0]])},
     "scale_tril_unconstrained: diagonal"),
    ({"loc": np.zeros(MAX_DIM + 1), "scale_tril_unconstrained": np.zeros((MAX_DIM + 1,) * 2)},
     "scale_tril_unconstrained: D = 65"),
])
def test_bad_parameters_raise_naming_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultivariateNormal(**kwargs)


@pytest.mark.parametrize("tril, match", [
    (np.array([[1.0, 0.5], [0.2, 1.0]]), "scale_tril must be lower triangular"),
    (np.array([[1.0, 0.0], [0.2, 0.0]]), "scale_tril must have a strictly positive diagonal"),
    (np.array([[-1.0, 0.0], [0.2, 1.0]]), "scale_tril must have a strictly positive diagonal"),
    (np.array([[1.0, 0.0], [np.nan, 1.0]]), "scale_tril contains NaN"),
    (np.ones((2, 3)), "scale_tril must be square"),
])
def test_bad_constrained_factor_raises_naming_scale_tril(tril, match):
    with pytest.raises(ValueError, match=match):
        MultivariateNormal.from_scale_tril(np.zeros(tril.shape[-2]), tril)


def test_bad_covariance_raises_naming_covariance():
    with pytest.raises(ValueError, match="covariance is not positive definite"):
        MultivariateNormal.from_covariance(np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="covariance must be symmetric"):
        MultivariateNormal.from_covariance(np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]))


def test_bad_samples_raise():
    d, _, _ = _make(3)
    with pytest.raises(ValueError, match="x has shape"):
        d.log_prob(np.zeros((5, 4)))
    with pytest.raises(ValueError, match="x contains NaN"):
        d.score(np.array([0.0, np.nan, 1.0]))


@numba.njit
def _reparam_and_reflect(p, st, x, dx, y, a):
    _dispatch.reparam1(p, 0, st, x, a, dx)
    for j in range(x.shape[1]):
        y[a, j] = x[a, j]
    _dispatch.reflect1(p, 0, y, a)


def _streams(seed, n):
    """Stream tuples of atoms 0..n-1 (built in Python: the drivers' own way is internal)."""
    return [make_stream(np.uint64(seed), np.uint64(0), np.uint64(0), np.int64(a))
            for a in range(n)]


def test_reparam_and_reflect_entry_points():
    """reparam1 draws the samples of sample1 and the pathwise derivatives (checked by
    central differences of the draw at a fixed seed); reflect1 gives 2 loc - x."""
    D, n = 5, 4
    d, loc, raw = _make(D, seed=9)
    x = np.empty((n, D))
    dx = MultivariateNormalScores(np.empty((n, D)), np.empty((n, D, D)))
    y = np.empty((n, D))
    for a, st in enumerate(_streams(7, n)):
        _reparam_and_reflect(d._record, st, x, dx, y, a)
    np.testing.assert_array_equal(x, d.sample(n, seed=7))
    np.testing.assert_allclose(y, 2 * loc - x, rtol=1e-15, atol=1e-15)
    assert _dispatch.supports(type(d._record), "reparam1")
    h = 1e-6
    for name, shape in (("loc", (D,)), ("scale_tril_unconstrained", (D, D))):
        for j in np.ndindex(shape):
            xs = []
            for sign in (1.0, -1.0):
                params = {"loc": loc.copy(), "scale_tril_unconstrained": raw.copy()}
                params[name][j] += sign * h
                xs.append(MultivariateNormal(**params).sample(n, seed=7))
            fd = (xs[0] - xs[1]) / (2 * h)
            row = j[0]  # the one coordinate this entry moves
            np.testing.assert_allclose(fd[:, row], getattr(dx, name)[(slice(None),) + j],
                                       rtol=1e-6, atol=1e-8)
            others = np.delete(fd, row, axis=1)
            np.testing.assert_array_equal(others, 0.0)


def test_score_function_estimator_recovers_the_gradient_of_the_mean():
    """E[sum x] = sum loc: gradient 1 for loc, 0 for the factor (within 5 SE)."""
    @numba.njit
    def f(x):
        return x.sum()

    d, _, _ = _make(3, seed=2)
    est = lf.score_function(d, f, 40_000, seed=3, baseline="loo")
    assert set(est.grad) == {"loc", "scale_tril_unconstrained"}
    assert est.grad["scale_tril_unconstrained"].shape == (3, 3)
    assert np.all(np.abs(est.grad["loc"] - 1.0) <= 5 * est.stderr["loc"])
    g = est.grad["scale_tril_unconstrained"]
    se = est.stderr["scale_tril_unconstrained"]
    assert np.all(np.abs(g) <= 5 * se + 1e-12)


def test_pathwise_and_antithetic_estimators_recover_the_exact_gradient():
    """E[sum_j x_j**2] = sum_j (loc_j**2 + (L L^T)_jj): d/dloc_j = 2 loc_j,
    d/dS_jk = 2 L_jk (j > k), d/dS_kk = 2 L_kk**2, 0 above the diagonal."""
    @numba.njit
    def square(x):
        return x * x

    @numba.njit
    def twice(x):
        return 2.0 * x

    @numba.njit
    def sum_of_squares(x):
        return (x * x).sum()

    d, loc, raw = _make(3, seed=6)
    tril = scale_tril(raw)
    exact = {"loc": 2 * loc, "scale_tril_unconstrained": 2 * tril * np.where(
        np.eye(3, dtype=bool), tril, 1.0)}
    for est in (lf.pathwise(d, square, twice, 20_000, seed=1),
                lf.antithetic(d, sum_of_squares, 20_000, seed=1, baseline="loo")):
        for name, g in exact.items():
            assert est.grad[name].shape == g.shape
            assert np.all(np.abs(est.grad[name] - g) <= 5 * est.stderr[name] + 1e-12), \
                (est.estimator, name, est.grad[name], g)


_SIM_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from lograd_fast.families.multivariate_normal import MultivariateNormal
    rng = np.random.default_rng(1)
    loc = rng.normal(size=(2, 3))
    raw = rng.normal(scale=0.4, size=(3, 3))
    out = {}
    for dtype in (np.float64, np.float32):
        d = MultivariateNormal(loc.astype(dtype), raw.astype(dtype), backend=sys.argv[2])
        x, lp, s = d.sample_and_score(2, seed=5, stream=1)
        host = lambda a: a.copy_to_host() if hasattr(a, "copy_to_host") else np.asarray(a)
        tag = np.dtype(dtype).name
        out[tag + "x"], out[tag + "lp"] = host(x), host(lp)
        for k, v in s.items():
            out[tag + k] = host(v)
        xh = host(x)
        out[tag + "sample"] = host(d.sample(2, seed=5, stream=1))
        out[tag + "log_prob"] = host(d.log_prob(xh))
        for k, v in d.score(xh).items():
            out[tag + "score" + k] = host(v)
        out[tag + "entropy"] = d.entropy()
    np.savez(sys.argv[1], **out)
""")


@pytest.mark.cuda
def test_cuda_simulator_matches_cpu_bitwise(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(_SIM_SCRIPT)
    results = {}
    for backend, sim in (("cuda", "1"), ("cpu", "0")):
        env = {**os.environ, "NUMBA_ENABLE_CUDASIM": sim}
        proc = subprocess.run([sys.executable, str(script), str(tmp_path / backend), backend],
                              env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr[-4000:]
        results[backend] = np.load(tmp_path / f"{backend}.npz")
    sim, cpu = results["cuda"], results["cpu"]
    assert set(sim.files) == set(cpu.files) and len(sim.files) == 2 * 9
    for key in sim.files:
        np.testing.assert_array_equal(sim[key], cpu[key], err_msg=key)


_PTX_SCRIPT = textwrap.dedent("""
    import numba
    import numpy as np
    from numba import cuda
    from numba.cuda import dispatcher

    from lograd_fast._engine import dispatch as _dispatch
    from lograd_fast._engine.rng import make_stream
    from lograd_fast.families.multivariate_normal import (
        MultivariateNormal, MultivariateNormalScores)

    class Device:
        compute_capability = (9, 0)

    dispatcher.get_current_device = lambda: Device()  # no GPU needed to compile

    def kernel(p, st, x, dx):
        a = cuda.grid(1)
        if a < x.shape[0]:
            _dispatch.reparam1(p, 0, st, x, a, dx)
            _dispatch.reflect1(p, 0, x, a)

    st = make_stream(np.uint64(1), np.uint64(0), np.uint64(0), np.int64(0))
    for dtype in (np.float64, np.float32):
        d = MultivariateNormal(np.zeros(4, dtype), np.zeros((4, 4), dtype))
        rec = type(d._record)(*(np.array(a) for a in d._record))  # device arrays: writable
        x = np.empty((2, 4), dtype)
        dx = MultivariateNormalScores(np.empty((2, 4), dtype), np.empty((2, 4, 4), dtype))
        sig = tuple(numba.typeof(v) for v in (rec, st, x, dx))
        ptx, _ = cuda.compile_ptx(kernel, sig, cc=(9, 0))
        assert ".entry" in ptx and ".target sm_90" in ptx
    print("ok")
""")


@pytest.mark.cuda
def test_optional_entry_points_compile_to_ptx(tmp_path):
    """reparam1 and reflect1 (for the pathwise and antithetic estimators) compile as
    CUDA device functions too.  Run in a fresh process: at the time of writing, a CUDA
    compilation of the RNG functions after a CPU compilation of them in the same
    process fails to type (an issue of the shared overload registration)."""
    script = tmp_path / "ptx.py"
    script.write_text(_PTX_SCRIPT)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=900, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-4000:]
