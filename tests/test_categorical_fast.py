"""The fast paths of Categorical (issues 14 and 16): our vectorisable ``exp`` of the
softmax weights (accuracy in ulp against mpmath), the private copy of the logits made
in the construction's checking pass, and the row kernels split into vectorisable loops."""

import json
import os
import subprocess
import sys

import mpmath
import numpy as np
import pytest
from numba import njit

import lograd_fast as lf
from lograd_fast._engine import maths
from lograd_fast.families import categorical as cat

mpmath.mp.dps = 40


@njit
def _exp_loop(x, out):
    for i in range(x.shape[0]):
        out[i] = maths.exp_f64(x[i])


def _ulps(got, x):
    """|got - exp(x)| in units of the last place of the correctly rounded exp(x)."""
    err = np.empty(x.shape[0])
    for i, (g, v) in enumerate(zip(got.tolist(), x.tolist())):
        exact = mpmath.exp(mpmath.mpf(v))
        err[i] = float(abs(mpmath.mpf(g) - exact) / np.spacing(float(exact)))
    return err


def test_exp_f64_within_one_ulp_of_mpmath_and_the_same_on_every_path():
    rng = np.random.default_rng(7)
    x = np.concatenate([
        np.linspace(-745.0, 0.0, 4001),  # the softmax range: l_k - max <= 0
        -rng.exponential(3.0, 8000),  # where the probabilities are
        rng.uniform(-745.1, -708.0, 2000),  # subnormal results
        rng.uniform(-1e-3, 1e-3, 1000),  # near 0: e^r's polynomial around 1
        rng.uniform(0.0, 709.7, 2000),  # positive arguments (KL-type uses)
    ])
    got = np.empty_like(x)
    _exp_loop(x, got)
    err = _ulps(got, x)
    assert err.max() <= 1.0, (err.max(), x[err.argmax()])
    # the numpy form (arrays) and the plain-Python one (scalars: CUDA simulator) give
    # the compiled bits
    np.testing.assert_array_equal(maths.exp_f64(x), got)
    np.testing.assert_array_equal([maths.exp_f64(float(v)) for v in x[::97]], got[::97])


def test_exp_f64_special_values():
    x = np.array([0.0, -0.0, -745.2, -746.0, -1e300, -np.inf, 709.79, 1e300, np.inf, np.nan])
    got = np.empty_like(x)
    _exp_loop(x, got)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(got, np.exp(x))
    assert got[0] == 1.0  # the row's largest logit has weight exactly 1


@pytest.mark.parametrize("mask", [None, np.array([True, False, True, True])])
def test_the_distribution_is_a_snapshot_of_the_logits(mask):
    """The private copy is made in the checking pass: writing into the caller's logits
    after the construction changes nothing, on every path (one pass, tables)."""
    logits = np.random.default_rng(3).normal(size=(300, 4))
    ref = lf.Categorical(logits.copy(), mask=mask)
    d, d2 = lf.Categorical(logits, mask=mask), lf.Categorical(logits, mask=mask)
    logits[...] = np.nan
    for a, b in ((d, ref), (d2, ref)):
        x, lp, s = a.sample_and_score(None, seed=5)
        xr, lpr, sr = b.sample_and_score(None, seed=5)
        np.testing.assert_array_equal(x, xr)
        np.testing.assert_array_equal(lp, lpr)
        np.testing.assert_array_equal(s["logits"], sr["logits"])
        np.testing.assert_array_equal(a.entropy(), b.entropy())  # the tables now
    np.testing.assert_array_equal(d.probs, ref.probs)


def test_non_contiguous_and_read_only_logits():
    base = np.random.default_rng(4).normal(size=(8, 10))
    view = base[:, ::2]  # strided
    ro = base[:, :5].copy()
    ro.flags.writeable = False
    for logits in (view, ro, np.asfortranarray(view)):
        d = lf.Categorical(logits)
        np.testing.assert_array_equal(d._record.logits, np.ascontiguousarray(logits))
        x, lp, _ = d.sample_and_score(None, seed=1)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(np.exp(lp), probs[np.arange(8), x], rtol=1e-14)


def test_bad_rows_found_in_every_part_of_a_threaded_check():
    """The check runs in parts (threads): a bad row in the last part is found, and
    the first bad row is the one named."""
    B = 64 * 1024
    logits = np.zeros((B, 3))
    logits[B - 1, 2] = np.nan
    with pytest.raises(ValueError, match=rf"first at index \({B - 1}, 2\)"):
        lf.Categorical(logits)
    mask = np.ones((B, 3), bool)
    mask[B - 2] = False
    mask[B - 1] = False
    with pytest.raises(ValueError, match=f"batch row {B - 2}"):
        lf.Categorical(np.zeros((B, 3)), mask=mask)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("K", [32, 70])  # one stack block of weights; three blocks
