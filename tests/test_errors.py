"""Bad input gets a clear ValueError/TypeError naming the argument (issue 3, item 8)."""

import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

import lograd_fast as lf


@numba.njit(cache=True)
def f_sum(x):
    return x.sum()


def test_mismatched_parameter_shapes():
    with pytest.raises(ValueError, match="do not broadcast"):
        lf.Normal(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="mask"):
        lf.Categorical(np.zeros((2, 3)), mask=np.ones((2, 4), bool))
    with pytest.raises(ValueError, match="event_ndims"):
        lf.Normal(np.zeros(3), 0.0, event_ndims=2)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_parameters(bad):
    with pytest.raises(ValueError, match="loc"):
        lf.Normal(np.array([0.0, bad]), 0.0)
    with pytest.raises(ValueError, match="log_scale"):
        lf.Normal(0.0, np.array([bad]))


def test_logits_may_be_minus_inf_but_not_nan_or_plus_inf():
    d = lf.Categorical(np.array([0.0, -np.inf, 1.0]))
    assert d.probs[1] == 0.0
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="logits"):
            lf.Categorical(np.array([0.0, bad]))


def test_out_of_range_log_scale():
    with pytest.raises(ValueError, match="log_scale"):
        lf.Normal(0.0, 800.0)


@pytest.mark.parametrize("value", [np.array([1 + 2j]), np.array([True]), "abc",
                                   [[1.0], [1.0, 2.0]]])
def test_wrong_parameter_dtype(value):
    with pytest.raises(TypeError, match="loc"):
        lf.Normal(value, 0.0)


def test_integer_parameters_are_promoted():
    d = lf.Normal(np.array([1, 2]), 0)
    assert d.dtype == np.float64
    assert lf.Normal(np.float32(1.0), np.zeros(2, np.float32)).dtype == np.float32


@pytest.mark.parametrize("n,exc", [(0, ValueError), (-3, ValueError), (2.5, TypeError),
                                   ("3", TypeError), (True, TypeError)])
def test_bad_n(n, exc):
    d = lf.Normal(0.0, 0.0)
    with pytest.raises(exc, match="n"):
        d.sample(n)
    with pytest.raises(exc, match="n"):
        d.sample_and_score(n)


def test_too_many_atoms():
    with pytest.raises(ValueError, match=f"n={2**61} (needs|asks)"):  # memory or 2**62 atoms
        lf.Normal(np.zeros(4), 0.0).sample(2**61)
    with pytest.raises(ValueError, match="2\\*\\*62"):  # with out= (nothing to allocate)
        lf.Normal(np.zeros(4), 0.0).sample(2**61, out=np.empty(0))


@pytest.mark.parametrize("seed,exc", [(-1, ValueError), (2**64, ValueError), (1.5, TypeError)])
def test_bad_seed(seed, exc):
    with pytest.raises(exc, match="seed"):
        lf.Normal(0.0, 0.0).sample(2, seed=seed)


def test_bad_stream():
    with pytest.raises(ValueError, match="stream"):
        lf.Normal(0.0, 0.0).sample(2, stream=2**32)


def test_categorical_x_outside_the_support():
    d = lf.Categorical(np.zeros((2, 3)), mask=np.array([[True, False, True], [True, True, True]]))
    with pytest.raises(ValueError, match="outside"):
        d.log_prob(np.array([0, 3]))
    with pytest.raises(ValueError, match="outside"):
        d.log_prob(np.array([-1, 0]))
    with pytest.raises(ValueError, match="integer"):
        d.log_prob(np.array([0.5, 1.0]))
    # a huge float index is out of range, not wrapped by the int64 cast
    with pytest.raises(ValueError, match="int64 range.*1.18"):
        d.log_prob(np.array([2.0**70, 0.0]))
    # a masked action is a valid index with probability 0: -inf, not an error
    lp = d.log_prob(np.array([1, 1]))
    assert lp[0] == -np.inf and np.isfinite(lp[1])
    # but its score is undefined
    with pytest.raises(ValueError, match="masked"):
        d.score(np.array([1, 1]))


