"""Elementary functions usable from njit code, CUDA device code *and* numpy arrays.

Formula helpers of the families call ``_math.exp(x)`` etc.  Compiled (CPU or
CUDA) they lower to ``math.exp`` on scalars (numba-cuda supports ``math`` but not
numpy ufuncs in device code); called from Python they are the numpy ufuncs, so
the same helper evaluates a whole array for the numpy backend.  One formula, three
targets.
"""

from __future__ import annotations

import math

import numpy as np
from numba.extending import overload

from .jit import jitable

__all__ = ["exp", "log", "log1p", "expm1", "sqrt", "tanh", "atanh", "lgamma", "digamma",
           "softplus", "erfc"]


def _shim(np_fn, math_fn, name):
    def fn(x):
        # Python scalars (CUDA simulator, NUMBA_DISABLE_JIT) take the very function the
        # compiled code calls, so they agree bitwise (np.tanh and math.tanh differ in
        # the last bit for ~20% of inputs here); arrays take numpy.
        if np.ndim(x) == 0:
            try:
                return math_fn(x)
            except (ValueError, OverflowError):  # compiled code gives IEEE -inf/inf/nan
                with np.errstate(all="ignore"):
                    return np_fn(np.float64(x))
        return np_fn(x)

    @overload(fn, target="generic", strict=False)
    def _overload(x):
        def impl(x):
            return math_fn(x)

        return impl

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"``{name}(x)``: ``math.{name}`` when compiled, ``numpy`` on arrays in Python."
    return fn


def _np_lgamma(x):
    if np.ndim(x) == 0:
        return math.lgamma(x)
    return np.vectorize(math.lgamma, otypes=[np.float64])(x)


exp = _shim(np.exp, math.exp, "exp")
log = _shim(np.log, math.log, "log")
log1p = _shim(np.log1p, math.log1p, "log1p")
expm1 = _shim(np.expm1, math.expm1, "expm1")
sqrt = _shim(np.sqrt, math.sqrt, "sqrt")
tanh = _shim(np.tanh, math.tanh, "tanh")
lgamma = _shim(_np_lgamma, math.lgamma, "lgamma")
atanh = _shim(np.arctanh, math.atanh, "atanh")
erfc = _shim(lambda x: np.vectorize(math.erfc, otypes=[np.float64])(x) if np.ndim(x)
             else math.erfc(x), math.erfc, "erfc")


@jitable
def _digamma1(x):
    """psi(x) for x > 0: recurrence up to x >= 10, then the asymptotic series
    (Abramowitz & Stegun 6.3.18); absolute error ~1e-15."""
    acc = 0.0
    while x < 10.0:
        acc -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    series = f * (-1.0 / 12 + f * (1.0 / 120 + f * (-1.0 / 252 + f * (
        1.0 / 240 + f * (-1.0 / 132 + f * (691.0 / 32760 + f * (-1.0 / 12)))))))
    return acc + math.log(x) - 0.5 / x + series


def _np_digamma(x):
    if np.ndim(x) == 0:
        return _digamma1(float(x))
    return np.vectorize(_digamma1, otypes=[np.float64])(x)


digamma = _shim(_np_digamma, _digamma1, "digamma")
digamma.__doc__ = "``digamma(x)`` for x > 0 (psi, the derivative of lgamma)."


@jitable
def _softplus1(x):
    if x > 0.0:
        return x + math.log1p(math.exp(-x))
    return math.log1p(math.exp(x))


softplus = _shim(lambda x: np.logaddexp(0.0, x), _softplus1, "softplus")
softplus.__doc__ = "``softplus(x) = log(1 + exp(x))`` without overflow."


# --------------------------------------------------------------------------- xlogy, xlog1py
# ``a * log(x)`` with the convention 0 * log(0) = 0 (scipy.special.xlogy): the
# log-density terms (alpha - 1) log x of Gamma/Beta/Dirichlet at alpha = 1, x = 0
# are then 0 (the density is finite there) instead of 0 * -inf = NaN.
@jitable
def _xlogy1(a, x):
    if a == 0.0:
        return 0.0
    return a * math.log(x)


@jitable
def _xlog1py1(a, y):
    if a == 0.0:
        return 0.0
    return a * math.log1p(y)


def _np_xlogy(a, x):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.asarray(a) == 0.0, 0.0, a * np.log(x))[()]


def _np_xlog1py(a, y):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.asarray(a) == 0.0, 0.0, a * np.log1p(y))[()]


def _shim2(np_fn, scalar_fn, name, doc):
    def fn(a, x):
        # Python scalars (CUDA simulator, NUMBA_DISABLE_JIT) take the compiled code's
        # function, as in ``_shim``; where Python's math raises (log(0)), numpy gives
        # the IEEE value the compiled code gives too.
        if np.ndim(a) == 0 and np.ndim(x) == 0:
            try:
                return scalar_fn(a, x)
            except (ValueError, OverflowError):
                pass
        return np_fn(a, x)

    @overload(fn, target="generic", strict=False)
    def _overload(a, x):
        def impl(a, x):
            return scalar_fn(a, x)

        return impl

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


xlogy = _shim2(_np_xlogy, _xlogy1, "xlogy",
               "``xlogy(a, x) = a * log(x)``, and 0 where ``a == 0`` (even at x = 0).")
xlog1py = _shim2(_np_xlog1py, _xlog1py1, "xlog1py",
                 "``xlog1py(a, y) = a * log1p(y)``, and 0 where ``a == 0`` (even at y = -1).")
__all__ += ["xlogy", "xlog1py"]
