"""Counter-based random numbers: Philox4x32-10 and the draws built on it.

Every random number in lograd_fast is a pure function of ``(seed, stream, atom, block)``:

* ``key     = (seed mod 2**32, seed div 2**32)``
* ``counter = (block, atom mod 2**32, atom div 2**32, stream)``

where ``atom`` is the flat index of the scalar (or row) being drawn in a call and
``block = 0, 1, 2, ...`` counts the Philox blocks that atom consumes (a rejection
sampler simply takes more blocks).  There is no generator state, so results are
bitwise identical for any thread count, on CPU and GPU, and when a job is split.

A *stream tuple* ``st = (k0, k1, atom_lo, atom_hi, stream)`` (five uint64 holding
32-bit values) identifies an atom; :func:`philox_block` turns ``(st, block)`` into
four 32-bit words.  All words are carried in uint64 so that the 32x32->64 bit
products of Philox are exact in Numba, in CUDA and in plain Python alike.

Draws
-----
* :func:`u01_f64` / :func:`u01_f32`: uniforms strictly inside (0, 1)
  (``(k + 1/2) 2**-52`` and ``(k + 1/2) 2**-23``), so a ``log`` of them is finite.
* :func:`std_normal`: the ziggurat method (Marsaglia & Tsang 2000, 256 layers):
  one block per normal on the fast path (~99% of draws).  Float32 uses one 32-bit
  word (8 layer bits, 1 sign bit, 23 mantissa bits), float64 one 64-bit word
  (8 + 1 + 52 bits).  About 3x faster than Box-Muller here (see benchmarks).
* :func:`std_exponential`: inversion ``-log(u)``.

References: Salmon et al., "Parallel random numbers: as easy as 1, 2, 3" (SC11);
Marsaglia & Tsang, "The ziggurat method for generating random variables" (JSS 2000).
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import by_dtype, jitable

__all__ = [
    "philox4x32",
    "philox_block",
    "make_stream",
    "u01_f64",
    "u01_f32",
    "uniform",
    "std_normal",
    "std_exponential",
    "ZIGGURAT",
]

_U = np.uint64
_MASK32 = _U(0xFFFFFFFF)
_SHIFT32 = _U(32)
_PHILOX_M0 = _U(0xD2511F53)
_PHILOX_M1 = _U(0xCD9E8D57)
_PHILOX_W0 = _U(0x9E3779B9)
_PHILOX_W1 = _U(0xBB67AE85)


@jitable
def _philox_round(c0, c1, c2, c3, k0, k1):
    p0 = _PHILOX_M0 * c0
    p1 = _PHILOX_M1 * c2
    return (
        (p1 >> _SHIFT32) ^ c1 ^ k0,
        p1 & _MASK32,
        (p0 >> _SHIFT32) ^ c3 ^ k1,
        p0 & _MASK32,
    )


@jitable
def _bump(k0, k1):
    return (k0 + _PHILOX_W0) & _MASK32, (k1 + _PHILOX_W1) & _MASK32


@jitable
def philox4x32(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of counter ``(c0..c3)`` under key ``(k0, k1)`` (uint64 words)."""
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, k0, k1)
    k0, k1 = _bump(k0, k1)
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, k0, k1)
    k0, k1 = _bump(k0, k1)
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, k0, k1)
    k0, k1 = _bump(k0, k1)
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, k0, k1)
    k0, k1 = _bump(k0, k1)
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, k0, k1)
    k0, k1 = _bump(k0, k1)
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, k0, k1)
    k0, k1 = _bump(k0, k1)
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, k0, k1)
    k0, k1 = _bump(k0, k1)
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, k0, k1)
    k0, k1 = _bump(k0, k1)
    c0, c1, c2, c3 = _philox_round(c0, c1, c2, c3, k0, k1)
    k0, k1 = _bump(k0, k1)
    return _philox_round(c0, c1, c2, c3, k0, k1)


@jitable
def make_stream(seed_lo, seed_hi, stream, atom):
    """The stream tuple of atom ``atom`` (a non-negative int64) of a call."""
    a = _U(atom)
    return (seed_lo, seed_hi, a & _MASK32, a >> _SHIFT32, stream)


@jitable
def philox_block(st, block):
    """Four uint32 words (as uint64) of block ``block`` of the atom ``st``."""
    return philox4x32(_U(block), st[2], st[3], st[4], st[0], st[1])


@jitable
def u01_f64(w_hi, w_lo):
    """Uniform float64 in (0, 1) from 52 bits of two words: ``(k + 1/2) / 2**52``."""
    k = ((w_hi << _U(20)) | (w_lo >> _U(12))) & _U(0xFFFFFFFFFFFFF)
    return (np.float64(k) + 0.5) * 2.220446049250313e-16


@jitable
def u01_f32(w):
    """Uniform float32 in (0, 1) from 23 bits of one word: ``(k + 1/2) / 2**23``."""
    k = w >> _U(9)
    return np.float32((np.float64(k) + 0.5) * 1.1920928955078125e-07)


# --------------------------------------------------------------------------
# Ziggurat tables (computed here, at import, from the definition).
#
# Layers i = 0..N-1 with boundaries X[0] > X[1] = r > X[2] > ... > X[N] = 0 and
# f(x) = exp(-x^2/2); every layer has area v.  Layer i >= 1 is the box
# [0, X[i]] x [f(X[i]), f(X[i+1])]; layer 0 is the base box [0, r] x [0, f(r)]
# plus the tail x > r, given the pseudo-width X[0] = v / f(r).
# Draw layer i and x = U * X[i]; if x < X[i+1] accept at once.
# --------------------------------------------------------------------------
_ZIG_N = 256