def test_boolean_outcomes_of_discrete_families():
    # a Bernoulli's outcomes are naturally booleans: True/False are 1/0
    b = lf.Bernoulli(np.array([0.3, -1.2]))
    np.testing.assert_array_equal(b.log_prob(np.array([True, False])),
                                  b.log_prob(np.array([1, 0])))
    np.testing.assert_array_equal(b.score(np.array([True, False]))["logits"],
                                  b.score(np.array([1, 0]))["logits"])
    # continuous families keep refusing them
    with pytest.raises(TypeError, match="x must have a real numeric dtype, got bool"):
        lf.Normal(np.zeros(2), 0.0).log_prob(np.array([True, False]))


def test_x_with_the_wrong_shape_or_dtype():
    d = lf.Normal(np.zeros(3), 0.0)
    with pytest.raises(ValueError, match="x has shape"):
        d.log_prob(np.zeros((2, 4)))
    with pytest.raises(TypeError, match="x"):
        d.log_prob(np.array(["a", "b", "c"]))
    with pytest.raises(ValueError, match="NaN"):
        d.log_prob(np.array([0.0, np.nan, 1.0]))
    # broadcasting a scalar x is fine; inf is a legitimate point with log_prob -inf
    assert d.log_prob(0.5).shape == (3,)
    assert d.log_prob(np.array([np.inf, 0.0, 0.0]))[0] == -np.inf


def test_all_masked_row():
    with pytest.raises(ValueError, match="row 1"):
        lf.Categorical(np.zeros((2, 2)), mask=np.array([[True, False], [False, False]]))
    with pytest.raises(ValueError, match="allow no class"):
        lf.Categorical(np.array([-np.inf, -np.inf]))


def test_repeated_construction_checks_values_every_time():
    """The second construction of the same shapes takes the cached layout
    (``_base._LAYOUTS``): its value checks must still run, and its conversions hold."""
    good = np.zeros((4, 3))
    lf.Categorical(good)
    lf.Normal(np.zeros(3), np.zeros(3))
    for _ in range(2):  # the first builds the layout, the second uses it
        for bad in (np.nan, np.inf):
            logits = good.copy()
            logits[2, 1] = bad
            with pytest.raises(ValueError, match="logits contains NaN or \\+inf values "
                                                 r"\(first at index \(2, 1\)\)"):
                lf.Categorical(logits)
            with pytest.raises(ValueError, match="log_scale"):
                lf.Normal(np.zeros(3), np.array([0.0, bad, 0.0]))
        # a NaN logit behind the mask is still an error (as with every other check)
        with pytest.raises(ValueError, match="logits"):
            lf.Categorical(np.array([[0.0, np.nan]]), mask=np.array([[True, False]]))
        with pytest.raises(ValueError, match="row 1"):
            lf.Categorical(np.zeros((2, 2)), mask=np.array([[True, False], [False, False]]))
        with pytest.raises(ValueError, match="event_ndims"):
            lf.Normal(np.zeros(3), np.zeros(3), event_ndims=True)
        # mixed float32/float64 promotes to float64 on both paths
        d = lf.Normal(np.zeros(3, np.float32), np.zeros(3))
        assert d.dtype == np.float64
        assert {a.dtype for a in d._record} == {np.dtype(np.float64)}
        d = lf.Normal(np.zeros(3), np.zeros(3), event_ndims=1)
        assert d.batch_shape == () and d.event_shape == (3,)


def test_default_mask_is_private_to_each_distribution():
    logits = np.zeros((2, 3))
    d1 = lf.Categorical(logits)
    d2 = lf.Categorical(logits, mask=np.array([[True, False, True]] * 2))
    d3 = lf.Categorical(logits)
    # without a mask none is materialised (every class allowed); a given one is copied
    assert d1._record.mask.size == 0 and d3._record.mask.size == 0
    assert not d2._record.mask[:, 1].any()
    with pytest.raises(ValueError):
        d2._record.mask[0, 0] = True  # read-only
    np.testing.assert_array_equal(d3.probs, np.full((2, 3), 1 / 3))
    np.testing.assert_array_equal(d2.probs, np.tile([0.5, 0.0, 0.5], (2, 1)))


