"""MultiCategorical: checks beyond the generic table (tests/cases/multi_categorical.py)."""

import itertools
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numba
import numpy as np
import pytest
from cases.multi_categorical import MultiDiscreteReference
from scipy import stats

import lograd_fast as lf
from lograd_fast.families.multi_categorical import MultiCategorical

ROOT = Path(__file__).resolve().parent.parent
NVEC = (3, 5, 2)


def _logits(seed=0, batch=(2,)):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=batch + (k,)) for k in NVEC]


def _joint(dist_probs):
    """Probability of every joint outcome (product over independent sub-actions)."""
    outcomes = list(itertools.product(*(range(len(p)) for p in dist_probs)))
    probs = np.array([math.prod(p[k] for p, k in zip(dist_probs, o)) for o in outcomes])
    return outcomes, probs


def test_list_and_flat_forms_are_the_same_distribution():
    parts = _logits()
    masks = [None, np.array([True, True, False, True, True]), np.array([[True, True],
                                                                         [False, True]])]
    a = MultiCategorical(parts, masks)
    b = MultiCategorical(np.concatenate(parts, axis=-1), np.concatenate(
        [np.ones((2, 3), bool), np.broadcast_to(masks[1], (2, 5)), masks[2]], axis=-1),
        nvec=NVEC)
    assert a.nvec == b.nvec == NVEC and a.n_sub == 3
    assert a.batch_shape == (2,) and a.event_shape == (3,)
    for x, y in zip(a.sample_and_score(7, seed=3), b.sample_and_score(7, seed=3)):
        if isinstance(x, dict):
            assert set(x) == {"logits"}
            x, y = x["logits"], y["logits"]
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.entropy(), b.entropy())
    np.testing.assert_array_equal(a.params["logits"], np.concatenate(parts, axis=-1))


def test_one_sub_action_is_the_categorical_family():
    """nvec = (K,) draws from the same Philox block as lf.Categorical: same numbers."""
    logits = np.random.default_rng(4).normal(size=(3, 6))
    mask = np.arange(6) != 2
    a, b = MultiCategorical([logits], [mask]), lf.Categorical(logits, mask)
    x, lp, s = a.sample_and_score(40, seed=2)
    xc, lpc, sc = b.sample_and_score(40, seed=2)
    np.testing.assert_array_equal(x[..., 0], xc)
    np.testing.assert_array_equal(lp, lpc)
    np.testing.assert_array_equal(s["logits"], sc["logits"])
    np.testing.assert_array_equal(a.entropy(), b.entropy())


