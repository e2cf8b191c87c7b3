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


# --------------------------------------------------------------------------- KL building blocks
# A KL divergence between two members of an exponential family is a Bregman divergence
# of the log-normaliser: a difference of O(1) terms whose result is O(delta**2).  Taken
# literally (lgamma(a_q) - lgamma(a_p) - ...), it has an absolute error of eps times the
# terms, i.e. no relative accuracy when p ~ q, and can come out negative (issue 15,
# item 3).  The helpers below return such differences directly: exactly 0 at
# delta = 0, and to full relative accuracy for small delta.
_EXPM1MX_SERIES = tuple(1.0 / math.factorial(k) for k in range(2, 20))


@jitable
def _expm1mx1(x):
    """``expm1(x) - x`` (>= 0): Taylor series for ``|x| < 1/2``, else direct."""
    if abs(x) < 0.5:
        acc = 0.0
        for j in range(len(_EXPM1MX_SERIES) - 1, -1, -1):
            acc = acc * x + _EXPM1MX_SERIES[j]
        return acc * x * x
    return math.expm1(x) - x


@jitable
def _trigamma1(x):
    """psi'(x) for x > 0: recurrence up to x >= 10, then the asymptotic series
    ``1/x + 1/(2x^2) + sum B_2k / x^(2k+1)`` (A&S 6.4.12); relative error ~1e-16.
    Every term is positive below x = 10, so the sum keeps its relative accuracy."""
    acc = 0.0
    while x < 10.0:
        acc += 1.0 / (x * x)
        x += 1.0
    f = 1.0 / (x * x)
    series = f * (1.0 / 6 + f * (-1.0 / 30 + f * (1.0 / 42 + f * (-1.0 / 30 + f * (
        5.0 / 66 + f * (-691.0 / 2730 + f * (7.0 / 6)))))))
    return acc + 1.0 / x + 0.5 * f + series / x


# Gauss-Legendre on [0, 1] with the weight (1 - s) folded in: the integral
# int_0^1 (1 - s) g(s) ds of the Bregman remainders below
_GL_S, _GL_W = np.polynomial.legendre.leggauss(10)
BREGMAN_S = 0.5 * (_GL_S + 1.0)
BREGMAN_W = 0.5 * _GL_W * (1.0 - BREGMAN_S)


@jitable
def _lgamma_bregman1(x, delta):
    """``lgamma(x + delta) - lgamma(x) - psi(x) delta`` (>= 0) for ``x, x + delta > 0``.

    For ``|delta| <= x/4`` the Taylor remainder in integral form,
    ``delta**2 int_0^1 (1 - s) psi'(x + s delta) ds``, by 10-point Gauss-Legendre
    (the integrand's pole at 0 is >= 7 half-lengths away: converged to ~1e-19 relative);
    else the difference itself, which is then at least ~x/32 (large x) or 1/32."""
    if abs(delta) <= 0.25 * x:
        acc = 0.0
        for j in range(BREGMAN_S.shape[0]):
            acc += BREGMAN_W[j] * _trigamma1(x + BREGMAN_S[j] * delta)
        return delta * delta * acc
    return math.lgamma(x + delta) - math.lgamma(x) - _digamma1(x) * delta


def _vectorised(fn):
    def run(*args):
        if all(np.ndim(a) == 0 for a in args):
            return fn(*(float(a) for a in args))
        return np.vectorize(fn, otypes=[np.float64])(*args)

    return run


expm1mx = _shim(_vectorised(_expm1mx1), _expm1mx1, "expm1mx")
expm1mx.__doc__ = "``expm1mx(x) = expm1(x) - x`` to full relative accuracy (>= 0)."
trigamma = _shim(_vectorised(_trigamma1), _trigamma1, "trigamma")
trigamma.__doc__ = "``trigamma(x)`` for x > 0 (psi', the second derivative of lgamma)."
lgamma_bregman = _shim2(_vectorised(_lgamma_bregman1), _lgamma_bregman1, "lgamma_bregman",
                        "``lgamma_bregman(x, delta) = lgamma(x + delta) - lgamma(x) - "
                        "digamma(x) delta``\n(>= 0, exactly 0 at delta = 0, relative "
                        "accuracy ~1e-15 for small delta).")
__all__ += ["expm1mx", "trigamma", "lgamma_bregman"]


@jitable
def _nonneg1(x):
    return 0.0 if x < 0.0 else x  # NaN stays NaN


nonneg = _shim(lambda x: np.where(np.asarray(x) < 0.0, 0.0, x)[()], _nonneg1, "nonneg")
nonneg.__doc__ = ("``nonneg(x) = max(x, 0)`` (NaN stays NaN): a divergence computed to "
                  "full relative accuracy can still round to -1 ulp of 0.")
__all__ += ["nonneg"]


# --------------------------------------------------------------------------- tanh within 1 ulp
# tanh(a) = t / (t + 2), t = expm1(2a), rounds three times (t, t + 2, the quotient):
# up to ~2.4 ulp, and near 1 it moved draws onto TanhNormal's clip value (issue 15,
# item 4).  Here the sum and the quotient are made exact with Dekker's error-free
# transformations (no fma needed: CUDA, numpy and every CPU give the same bits), so
# only expm1's own error (amplified by <= 1) and the final rounding remain: within
# 1 ulp of the correctly rounded tanh (4001-point grids and 30 000 random points in
# the tests, against mpmath).
_SPLIT = 134217729.0  # 2**27 + 1
TANH_CUT = 0.55  # t / (t + 2) below, 1 - 2 / (t + 2) above (the better-conditioned form)
TANH_ONE = 22.0  # tanh(a) rounds to 1 for a >= 22 (fdlibm's bound)