def test_mask_must_be_boolean():
    with pytest.raises(TypeError, match="mask"):
        lf.Categorical(np.zeros(3), mask=np.array([1, 0, 1]))


def test_unknown_backend():
    with pytest.raises(ValueError, match="backend"):
        lf.Normal(0.0, 0.0, backend="tpu")


def test_out_buffers_are_checked():
    d = lf.Normal(np.zeros(3), 0.0)
    with pytest.raises(ValueError, match="shape"):
        d.sample(2, out=np.empty((2, 4)))
    with pytest.raises(ValueError, match="dtype"):
        d.sample(2, out=np.empty((2, 3), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        d.sample(2, out=np.empty((3, 2)).T)
    with pytest.raises(TypeError, match="tuple"):
        d.sample_and_score(2, out=np.empty((2, 3)))
    with pytest.raises(TypeError, match="dict"):
        d.score(np.zeros((2, 3)), out={"loc": np.empty((2, 3))})


def test_kl_needs_the_same_family_and_shape():
    with pytest.raises(TypeError, match="Normal"):
        lf.Normal(0.0, 0.0).kl(lf.Categorical(np.zeros(2)))
    with pytest.raises(ValueError, match="shapes"):
        lf.Normal(np.zeros(2), 0.0).kl(lf.Normal(np.zeros(3), 0.0))


def test_score_function_bad_arguments():
    d = lf.Normal(np.zeros(2), 0.0)
    with pytest.raises(ValueError, match="baseline"):
        lf.score_function(d, f_sum, 10, baseline="median")
    with pytest.raises(ValueError, match="baseline"):
        lf.score_function(d, f_sum, 10, baseline=float("nan"))
    with pytest.raises(TypeError, match="njit"):
        lf.score_function(d, lambda x: x.sum(), 10)
    with pytest.raises(ValueError, match="n"):
        lf.score_function(d, f_sum, 1)
    with pytest.raises(ValueError, match="n is required"):
        lf.score_function(d, f_sum)
    with pytest.raises(ValueError, match="rewards"):
        lf.score_function(d)
    with pytest.raises(TypeError, match="dist"):
        lf.score_function("normal", f_sum, 10)
    x = d.sample(5)
    with pytest.raises(ValueError, match="rewards"):
        lf.score_function(d, rewards=np.zeros(4), x=x)
    with pytest.raises(ValueError, match="rewards"):
        lf.score_function(d, rewards=np.full(5, np.nan), x=x)
    with pytest.raises(ValueError, match="not both"):
        lf.score_function(d, f_sum, 5, rewards=np.zeros(5), x=x)


def test_pathwise_of_a_family_without_reparameterisation_names_the_family():
    # the family is the problem, whether df is given or not
    f = numba.njit(lambda x: x)
    for kw in ({}, {"df": numba.njit(lambda x: 1.0)}):
        with pytest.raises(TypeError, match="reparameterisable family.*Poisson has none"):
            lf.pathwise(lf.Poisson(np.zeros(2)), f, n=10, seed=0, **kw)


def test_score_function_f_with_the_wrong_signature():
    @numba.njit
    def two_args(x, y):
        return 0.0

    with pytest.raises(TypeError, match="f could not be called"):
        lf.score_function(lf.Normal(0.0, 0.0), two_args, 10)

    @numba.njit
    def returns_nan(x):
        return np.nan

    with pytest.raises(ValueError, match="NaN"):
        lf.score_function(lf.Normal(0.0, 0.0), returns_nan, 10)


def test_cuda_unavailable_says_how_to_get_it():
    """Without a GPU (and without the simulator) backend='cuda' is a clear error."""
    code = textwrap.dedent("""
        import lograd_fast as lf
        from lograd_fast._engine.cuda_status import status
        if status()[0] == "cuda":
            print("REAL-GPU")
        else:
            try:
                lf.Normal(0.0, 0.0, backend="cuda")
            except lf.CudaUnavailableError as exc:
                assert isinstance(exc, ValueError)
                print(exc)
    """)
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    if out.stdout.strip() != "REAL-GPU":
        assert "backend='cuda' is not available" in out.stdout
        assert "pip install" in out.stdout and "NUMBA_ENABLE_CUDASIM=1" in out.stdout


# ----------------------------------------------------------------------------- issue 15
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix itself
@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_out_must_be_exactly_an_ndarray(backend):
    """Issue 15 item 8: an np.matrix stays 2-D after reshape, so it passed the out=
    check and the kernel wrote past it (a segfault at garbage collection)."""
    d = lf.Normal(np.zeros(4), np.zeros(4), backend=backend)
    scores = {"loc": np.empty((6, 4)), "log_scale": np.empty((6, 4))}
    with pytest.raises(TypeError, match=r"out \(x\).*numpy.ndarray.*matrix"):
        d.sample_and_score(6, out=(np.asmatrix(np.empty((6, 4))), np.empty((6, 4)), scores))
    with pytest.raises(TypeError, match="matrix"):
        d.sample(6, out=np.asmatrix(np.empty((6, 4))))
    with pytest.raises(TypeError, match="matrix"):
        d.log_prob(np.zeros((6, 4)), out=np.asmatrix(np.empty((6, 4))))
    with pytest.raises(TypeError, match=r"out\['loc'\].*matrix"):
        d.score(np.zeros((6, 4)), out={"loc": np.asmatrix(np.empty((6, 4))),
                                       "log_scale": np.empty((6, 4))})
    # an exact ndarray of the right shape is still filled in place, with the right values
    buf = np.empty((6, 4))
    assert d.sample(6, seed=3, out=buf) is buf
    np.testing.assert_array_equal(buf, d.sample(6, seed=3))


def test_kl_checks_every_field_shape_and_dtype():
    """Issue 15 item 9: K of a Categorical was never compared (an out-of-bounds read
    returned -0.562)."""
    with pytest.raises(ValueError, match=r"kl: logits has shape \(1, 4\).*\(1, 3\)"):
        lf.Categorical(np.zeros(4)).kl(lf.Categorical(np.zeros(3)))
    with pytest.raises(ValueError, match="kl: .*shape"):
        lf.MultivariateNormal(np.zeros(3), np.zeros((3, 3))).kl(
            lf.MultivariateNormal(np.zeros(2), np.zeros((2, 2))))
    with pytest.raises(ValueError, match="kl: dtypes differ"):
        lf.Normal(np.zeros(2, np.float32), np.zeros(2, np.float32)).kl(
            lf.Normal(np.zeros(2), np.zeros(2)))
    with pytest.raises(TypeError, match="Categorical"):
        lf.Categorical(np.zeros(3)).kl(lf.Bernoulli(np.zeros(3)))
    # equal layouts still work: KL(p, p) = 0 and a known value (uniform vs one-hot-ish)
    logits = np.log(np.array([0.5, 0.25, 0.25]))
    got = lf.Categorical(np.zeros(3)).kl(lf.Categorical(logits))
    np.testing.assert_allclose(got, np.log(1 / 3) - np.log([0.5, 0.25, 0.25]).mean(),
                               rtol=1e-12)


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_aliased_out_buffers_are_refused(backend):
    """Issue 15 item 10: aliased out= buffers were accepted and gave wrong numbers."""
    d = lf.Normal(np.zeros(4), np.zeros(4), backend=backend)
    x, lp = np.empty((6, 4)), np.empty((6, 4))
    s = {"loc": np.empty((6, 4)), "log_scale": np.empty((6, 4))}
    with pytest.raises(ValueError, match=r"out \(x\) and out \(log_prob\) share memory"):
        d.sample_and_score(6, out=(x, x, s))
    with pytest.raises(ValueError, match="share memory"):
        d.sample_and_score(6, out=(x, lp, {"loc": s["loc"], "log_scale": s["loc"]}))
    with pytest.raises(ValueError, match="share memory"):
        d.score(np.zeros((6, 4)), out={"loc": s["loc"], "log_scale": s["loc"]})
    # overlapping views of one buffer (the second starts inside the first)
    big = np.empty(6 * 4 + 4)
    with pytest.raises(ValueError, match="share memory"):
        d.sample_and_score(6, out=(big[:24].reshape(6, 4), big[4:].reshape(6, 4), s))
    # adjacent, non-overlapping views of one buffer are fine, and give the right numbers
    big = np.empty(4 * 24)
    views = [big[i * 24:(i + 1) * 24].reshape(6, 4) for i in range(4)]
    got = d.sample_and_score(6, seed=1, out=(views[0], views[1],
                                             {"loc": views[2], "log_scale": views[3]}))
    ref = d.sample_and_score(6, seed=1)
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])
    for k in ref[2]:
        np.testing.assert_array_equal(got[2][k], ref[2][k])


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_out_sharing_memory_with_x_is_refused(backend):
    """``log_prob(x, out=x)`` and scores written over ``x`` were accepted: with event
    dims (a group reads E atoms, writes one) or several threads, a kernel reads values
    another part already overwrote.  Distinct buffers still give the same numbers."""
    d = lf.Normal(np.zeros(4), np.zeros(4), event_ndims=1, backend=backend)
    x = np.random.default_rng(0).normal(size=(6, 4))
    with pytest.raises(ValueError, match=r"out \(log_prob\) shares memory with x"):
        d.log_prob(x, out=x.reshape(-1)[:6])  # the first 6 values of x
    with pytest.raises(ValueError, match=r"out\['loc'\] shares memory with x"):
        d.score(x, out={"loc": x, "log_scale": np.empty((6, 4))})
    lp = np.empty(6)
    np.testing.assert_array_equal(d.log_prob(x, out=lp), d.log_prob(x))
    s = d.score(x, out={"loc": np.empty((6, 4)), "log_scale": np.empty((6, 4))})
    np.testing.assert_array_equal(s["loc"], d.score(x)["loc"])


