"""The fast paths of Categorical (issues 14 and 16): our vectorisable ``exp`` of the
softmax weights (accuracy in ulp against mpmath), the private copy of the logits made
in the construction's checking pass, and the row kernels split into vectorisable loops."""

import mpmath
import numpy as np
from numba import njit

from lograd_fast._engine import maths

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
