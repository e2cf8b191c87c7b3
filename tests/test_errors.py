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
    with pytest.raises(ValueError, match="2\\*\\*62"):
        lf.Normal(np.zeros(4), 0.0).sample(2**61)


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
    # a masked action is a valid index with probability 0: -inf, not an error
    lp = d.log_prob(np.array([1, 1]))
    assert lp[0] == -np.inf and np.isfinite(lp[1])
    # but its score is undefined
    with pytest.raises(ValueError, match="masked"):
        d.score(np.array([1, 1]))


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