# ------------------------------------------------------------- issue 15: unclear errors
@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("event_ndims", [0, 1])
def test_zero_size_batches(event_ndims, backend):
    """No elements: draws and scores are empty, log-probs and entropies are empty sums
    (0 over an empty event); the streaming estimators say there is nothing to estimate
    (were ZeroDivisionError / IndexError / "cannot reshape")."""
    d = lf.Normal(np.zeros(0), np.zeros(0), event_ndims=event_ndims, backend=backend)
    x, lp, s = d.sample_and_score(5)
    assert x.shape == (5, 0) and s["loc"].shape == (5, 0)
    assert lp.shape == ((5,) if event_ndims else (5, 0))
    assert np.all(lp == 0.0) and np.all(d.log_prob(x) == 0.0)
    assert np.all(d.entropy() == 0.0) and np.all(d.kl(d) == 0.0)
    assert d.entropy().shape == d.batch_shape
    if backend == "cpu":
        for run in (lambda: lf.score_function(d, f_sum, 10), lambda: lf.antithetic(d, f_sum, 10),
                    lambda: lf.measure_valued(d, f_sum, 10)):
            with pytest.raises(ValueError, match="dist has no elements"):
                run()


def test_log_prob_of_a_wrongly_shaped_x_names_the_expected_shape():
    d = lf.Normal(np.zeros((1, 3)), 0.0)
    for shape in [(2, 3), (5, 2, 3), (4,)]:
        with pytest.raises(ValueError, match=r"x has shape .*expected \(\.\.\., \*\(1, 3\)\)"):
            d.log_prob(np.zeros(shape))
    assert d.log_prob(np.zeros((5, 1, 1))).shape == (5, 1, 3)  # broadcasting still works


