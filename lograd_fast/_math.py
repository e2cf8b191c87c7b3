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

__all__ = ["exp", "log", "log1p", "expm1", "sqrt", "tanh", "lgamma"]


def _shim(np_fn, math_fn, name):
    def fn(x):
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