@jitable
def _two_prod_err(a, b, p):
    """The rounding error ``a * b - p`` of ``p = fl(a * b)``, exactly (Dekker)."""
    c = _SPLIT * a
    a_hi = c - (c - a)
    a_lo = a - a_hi
    c = _SPLIT * b
    b_hi = c - (c - b)
    b_lo = b - b_hi
    return ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo


@jitable
def _tanh_small(a):
    """tanh(a) = t / (t + 2), t = expm1(2a), for 0 <= a < TANH_CUT (t < 2): the sum
    is split exactly (Fast2Sum) and the quotient corrected by its exact residual."""
    t = expm1(2.0 * a)
    s = t + 2.0
    s_lo = (2.0 - s) + t
    q = t / s
    p = q * s
    return q + (((t - p) - _two_prod_err(q, s, p)) - q * s_lo) / s


@jitable
def _tanh_large(a):
    """tanh(a) = 1 - 2 / (T + 2), T = expm1(2a) >= 2, for TANH_CUT <= a <= TANH_ONE:
    ``2 / (T + 2)`` as an exact double-double, subtracted from 1 exactly (Fast2Sum)."""
    t = expm1(2.0 * a)
    s = t + 2.0
    s_lo = (t - s) + 2.0
    x = 2.0 / s
    p = x * s
    x_lo = (((2.0 - p) - _two_prod_err(x, s, p)) - x * s_lo) / s
    h = 1.0 - x
    return h + (((1.0 - h) - x) - x_lo)


@jitable
def _tanh_abs1(a):
    if a < TANH_CUT:
        return _tanh_small(a)
    return _tanh_large(min(a, TANH_ONE))


def _tanh_abs_np(a):
    a = np.asarray(a, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(a < TANH_CUT, _tanh_small(np.minimum(a, TANH_CUT)),
                        _tanh_large(np.clip(a, TANH_CUT, TANH_ONE)))


tanh_abs = _shim(_tanh_abs_np, _tanh_abs1, "tanh_abs")
tanh_abs.__doc__ = ("``tanh_abs(a) = tanh(a)`` for ``a >= 0``, within 1 ulp of the correctly "
                    "rounded value, with the same formula on every backend.")
__all__ += ["tanh_abs"]
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


# --------------------------------------------------------------------------- exp, vectorisable
# ``exp`` as plain arithmetic, for the softmax weights of Categorical (one per class per
# row: the libm call was most of the fused row pass).  A loop of it vectorises (LLVM
# has no vector libm here) and every backend evaluates the same IEEE operations.
# x = k ln2 + r, |r| <= ln2/2 (Cody-Waite: fdlibm's split of ln2, k * _LN2_HI exact);
# e^r by its Taylor polynomial to r^13 (the first term left out, r^14/14! < 4.2e-18, is
# 0.04 ulp of e^r), summed as 1 + (r + r^2 P(r)); then times 2^k as two exact powers of
# two, so that a subnormal result is rounded once.
_EXP_TAYLOR = tuple(1.0 / math.factorial(n) for n in range(2, 14))  # 1/2! .. 1/13!
(_E2, _E3, _E4, _E5, _E6, _E7, _E8, _E9, _E10, _E11, _E12, _E13) = _EXP_TAYLOR
_INV_LN2 = 1.4426950408889634
_ROUND = 6755399441055744.0  # 1.5 * 2**52: x + _ROUND - _ROUND rounds x to an integer
_ROUND_BITS = np.int64(0x4338000000000000)  # the bits of _ROUND
_EXP_LO, _EXP_HI = -746.0, 710.0  # e^x rounds to 0 below, overflows above


@jitable
def exp_f64(x):
    """``exp(x)`` for float64 ``x`` within 1 ulp (0 below -745.14, ``inf`` above
    709.78, ``exp(0) == 1`` exactly, NaN stays NaN), branch-free: a loop of it
    vectorises.  Arrays in Python (``numpy.where`` for the clamps)."""
    x = where(x < _EXP_LO, _EXP_LO, where(x > _EXP_HI, _EXP_HI, x))
    t = x * _INV_LN2 + _ROUND  # k in the low bits of t's mantissa
    kf = t - _ROUND
    k = np.float64(t).view(np.int64) - _ROUND_BITS
    r = (x - kf * _LN2_HI) - kf * _LN2_LO
    p = _E12 + r * _E13
    p = _E11 + r * p
    p = _E10 + r * p
    p = _E9 + r * p
    p = _E8 + r * p
    p = _E7 + r * p
    p = _E6 + r * p
    p = _E5 + r * p
    p = _E4 + r * p
    p = _E3 + r * p
    p = _E2 + r * p
    y = 1.0 + (r + r * r * p)
    k1 = k >> 1
    k2 = k - k1
    return (y * np.int64((k1 + 1023) << 52).view(np.float64)) * np.int64(
        (k2 + 1023) << 52).view(np.float64)


__all__ += ["exp_f64"]