@pytest.mark.parametrize("n", [2**62, 10**12])
def test_huge_n_is_a_value_error_naming_n_and_the_bytes(n):
    d = lf.Normal(np.zeros(2), 0.0)
    # per draw: x 2 x 8 bytes; fused: + log_prob 2 x 8 + two scores 2 x 8 each
    for call, per_draw in ((d.sample, 16), (d.sample_and_score, 64)):
        with pytest.raises(ValueError, match=rf"n={n} needs .* GiB .*\({n * per_draw} bytes"):
            call(n)
    x = d.sample(2**25)  # big but in memory: allowed
    assert x.shape == (2**25, 2)


def test_empty_rewards_in_policy_gradient():
    d = lf.Categorical(np.zeros(3))
    for shape in [(0,), (2, 0), (0, 3)]:
        with pytest.raises(ValueError, match="rewards is empty"):
            lf.policy_gradient(d, np.zeros(shape, np.int64), np.zeros(shape))


def test_ragged_parameters_name_the_argument():
    with pytest.raises(TypeError, match="log_concentration"):
        lf.Dirichlet([[0.0, 1.0], [0.0]])
    with pytest.raises(TypeError, match="loc"):
        lf.MultivariateNormal([[0.0, 1.0], [0.0]], np.zeros((2, 2)))
    with pytest.raises(TypeError, match="scale_tril_unconstrained"):
        lf.MultivariateNormal(np.zeros(2), [[0.0, 1.0], [0.0]])
    with pytest.raises(TypeError, match="logits"):
        lf.MultiCategorical([[0.0, 1.0, 2.0], [0.0, 1.0]], nvec=[3, 2])


