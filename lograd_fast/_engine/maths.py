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
    fn.__jitable__, fn.__compiled__ = True, math_fn  # see jit.cpu_inline
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
    fn.__jitable__, fn.__compiled__ = True, scalar_fn  # see jit.cpu_inline
    return fn


xlogy = _shim2(_np_xlogy, _xlogy1, "xlogy",
               "``xlogy(a, x) = a * log(x)``, and 0 where ``a == 0`` (even at x = 0).")
xlog1py = _shim2(_np_xlog1py, _xlog1py1, "xlog1py",
                 "``xlog1py(a, y) = a * log1p(y)``, and 0 where ``a == 0`` (even at y = -1).")
__all__ += ["xlogy", "xlog1py"]


# --------------------------------------------------------------------------- vectorisable kernels
# log, sin and cos as plain arithmetic (bit operations, +, *, /): unlike a libm call, LLVM
# turns a loop of them into SIMD code (there is no vector libm here), and numpy, Numba
# and the CUDA simulator evaluate them with the same IEEE operations in the same order,
# so the random draws built on them (``_engine/rng.py``) agree bitwise on every backend.
# The vectorised loops inline CPU copies of them (``jit.cpu_inline``); elsewhere they are
# ordinary calls.
# Coefficients: fdlibm (e_log.c, k_sin.c, k_cos.c: errors < 1 ulp) for float64;
# fdlibm's e_logf.c and Cephes' sinf/cosf for float32.
_U = np.uint64
_U32 = np.uint32
_LG1, _LG2 = 6.666666666666735130e-01, 3.999999999940941908e-01
_LG3, _LG4 = 2.857142874366239149e-01, 2.222219843214978396e-01
_LG5, _LG6, _LG7 = 1.818357216161805012e-01, 1.531383769920937332e-01, 1.479819860511658591e-01
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10
_S1, _S2 = -1.66666666666666324348e-01, 8.33333333332248946124e-03
_S3, _S4 = -1.98412698298579493134e-04, 2.75573137070700676789e-06
_S5, _S6 = -2.50507602534068634195e-08, 1.58969099521155010221e-10
_C1, _C2 = 4.16666666666666019037e-02, -1.38888888888741095749e-03
_C3, _C4 = 2.48015872894767294178e-05, -2.75573143513906633035e-07
_C5, _C6 = 2.08757232129817482790e-09, -1.13596475577881948265e-11
_F = np.float32
_LG1F, _LG2F = _F(0.66666662693), _F(0.40000972152)
_LG3F, _LG4F = _F(0.28498786688), _F(0.24279078841)
_LN2_HIF, _LN2_LOF = _F(6.9313812256e-01), _F(9.0580006145e-06)
_S1F, _S2F, _S3F = _F(-1.6666654611e-1), _F(8.3321608736e-3), _F(-1.9515295891e-4)
_C1F, _C2F, _C3F = _F(4.166664568298827e-2), _F(-1.388731625493765e-3), _F(2.443315711809948e-5)
_HALF_F, _ONE_F, _TWO_F = _F(0.5), _F(1.0), _F(2.0)


@jitable
def log_f64(x):
    """``log(x)`` for a positive, normal float64 ``x`` (< 1 ulp; fdlibm's algorithm:
    ``x = 2**k (1 + f)`` with ``sqrt(2)/2 < 1 + f < sqrt(2)``, then a polynomial in
    ``s = f / (2 + f)``), branch-free; no special cases (0, inf, NaN, subnormals)."""
    bits = np.float64(x).view(np.uint64)
    hx = bits >> _U(32)
    k = np.int64(hx >> _U(20)) - 1023
    hx = hx & _U(0x000FFFFF)
    i = (hx + _U(0x95F64)) & _U(0x100000)  # 0x100000 where the mantissa >= sqrt(2)
    k = k + np.int64(i >> _U(20))
    f = np.uint64(((hx | (i ^ _U(0x3FF00000))) << _U(32)) | (bits & _U(0xFFFFFFFF))).view(
        np.float64) - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    r = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7))) + w * (_LG2 + w * (_LG4 + w * _LG6))
    hfsq = 0.5 * f * f
    dk = np.float64(k)
    return dk * _LN2_HI - ((hfsq - (s * (hfsq + r) + dk * _LN2_LO)) - f)


@jitable
def log_f32(x):
    """``log(x)`` for a positive, normal float32 ``x``, in float32 arithmetic (fdlibm's
    e_logf.c, ~1 ulp), branch-free; no special cases."""
    bits = np.float32(x).view(np.uint32)
    ix = bits & _U32(0x007FFFFF)
    i = (ix + _U32(0x4AFB20)) & _U32(0x800000)  # 0x800000 where the mantissa >= sqrt(2)
    k = np.int32(bits >> _U32(23)) - np.int32(127) + np.int32(i >> _U32(23))
    f = np.uint32(ix | (i ^ _U32(0x3F800000))).view(np.float32) - _ONE_F
    s = f / (_TWO_F + f)
    z = s * s
    w = z * z
    r = z * (_LG1F + w * _LG3F) + w * (_LG2F + w * _LG4F)
    hfsq = _HALF_F * f * f
    dk = np.float32(k)
    return dk * _LN2_HIF - ((hfsq - (s * (hfsq + r) + dk * _LN2_LOF)) - f)


@jitable
def sin_kernel_f64(x):
    """``sin(x)`` for ``|x| <= pi/4`` (fdlibm's __kernel_sin, < 1 ulp)."""
    z = x * x
    r = _S2 + z * (_S3 + z * (_S4 + z * (_S5 + z * _S6)))
    return x + z * x * (_S1 + z * r)


@jitable
def cos_kernel_f64(x):
    """``cos(x)`` for ``|x| <= pi/4`` (fdlibm's __kernel_cos, < 1 ulp)."""
    z = x * x
    r = z * (_C1 + z * (_C2 + z * (_C3 + z * (_C4 + z * (_C5 + z * _C6)))))
    hz = 0.5 * z
    w = 1.0 - hz
    return w + (((1.0 - w) - hz) + z * r)


@jitable
def sin_kernel_f32(x):
    """``sin(x)`` for ``|x| <= pi/4``, float32 (Cephes' sinf polynomial)."""
    z = x * x
    return ((_S3F * z + _S2F) * z + _S1F) * z * x + x


@jitable
def cos_kernel_f32(x):
    """``cos(x)`` for ``|x| <= pi/4``, float32 (Cephes' cosf polynomial)."""
    z = x * x
    return ((_C3F * z + _C2F) * z + _C1F) * z * z - _HALF_F * z + _ONE_F


def _where_compiled(cond, a, b):
    return a if cond else b


def where(cond, a, b):
    """``a if cond else b``, elementwise on arrays (``numpy.where``); a select (no branch)
    in compiled code."""
    return np.where(cond, a, b)[()]


jitable(where, compiled=_where_compiled)