def test_log_prob_score_entropy_kl_by_exact_enumeration():
    parts, other = _logits(1), _logits(2)
    masks = [np.array([True, False, True]), None, None]
    p, q = MultiCategorical(parts, masks), MultiCategorical(other, masks)
    for b in range(2):
        ref_p = MultiDiscreteReference(np.concatenate([v[b] for v in parts]),
                                       np.concatenate([masks[0], np.ones(7, bool)]), NVEC)
        ref_q = MultiDiscreteReference(np.concatenate([v[b] for v in other]),
                                       np.concatenate([masks[0], np.ones(7, bool)]), NVEC)
        outcomes, pp = _joint(ref_p.p)
        _, qq = _joint(ref_q.p)
        allowed = pp > 0
        entropy = -np.sum(pp[allowed] * np.log(pp[allowed]))
        kl = np.sum(pp[allowed] * (np.log(pp[allowed]) - np.log(qq[allowed])))
        np.testing.assert_allclose(p.entropy()[b], entropy, rtol=1e-12)
        np.testing.assert_allclose(p.kl(q)[b], kl, rtol=1e-12)
        x = np.zeros((len(outcomes), 2, 3), np.int64)
        x[:, b] = outcomes
        with np.errstate(divide="ignore"):
            np.testing.assert_allclose(p.log_prob(x)[:, b], np.log(pp), rtol=1e-13)
        score = p.split(p.score(x)["logits"][:, b])
        for j, (sj, pj) in enumerate(zip(score, ref_p.p)):
            expected = np.eye(NVEC[j])[x[:, b, j]] - pj
            np.testing.assert_allclose(sj, expected, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(p.kl(p), 0.0)


def test_samples_follow_each_sub_action_and_are_independent():
    parts = _logits(3)
    masks = [None, np.array([True, False, True, True, False]), None]
    d = MultiCategorical(parts, masks)
    n = 20_000
    x = d.sample(n, seed=4)
    assert x.shape == (n, 2, 3) and x.dtype == np.int64
    probs = [d.split(d.probs)[j] for j in range(3)]
    for b in range(2):
        for j, k in enumerate(NVEC):
            counts = np.bincount(x[:, b, j], minlength=k)
            expected = probs[j][b] * n
            assert np.all(counts[expected == 0] == 0), "a masked class was sampled"
            keep = expected > 0
            assert stats.chisquare(counts[keep], expected[keep]).pvalue > 1e-6, (b, j)
        # the joint law of two sub-actions is the product of their marginals
        joint = np.bincount(x[:, b, 0] * 5 + x[:, b, 1], minlength=15)
        expected = np.outer(probs[0][b], probs[1][b]).ravel() * n
        assert np.all(joint[expected == 0] == 0)
        keep = expected > 0
        assert stats.chisquare(joint[keep], expected[keep]).pvalue > 1e-6, b


def test_mean_probs_mode_split():
    parts = [np.array([0.0, 2.0, 1.0]), np.array([[5.0, 0.0], [0.0, 5.0]])]
    d = MultiCategorical(parts, [np.array([True, False, True]), None])
    assert d.batch_shape == (2,)
    p = d.probs
    assert p.shape == (2, 5)
    np.testing.assert_allclose(p.reshape(2, 5).sum(axis=1), 2.0)
    assert np.all(p[:, 1] == 0.0)  # masked: exactly 0
    np.testing.assert_array_equal(d.mean, p)
    np.testing.assert_array_equal(d.mode, [[2, 0], [2, 1]])
    first, second = d.split(p)
    np.testing.assert_allclose(first[0], np.exp([0.0, -np.inf, 1.0]) / (1 + math.e))
    assert second.shape == (2, 2)
    np.testing.assert_array_equal(d.logits, np.concatenate(
        [np.broadcast_to(parts[0], (2, 3)), parts[1]], axis=-1))


def test_float32_end_to_end():
    parts = _logits(5)
    d32 = MultiCategorical([v.astype(np.float32) for v in parts])
    d64 = MultiCategorical([v.astype(np.float32).astype(np.float64) for v in parts])
    x, lp, s = d32.sample_and_score(8, seed=9)
    assert d32.dtype == np.float32 and x.dtype == np.int64
    assert lp.dtype == s["logits"].dtype == d32.entropy().dtype == np.float32
    # the draws use 52-bit uniforms whatever the dtype
    np.testing.assert_array_equal(x, d64.sample(8, seed=9))
    np.testing.assert_allclose(lp, d64.log_prob(x), rtol=2e-7)
    np.testing.assert_allclose(s["logits"], d64.score(x)["logits"], rtol=2e-7, atol=2e-7)
    # a float64 sub-action makes the whole distribution float64
    assert MultiCategorical([parts[0].astype(np.float32), parts[1]]).dtype == np.float64


@pytest.mark.parametrize("args, kwargs, error, match", [
    ((np.zeros(5),), {}, TypeError, "list of per-sub-action arrays"),
    (([],), {}, TypeError, "list of per-sub-action arrays"),
    (([np.zeros(3), np.zeros(0)],), {}, ValueError, r"logits\[1\] must have shape"),
    (([np.zeros(3), np.float64(1.0)],), {}, ValueError, r"logits\[1\] must have shape"),
    (([np.zeros((2, 3)), np.zeros((3, 2))],), {}, ValueError, "logits: the leading"),
    (([np.zeros(3), np.array([0.0, np.nan])],), {}, ValueError, "logits contains NaN"),
    (([np.zeros(3), np.array([0.0, np.inf])],), {}, ValueError, "logits contains NaN or \\+inf"),
    ((np.zeros(5),), {"nvec": (3, 3)}, ValueError, r"logits must have shape \(\.\.\., sum"),
    ((np.zeros(5),), {"nvec": (3, 0, 2)}, ValueError, "nvec must be"),
    ((np.zeros(5),), {"nvec": (2.5, 2.5)}, ValueError, "nvec must be"),
    ((np.zeros(5),), {"nvec": [[3, 2]]}, ValueError, "nvec must be"),
    ((np.zeros(5),), {"nvec": "32"}, ValueError, "nvec must be"),
    (([np.zeros(3), np.zeros(2)], [None]), {}, ValueError, "mask is a list of 1 items"),
    (([np.zeros(3), np.zeros(2)], [None, np.ones(3, bool)]), {}, ValueError,
     r"mask\[1\] has shape"),
    (([np.zeros(3), np.zeros(2)], [None, np.ones(2)]), {}, TypeError,
     r"mask\[1\] must be a boolean"),
    (([np.zeros(3), np.zeros(2)], np.ones(4, bool)), {}, ValueError, "mask has shape"),
    (([np.zeros(3), np.zeros(2)], [None, np.zeros(2, bool)]), {}, ValueError,
     "no class of sub-action 1"),
    (([np.zeros(3), np.array([-np.inf, -np.inf])],), {}, ValueError,
     "no class of sub-action 1"),
])
def test_bad_parameters_raise_naming_the_argument(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        MultiCategorical(*args, **kwargs)


def test_bad_samples_and_kl_partner_raise():
    d = MultiCategorical([np.zeros(3), np.zeros(2)])
    with pytest.raises(ValueError, match="outside"):
        d.log_prob(np.array([0, 2]))
    with pytest.raises(ValueError, match="outside"):
        d.score(np.array([[3, 0]]))
    with pytest.raises(ValueError, match="outside"):
        d.log_prob(np.array([-1, 0]))
    with pytest.raises(ValueError, match="x has shape"):
        d.log_prob(np.zeros((4, 3), np.int64))
    with pytest.raises(ValueError, match="nvec differ"):
        d.kl(MultiCategorical([np.zeros(2), np.zeros(3)]))
    np.testing.assert_array_equal(d.log_prob(np.array([2, 1])), -math.log(6))


def test_masked_class_has_minus_inf_log_prob_and_zero_score():
    d = MultiCategorical([np.zeros(3), np.zeros(2)], [np.array([True, False, True]), None])
    x = np.array([[1, 0], [0, 1]])
    lp = d.log_prob(x)
    assert lp[0] == -np.inf and np.isfinite(lp[1])
    s = d.score(x)["logits"]
    assert np.all(np.isfinite(s))
    np.testing.assert_array_equal(s[1], [0.5, 0.0, -0.5, -0.5, 0.5])


def test_score_function_estimator_matches_the_exact_gradient():
    """grad E[f(x)] by enumeration vs the streaming estimator (within 5 SE)."""
    @numba.njit
    def f(x):
        return 1.0 * x[0] + 2.0 * (x[1] == 3) - x[2] * x[0]

    logits = [np.array([0.2, -0.3, 0.5]), np.array([0.0, 1.0, -1.0, 0.5, 0.0]),
              np.array([0.3, -0.3])]
    d = MultiCategorical(logits)
    ref = MultiDiscreteReference(np.concatenate(logits), None, NVEC)
    outcomes, probs = _joint(ref.p)
    exact = np.zeros(10)
    for o, po in zip(outcomes, probs):
        onehot = np.concatenate([np.eye(k)[c] for k, c in zip(NVEC, o)])
        score = onehot - np.concatenate(ref.p)
        exact += po * f(np.array(o, dtype=np.int64)) * score
    for est in (lf.score_function(d, f, 40_000, seed=1, baseline="loo"),
                lf.score_function(MultiCategorical(logits, backend="numpy"), f, 4_000, seed=1,
                                  baseline="loo")):
        assert set(est.grad) == {"logits"} and est.grad["logits"].shape == (10,)
        assert np.all(np.abs(est.grad["logits"] - exact) <= 5 * est.stderr["logits"] + 1e-12)


_SIM_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from lograd_fast.families.multi_categorical import MultiCategorical
    rng = np.random.default_rng(1)
    logits = [rng.normal(size=(2, 3)), rng.normal(size=4), np.array([0.0, -np.inf, 1.0])]
    masks = [None, np.array([True, False, True, True]), None]
    out = {}
    for dtype in (np.float64, np.float32):
        d = MultiCategorical([v.astype(dtype) for v in logits], masks, backend=sys.argv[2])
        host = lambda a: a.copy_to_host() if hasattr(a, "copy_to_host") else np.asarray(a)
        x, lp, s = d.sample_and_score(2, seed=5, stream=1)
        tag = np.dtype(dtype).name
        out[tag + "x"], out[tag + "lp"], out[tag + "s"] = host(x), host(lp), host(s["logits"])
        xh = host(x)
        out[tag + "sample"] = host(d.sample(2, seed=5, stream=1))
        out[tag + "log_prob"] = host(d.log_prob(xh))
        out[tag + "score"] = host(d.score(xh)["logits"])
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
    assert set(sim.files) == set(cpu.files) and len(sim.files) == 2 * 6
    for key in sim.files:
        np.testing.assert_array_equal(sim[key], cpu[key], err_msg=key)


def test_kl_compiles_without_numba_ir_warnings(tmp_path):
    """Compiling MultiCategorical's KL (Categorical's masked-class helper inlined into
    the loop over sub-actions) printed NumbaIRAssumptionWarning ("variable ... is not
    in scope") at users; compiled here from an empty kernel cache, warnings as errors."""
    code = textwrap.dedent("""
        import numpy as np
        from lograd_fast.families.multi_categorical import MultiCategorical
        r = np.random.default_rng(0)
        p = MultiCategorical(r.normal(size=(2, 10)), nvec=(3, 5, 2))
        q = MultiCategorical(r.normal(size=(2, 10)), mask=r.random((2, 10)) < 0.8,
                             nvec=(3, 5, 2))
        print(p.kl(q), q.kl(p))
    """)
    env = {**os.environ, "LOGRAD_FAST_CACHE_DIR": str(tmp_path / "cache"),
           "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    proc = subprocess.run([sys.executable, "-W", "error::numba.core.errors."
                           "NumbaIRAssumptionWarning", "-c", code], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "NumbaIRAssumptionWarning" not in proc.stderr, proc.stderr[-3000:]