@pytest.mark.parametrize("family", [lf.Normal, lf.TanhNormal])
def test_the_first_bad_location_scale_element_names_the_error(family):
    """The construction's compiled pass only says that some element is bad; the
    message comes from the first bad element and its first failing test, in the order
    loc, log_scale, exp(log_scale) over/underflow (whatever comes later).  (The
    families whose ``prepare`` does not check finiteness, Laplace and LogNormal, check
    every ``loc`` before, in the generic construction.)"""
    loc = np.zeros(5)
    log_scale = np.zeros(5)
    log_scale[1] = 800.0  # exp overflows
    loc[3] = np.nan
    with pytest.raises(ValueError, match=r"over- or underflows \(e.g. 800.0\)"):
        family(loc, log_scale)
    log_scale[1] = -800.0  # exp underflows to 0
    with pytest.raises(ValueError, match=r"over- or underflows \(e.g. -800.0\)"):
        family(loc, log_scale)
    loc[1] = np.inf  # the same element: its loc is tested first
    with pytest.raises(ValueError, match="loc contains NaN or inf"):
        family(loc, log_scale)
    loc[1], log_scale[1] = 0.0, np.nan
    with pytest.raises(ValueError, match="log_scale contains NaN"):
        family(loc, log_scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_location_scale_batches_split_between_threads(dtype):
    """Above 8 chunks the scale pass runs in parts on the drivers' threads: every part's
    fields are written (against numpy's exp) and a bad element in the last part is
    still found and named."""
    n = 9 * 4096 + 5  # nine chunks and a tail: two parts on two threads
    rng = np.random.default_rng(3)
    loc = rng.normal(size=(n // 5, 5)).astype(dtype)
    log_scale = rng.normal(size=(n // 5, 5)).astype(dtype)
    before = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        rec = lf.Normal(loc, log_scale)._record
        want = np.exp(log_scale.astype(np.float64)).reshape(-1)
        np.testing.assert_allclose(rec.scale, want, rtol=4e-16)
        np.testing.assert_allclose(rec.inv_scale, 1.0 / want, rtol=4e-16)
        log_scale[-1, -1] = 800.0
        with pytest.raises(ValueError, match="over- or underflows"):
            lf.Normal(loc, log_scale)
        log_scale[-1, -1] = 0.0
        loc[-1, 2] = np.nan
        with pytest.raises(ValueError, match="loc contains NaN or inf"):
            lf.Normal(loc, log_scale)
    finally:
        numba.set_num_threads(before)