def _ziggurat_boundaries(r: float) -> tuple[np.ndarray, float]:
    """Boundaries X for a tail start r, and the residual f(X[N-1]) + v/X[N-1] - 1."""
    f_r = math.exp(-0.5 * r * r)
    tail = math.sqrt(math.pi / 2.0) * math.erfc(r / math.sqrt(2.0))
    v = r * f_r + tail
    x = np.empty(_ZIG_N + 1)
    x[0] = v / f_r
    x[1] = r
    for i in range(1, _ZIG_N - 1):
        y = math.exp(-0.5 * x[i] * x[i]) + v / x[i]
        if y >= 1.0:
            return x, 1.0  # r too small: the layers reach the top too early
        x[i + 1] = math.sqrt(-2.0 * math.log(y))
    x[_ZIG_N] = 0.0
    residual = math.exp(-0.5 * x[_ZIG_N - 1] ** 2) + v / x[_ZIG_N - 1] - 1.0
    return x, residual


def _solve_ziggurat() -> np.ndarray:
    lo, hi = 3.0, 4.0  # residual(lo) > 0 > residual(hi)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        _, res = _ziggurat_boundaries(mid)
        if res > 0.0:
            lo = mid
        else:
            hi = mid
    x, _ = _ziggurat_boundaries(hi)
    return x


_ZX = _solve_ziggurat()
ZIGGURAT = {"r": float(_ZX[1]), "x": _ZX}
_ZIG_R = float(_ZX[1])
_ZIG_INV_R = 1.0 / _ZIG_R
# float64 path: 52-bit magnitudes
_ZW64 = _ZX[:-1] / 2.0**52
_ZK64 = np.floor(2.0**52 * (_ZX[1:] / _ZX[:-1])).astype(np.uint64)
_ZF64 = np.exp(-0.5 * _ZX**2)
# float32 path: 23-bit magnitudes, float32 tables
_ZW32 = (_ZX[:-1] / 2.0**23).astype(np.float32)
_ZK32 = np.floor(2.0**23 * (_ZX[1:] / _ZX[:-1])).astype(np.uint64)
_ZF32 = np.exp(-0.5 * _ZX**2).astype(np.float32)


@jitable
def _normal_tail(st, block, negative):
    """Tail x > r of the normal (Marsaglia 1964): returns (x, next block)."""
    while True:
        w = philox_block(st, block)
        block += 1
        xx = -math.log(u01_f64(w[0], w[1])) * _ZIG_INV_R
        yy = -math.log(u01_f64(w[2], w[3]))
        if yy + yy > xx * xx:
            x = _ZIG_R + xx
            return (-x if negative else x), block


@jitable
def _std_normal_f64(st, block):
    while True:
        w = philox_block(st, block)
        block += 1
        r = (w[0] << _SHIFT32) | w[1]
        idx = r & _U(0xFF)
        negative = ((r >> _U(8)) & _U(1)) != _U(0)
        rabs = r >> _U(12)  # 52 bits
        x = np.float64(rabs) * _ZW64[idx]
        if rabs < _ZK64[idx]:
            return (-x if negative else x), block
        if idx == _U(0):
            return _normal_tail(st, block, negative)
        # wedge: uniform height inside layer idx, from the unused words
        u = u01_f64(w[2], w[3])
        y = _ZF64[idx] + u * (_ZF64[idx + _U(1)] - _ZF64[idx])
        if y < math.exp(-0.5 * x * x):
            return (-x if negative else x), block


@jitable
def _std_normal_f32(st, block):
    while True:
        w = philox_block(st, block)
        block += 1
        r = w[0]
        idx = r & _U(0xFF)
        negative = ((r >> _U(8)) & _U(1)) != _U(0)
        rabs = r >> _U(9)  # 23 bits
        x = np.float32(rabs) * _ZW32[idx]
        if rabs < _ZK32[idx]:
            return (-x if negative else x), block
        if idx == _U(0):
            t, block = _normal_tail(st, block, negative)
            return np.float32(t), block
        u = u01_f32(w[1])
        y = _ZF32[idx] + u * (_ZF32[idx + _U(1)] - _ZF32[idx])
        if np.float64(y) < math.exp(-0.5 * np.float64(x) * np.float64(x)):
            return (-x if negative else x), block


std_normal = by_dtype(_std_normal_f32, _std_normal_f64)
std_normal.__doc__ = """``std_normal(like, st, block) -> (z, next_block)``: a standard normal.

``like`` (an array or scalar) picks float32 or float64; ``st`` is the atom's stream
tuple and ``block`` the first Philox block to use."""


@jitable
def _uniform_f64(st, block):
    w = philox_block(st, block)
    return u01_f64(w[0], w[1]), block + 1


@jitable
def _uniform_f32(st, block):
    w = philox_block(st, block)
    return u01_f32(w[0]), block + 1


uniform = by_dtype(_uniform_f32, _uniform_f64)
uniform.__doc__ = """``uniform(like, st, block) -> (u, next_block)``: u uniform in (0, 1)."""


@jitable
def _std_exponential_f64(st, block):
    u, block = _uniform_f64(st, block)
    return -math.log(u), block


@jitable
def _std_exponential_f32(st, block):
    u, block = _uniform_f32(st, block)
    return np.float32(-math.log(np.float64(u))), block


std_exponential = by_dtype(_std_exponential_f32, _std_exponential_f64)
std_exponential.__doc__ = """``std_exponential(like, st, block) -> (e, next_block)``: Exp(1)."""