def test_one_pass_equals_the_tables_bitwise_across_weight_blocks(dtype, K):
    """Rows longer than a block of weights (``_BLOCK`` = 32 classes) are summed and
    searched block by block, and float32 up to one block keeps its weights in it: the
    same numbers as the tables (which keep every weight) on every op."""
    rng = np.random.default_rng(K)
    logits = rng.normal(scale=3.0, size=(6, K)).astype(dtype)
    mask = rng.random((6, K)) > 0.3
    mask[:, K - 1] = True
    for m in (None, mask):
        def fresh(m=m):
            return lf.Categorical(logits, mask=m)
        x, lp, s = fresh().sample_and_score(4, seed=3)  # one pass
        many = fresh().sample_and_score(300, seed=3)  # the tables
        np.testing.assert_array_equal(x, many[0][:4])
        np.testing.assert_array_equal(lp, many[1][:4])
        np.testing.assert_array_equal(s["logits"], many[2]["logits"][:4])
        np.testing.assert_array_equal(fresh().sample(4, seed=8), fresh().sample(300, seed=8)[:4])
        xs = many[0][:4]
        tab = fresh()
        tab.tables  # noqa: B018 - built: later ops read them
        tab._used = True
        np.testing.assert_array_equal(fresh().log_prob(xs), tab.log_prob(xs))
        np.testing.assert_array_equal(fresh().score(xs)["logits"], tab.score(xs)["logits"])
        np.testing.assert_array_equal(fresh().entropy(), tab.entropy())
        # and the probabilities are right (torch-free reference: numpy softmax)
        ref = np.where(True if m is None else m, logits.astype(np.float64), -np.inf)
        ref = np.exp(ref - ref.max(axis=1, keepdims=True))
        ref /= ref.sum(axis=1, keepdims=True)
        # (float32: log p rounded to float32, |log p| < 20 here)
        rtol = 1e-13 if dtype == np.float64 else 20 * 2.0**-24
        np.testing.assert_allclose(np.exp(lp.astype(np.float64)), ref[np.arange(6), x],
                                   rtol=rtol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("K", [6, 70, 512])  # 85 rows per run block; 7; one
def test_runs_of_rows_equal_the_tables_bitwise(dtype, K):
    """The draws of many rows (``_sample_score_run``, ``_sample_run``: the weights of a
    block of rows at once, several blocks per call) give the numbers of the tables,
    row for row, masked or not, one draw per row or a few."""
    B = 300
    rng = np.random.default_rng(K)
    logits = rng.normal(scale=3.0, size=(B, K)).astype(dtype)
    logits[5, 1] = -np.inf
    mask = rng.random((B, K)) > 0.3
    mask[:, 0] = True
    for m in (None, mask):
        for n in (None, 3):
            d = lf.Categorical(logits, mask=m)
            assert d._kernel_record(n) is d._record  # the one pass
            d = lf.Categorical(logits, mask=m)
            got = d.sample_and_score(n, seed=11)
            tab = lf.Categorical(logits, mask=m)
            tab.tables  # noqa: B018 - built: the draw reads them
            assert tab._kernel_record(n) is tab.tables
            want = tab.sample_and_score(n, seed=11)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])
            np.testing.assert_array_equal(got[2]["logits"], want[2]["logits"])
            assert len(np.unique(got[0])) > 1
            # the draws alone (``_sample_run``): the same classes
            draws = lf.Categorical(logits, mask=m).sample(n, seed=11)
            np.testing.assert_array_equal(draws, want[0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("K", [2, 6, 70, 512])
def test_first_log_prob_and_entropy_in_runs_equal_the_tables_bitwise(dtype, K):
    """The first ``log_prob`` and ``entropy`` of a distribution read the logits in runs
    of rows (``_log_prob_run``, ``_entropy_run``: the weights of a block of rows at
    once, several blocks per call): the numbers of the tables, row for row, masked or
    not, a class that is masked or of logit -inf (-inf), with a sample axis (the rows
    wrap around), and in the drivers' sums of items of several atoms."""
    from lograd_fast._engine import cpu

    B = 300
    rng = np.random.default_rng(K + 1)
    logits = rng.normal(scale=3.0, size=(B, K)).astype(dtype)
    logits[5, 1] = -np.inf
    mask = rng.random((B, K)) > 0.3
    mask[:, 0] = True
    mask[7, 2 % K] = K == 2  # (K = 2: class 0 stays the allowed one)
    for m in (None, mask):
        tab = lf.Categorical(logits, mask=m)
        tab.tables  # noqa: B018 - built: the ops read them
        for x in (rng.integers(0, K, B), rng.integers(0, K, (3, B))):
            x[..., 5] = 1  # the logit -inf: log-prob -inf
            x[..., 0] = 0  # an allowed class
            if m is not None and K > 2:
                x[..., 7] = 2  # a masked class: -inf
            d = lf.Categorical(logits, mask=m)
            assert d._host_record(None) is d._record  # the first op reads the logits
            d = lf.Categorical(logits, mask=m)
            got, want = d.log_prob(x), tab.log_prob(x)
            np.testing.assert_array_equal(got, want)
            assert np.isneginf(got[..., 5]).all() and np.isfinite(got[..., 0]).all()
            if m is not None and K > 2:
                assert np.isneginf(got[..., 7]).all()
        np.testing.assert_array_equal(lf.Categorical(logits, mask=m).entropy(),
                                      tab.entropy())
        # the drivers' items of E atoms (the adapters' event dims): sums in atom order
        d = lf.Categorical(logits, mask=m)
        x = rng.integers(0, K, 2 * B)
        for E in (2, 3):
            got, want = (np.empty(2 * B // E, dtype) for _ in range(2))
            cpu.log_prob(d._record, x, got, B, E)
            cpu.log_prob(tab.tables, x, want, B, E)
            np.testing.assert_array_equal(got, want)
            got, want = (np.empty(B // E, dtype) for _ in range(2))
            cpu.entropy(d._record, got, E)
            cpu.entropy(tab.tables, want, E)
            np.testing.assert_array_equal(got, want)


def test_runs_of_rows_in_a_call_split_between_threads():
    """A batch of many rows (>= 8 chunks: the call split between threads, each part
    in runs of its own) draws what the tables draw."""
    logits = np.random.default_rng(1).normal(size=(9 * 4096, 3))
    x, lp, s = lf.Categorical(logits).sample_and_score(seed=2)
    tab = lf.Categorical(logits)
    tab.tables  # noqa: B018 - built: the draw reads them
    want = tab.sample_and_score(seed=2)
    np.testing.assert_array_equal(x, want[0])
    np.testing.assert_array_equal(lp, want[1])
    np.testing.assert_array_equal(s["logits"], want[2]["logits"])
    np.testing.assert_array_equal(lf.Categorical(logits).sample(seed=2), want[0])


def test_rows_longer_than_a_run_block_read_the_tables():
    d = lf.Categorical(np.zeros((2, cat._RUN + 1)))
    assert d._kernel_record(None) is d.tables
    x, lp, s = d.sample_and_score(seed=0)
    np.testing.assert_allclose(lp, -np.log(cat._RUN + 1), rtol=1e-14)
    np.testing.assert_allclose(s["logits"].sum(axis=1), 0.0, atol=1e-12)


def test_row_kernels_compile_once_per_dtype(tmp_path):
    """Every op of Categorical (one-pass and tables, both dtypes, masked or not) and of
    MultiCategorical shares one compile per dtype of each cached row kernel (a literal
    bound or a writeable array would be a signature, and a compile, of its own)."""
    code = """
import json, warnings
import numpy as np
import lograd_fast as lf
from lograd_fast.families import categorical as cat
warnings.simplefilter("ignore")
for dt in (np.float64, np.float32):
    for mask in (None, np.array([[True, False, True]] * 2)):
        d = lf.Categorical(np.zeros((2, 3), dt), mask=mask)
        d.sample_and_score(seed=0); d.kl(d); d.entropy()
        x = d.sample(seed=0); d.log_prob(x); d.score(x)
        d = lf.Categorical(np.zeros((2, 3), dt), mask=mask)  # tables: n > SMALL_N
        d.sample_and_score(8, seed=0); d.log_prob(d.sample(8, seed=1))
m = lf.MultiCategorical([np.zeros((2, 3)), np.zeros((2, 2))])
m.sample_and_score(seed=0); m.kl(m); m.entropy()
print(json.dumps({k: [str(s) for s in getattr(cat, k).signatures] for k in
      ("_fill_weight_block_kernel", "_row_stats_kernel", "_run_weights_kernel",
       "_fill_tables", "_check_rows")}))
"""
    # an empty cache: a driver loaded from the cache never calls the kernels it inlined
    env = {**os.environ, "LOGRAD_FAST_CACHE_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sigs = json.loads(proc.stdout.splitlines()[-1])
    for name, found in sigs.items():
        dtypes = sorted("float32" in s.split(",")[0] for s in found)
        assert dtypes == [False, True], (name, found)  # one float64, one float32


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_score_keeps_its_one_hot(dtype):
    """The fused draw's score is ``onehot(x) - softmax`` exactly where the one-hot goes:
    its last write (``s[i, k] += 1``) once fell to Numba's dead-code elimination with
    the drivers specialised per dtype (see ``jit._patch_alias_analysis``)."""
    from numba.core import ir_utils

    assert getattr(ir_utils.find_potential_aliases, "__lograd_fast__", False)
    rng = np.random.default_rng(3)
    L = rng.normal(size=(7, 5)).astype(dtype)
    mask = rng.random((7, 5)) < 0.8
    mask[:, 0] = True
    for m_ in (None, mask):
        for n in (None, 2, 9):  # one pass (n <= SMALL_N) and the tables
            x, _, s = lf.Categorical(L, mask=m_).sample_and_score(n, seed=4)
            lg = np.where(m_ if m_ is not None else True, L.astype(np.float64), -np.inf)
            p = np.exp(lg - np.logaddexp.reduce(lg, axis=1, keepdims=True))
            ref = (np.arange(5) == x[..., None]) - p
            tol = 1e-15 if dtype == np.float64 else 1e-6
            np.testing.assert_allclose(s["logits"], ref, rtol=0, atol=tol)
