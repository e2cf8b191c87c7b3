"""Counter-based random numbers: Philox4x32-10 and the draws built on it.

Every random number in lograd_fast is a pure function of the key
``(seed mod 2**32, seed div 2**32)``, the stream id and a counter; there is no
generator state, so results are bitwise identical for any thread count, on CPU and
GPU, and when a job is split.  Counters ``(c0, c1, c2, c3)`` come in two spaces:

* **Variates** (``c0 = 0``): the draws a family's sampler needs for every atom (one
  normal per Normal atom, ``D`` normals per multivariate-normal row, one uniform per
  Bernoulli atom, ...) are numbered ``v = atom * V + k`` (``V`` per atom, ``k < V``;
  ``atom`` counts from the call's first atom plus the key's atom offset) and packed
  ``L`` to a Philox block: variate ``v`` is lane ``v mod L`` of block
  ``(0, g mod 2**32, g div 2**32, stream)`` with ``g = v div L``.  The CPU drivers
  compute them for thousands of atoms at a time in flat loops that LLVM vectorises
  (:func:`fill_variates`), then run the per-atom maths; the CUDA kernels and plain
  Python compute an atom's own variates on demand (:func:`normal_variate`, ...).

  ================  =====================  ===========================================
  kind              L (float64 / float32)  lanes of one block ``(w0, w1, w2, w3)``
  ================  =====================  ===========================================
  ``normal``        2 / 4                  Box-Muller pairs: float64 ``(u1, u2)`` =
                                           52-bit uniforms of ``(w0, w1)``, ``(w2, w3)``
                                           -> lanes ``r cos t``, ``r sin t``; float32
                                           pairs ``(w0, w1)`` and ``(w2, w3)``
  ``uniform``       2 / 4                  ``u01_f64(w0, w1)``, ``u01_f64(w2, w3)`` /
                                           ``u01_f32(w_i)``
  ``exponential``   2 / 4                  ``-log`` of the ``uniform`` lanes
  ``uniform64``     2 (any dtype)          the float64 uniforms (discrete families)
  ``block``         1 block per atom       the atom's whole block ``(0, atom, stream)``
  ================  =====================  ===========================================

* **Per-atom blocks** (``c0 = block >= 1``, or ``0`` for the ``block`` kind): counter
  ``(block, atom mod 2**32, atom div 2**32, stream)``, for rejection samplers that need
  an unbounded number of draws (gamma, Poisson's PTRS, ...): :func:`philox_block`.

The two spaces never meet (``c0 = 0`` for variates of a group ``g``, ``c0 >= 1`` for
an atom's extra blocks), so the draws of one call are independent.

Transforms (all pure arithmetic, so numpy, Numba and CUDA agree bitwise and LLVM
vectorises them):

* :func:`u01_f64` / :func:`u01_f32`: uniforms strictly inside (0, 1)
  (``(k + 1/2) 2**-52`` and ``(k + 1/2) 2**-23``), so a ``log`` of them is finite.
* Normals by Box-Muller with our own polynomial ``log`` / ``sin`` / ``cos``
  (``_engine/maths.py``): ``r = sqrt(-2 log u1)``, ``t`` uniform on the circle, the
  quadrant taken exactly from the integer bits.  float64: ``u1 >= 2**-53``, so
  ``|z| <= 8.57``; float32 draws are computed in float32 (twice the SIMD lanes) from a
  32-bit ``u1 >= 2**-33``: ``|z| <= 6.77``.

References: Salmon et al., "Parallel random numbers: as easy as 1, 2, 3" (SC11);
Box & Muller, "A note on the generation of random normal deviates" (1958).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit, types
from numba.extending import overload

from .jit import (
    _JIT_OPTIONS,
    _inline_on_cpu,
    always_inline,
    by_dtype,
    cpu_inline,
    jitable,
    jitable_flat,
    jitable_hot,
    jitable_outline,
)
from .maths import (
    cos_kernel_f32,
    cos_kernel_f64,
    log_f32,
    log_f64,
    sin_kernel_f32,
    sin_kernel_f64,
    sqrt,
    where,
)

__all__ = [
    "philox4x32",
    "philox_block",
    "make_stream",
    "u01_f64",
    "u01_f32",
    "uniform",
    "std_normal",
    "std_exponential",
    "std_gamma_log",
    "std_gamma_log_from",
    "Variates",
    "normal_variate",
    "uniform_variate",
    "exponential_variate",
    "fill_variates",
]

_U = np.uint64
_F = np.float32
_MASK32 = _U(0xFFFFFFFF)
_SHIFT32 = _U(32)
_PHILOX_M0 = _U(0xD2511F53)
_PHILOX_M1 = _U(0xCD9E8D57)
_PHILOX_W0 = _U(0x9E3779B9)
_PHILOX_W1 = _U(0xBB67AE85)


def _philox4x32(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of counter ``(c0..c3)`` under key ``(k0, k1)`` (uint64 words)."""
    for _ in range(9):
        p0 = _PHILOX_M0 * c0
        p1 = _PHILOX_M1 * c2
        c0, c1, c2, c3 = (p1 >> _SHIFT32) ^ c1 ^ k0, p1 & _MASK32, \
            (p0 >> _SHIFT32) ^ c3 ^ k1, p0 & _MASK32
        k0 = (k0 + _PHILOX_W0) & _MASK32
        k1 = (k1 + _PHILOX_W1) & _MASK32
    p0 = _PHILOX_M0 * c0
    p1 = _PHILOX_M1 * c2
    return (p1 >> _SHIFT32) ^ c1 ^ k0, p1 & _MASK32, (p0 >> _SHIFT32) ^ c3 ^ k1, p0 & _MASK32


# Philox is an ordinary compiled call where one block is needed at a time (rejection
# samplers, CUDA); the CPU's variate passes inline a copy of it (``cpu_inline``) into
# flat loops that LLVM vectorises: all 10 rounds of 8 blocks per AVX-512 instruction.
philox4x32 = jitable(_philox4x32)
philox4x32.__name__ = philox4x32.__qualname__ = "philox4x32"


# --------------------------------------------------------------------------- uniforms
@jitable_hot
def u01_f64(w_hi, w_lo):
    """Uniform float64 in (0, 1) from 52 bits of two words: ``(k + 1/2) / 2**52``."""
    k = ((w_hi << _U(20)) | (w_lo >> _U(12))) & _U(0xFFFFFFFFFFFFF)
    return (np.float64(k) + 0.5) * 2.220446049250313e-16


@jitable_hot
def u01_f32(w):
    """Uniform float32 in (0, 1) from 23 bits of one word: ``(k + 1/2) / 2**23``."""
    k = w >> _U(9)
    return np.float32((np.float64(k) + 0.5) * 1.1920928955078125e-07)


# --------------------------------------------------------------------------- Box-Muller
_HALF_PI_2M50 = (math.pi / 2.0) * 2.0**-50
_HALF_PI_2M24 = _F((math.pi / 2.0) * 2.0**-24)
_TWO_M32 = 2.0**-32
_MINUS_TWO_F = _F(-2.0)
_HALF_F = _F(0.5)


@jitable
def _quarter_turns(q, c, s):
    """``(cos, sin)`` of ``t + q pi/2`` from ``c, s = cos t, sin t`` (exact: swaps and
    sign flips); ``q`` in 0..3 (uint64)."""
    swap = (q & _U(1)) != _U(0)
    cq = where(swap, s, c)
    sq = where(swap, c, s)
    return (where(((q + _U(1)) & _U(2)) != _U(0), -cq, cq),
            where((q & _U(2)) != _U(0), -sq, sq))


def box_muller_f64(w0, w1, w2, w3):
    """Two independent float64 standard normals from one Philox block.

    ``r = sqrt(-2 log u1)`` with ``u1 = u01_f64(w0, w1)``; the angle is the 52-bit
    integer ``k`` of ``(w2, w3)``: quadrant ``k >> 50``, and ``t = (j + 1/2) pi/2**51``
    with ``j = (k mod 2**50) - 2**49``, so ``|t| < pi/4`` where the kernels are exact."""
    r = sqrt(-2.0 * log_f64(u01_f64(w0, w1)))
    k = ((w2 << _U(20)) | (w3 >> _U(12))) & _U(0xFFFFFFFFFFFFF)
    j = np.int64(k & _U(0x3FFFFFFFFFFFF)) - np.int64(0x2000000000000)
    t = (np.float64(j) + 0.5) * _HALF_PI_2M50
    c, s = _quarter_turns(k >> _U(50), cos_kernel_f64(t), sin_kernel_f64(t))
    return r * c, r * s


def _box_muller_f64_cpu(w0, w1, w2, w3):
    return _box_muller_kernel_f64(_U(w0), _U(w1), _U(w2), _U(w3))


# Typed once per dtype as a cached kernel that LLVM inlines back (``always_inline``;
# the variate pass still vectorises: the same packed instructions, checked in the
# assembly): the variate passes (``fill_normal_*``) and the gamma sampler's rejected
# proposals (``std_normal``) call it, so the Box-Muller transform with its polynomial
# log/sin/cos is typed once, not inside each of them (measured in docs/benchmarks.md,
# item 3: cold Gamma.sample_and_score after Normal's 2.3-2.5 -> 1.6 s).
box_muller_f64 = jitable_outline(box_muller_f64, _box_muller_f64_cpu)
_box_muller_body_f64 = cpu_inline(box_muller_f64, outline=False)


@always_inline
@njit(cache=True, nogil=True, error_model="numpy", _nrt=False)
def _box_muller_kernel_f64(w0, w1, w2, w3):
    return _box_muller_body_f64(w0, w1, w2, w3)


def box_muller_f32(wa, wb):
    """Two independent float32 standard normals from two 32-bit words, in float32
    arithmetic: ``u1 = (wa + 1/2) 2**-32`` rounded to float32 (so ``u1 >= 2**-33`` and
    ``|z| <= 6.77``), quadrant ``wb >> 30``, ``t = (j + 1/2) pi/2**25`` with ``j`` the
    next 24 bits of ``wb`` minus ``2**23``."""
    u1 = np.float32((np.float64(wa) + 0.5) * _TWO_M32)
    r = np.float32(sqrt(_MINUS_TWO_F * log_f32(u1)))
    j = np.int64((wb >> _U(6)) & _U(0xFFFFFF)) - np.int64(0x800000)
    t = (np.float32(j) + _HALF_F) * _HALF_PI_2M24
    c, s = _quarter_turns(wb >> _U(30), cos_kernel_f32(t), sin_kernel_f32(t))
    return r * c, r * s


def _box_muller_f32_cpu(wa, wb):
    return _box_muller_kernel_f32(_U(wa), _U(wb))


box_muller_f32 = jitable_outline(box_muller_f32, _box_muller_f32_cpu)
_box_muller_body_f32 = cpu_inline(box_muller_f32, outline=False)


@always_inline
@njit(cache=True, nogil=True, error_model="numpy", _nrt=False)
def _box_muller_kernel_f32(wa, wb):
    return _box_muller_body_f32(wa, wb)


# --------------------------------------------------------------------------- variates
class _Kind(NamedTuple):
    lanes64: int  # variates per Philox block, float64
    lanes32: int  # float32
    fixed64: bool  # float64 whatever the distribution's dtype


KINDS = {
    "normal": _Kind(2, 4, False),
    "uniform": _Kind(2, 4, False),
    "exponential": _Kind(2, 4, False),
    "uniform64": _Kind(2, 2, True),
    "block": _Kind(1, 1, True),
}
MAX_LANES = 4


class Variates(NamedTuple):
    """What a family's sampler draws per atom, computed by the drivers' vectorised
    pass (the ``variates`` attribute of a family's ``scalar`` class).

    ``kind``      a key of :data:`KINDS`;
    ``per_atom``  ``V``: an int, or a :func:`~.jit.jitable` function of the parameter
                  record (e.g. the row length ``D`` of a multivariate normal).
    """

    kind: str = "block"
    per_atom: object = 1


def lanes(kind: str, dtype) -> int:
    """Variates per Philox block of ``kind`` for the distribution dtype ``dtype``."""
    k = KINDS[kind]
    return k.lanes32 if np.dtype(dtype) == np.float32 and not k.fixed64 else k.lanes64


def variate_dtype(kind: str, dtype) -> np.dtype:
    if kind == "block":
        return np.dtype(np.uint64)
    if KINDS[kind].fixed64:
        return np.dtype(np.float64)
    return np.dtype(dtype)


# One block's lanes, per kind and dtype: (w0, w1, w2, w3) -> L values.
@jitable
def _normal_lanes_f64(w0, w1, w2, w3):
    return box_muller_f64(w0, w1, w2, w3)


@jitable
def _normal_lanes_f32(w0, w1, w2, w3):
    a0, a1 = box_muller_f32(w0, w1)
    b0, b1 = box_muller_f32(w2, w3)
    return a0, a1, b0, b1


@jitable
def _uniform_lanes_f64(w0, w1, w2, w3):
    return u01_f64(w0, w1), u01_f64(w2, w3)


@jitable
def _uniform_lanes_f32(w0, w1, w2, w3):
    return u01_f32(w0), u01_f32(w1), u01_f32(w2), u01_f32(w3)


@jitable
def _exponential_lanes_f64(w0, w1, w2, w3):
    return -log_f64(u01_f64(w0, w1)), -log_f64(u01_f64(w2, w3))


@jitable
def _exponential_lanes_f32(w0, w1, w2, w3):
    return (-log_f32(u01_f32(w0)), -log_f32(u01_f32(w1)), -log_f32(u01_f32(w2)),
            -log_f32(u01_f32(w3)))


@jitable
def _group_block(key0, key1, stream, g):
    """The Philox block of variate group ``g`` (uint64)."""
    return philox4x32(_U(0), g & _MASK32, g >> _SHIFT32, stream, key0, key1)


def _make_fill(lanes_fn, n_lanes: int, name: str):
    """A vectorised fill of variates ``v0 .. v0+n-1`` (``v0 = (key[3] + a0) * V``) into
    ``buf[off:off+n]``; returns ``off = v0 mod L`` (the whole first block is written)."""
    L = _U(n_lanes)
    src = f"""
def {name}(key, a0, n_atoms, V, buf):
    v0 = _U(key[3] + a0) * _U(V)
    g0 = v0 // L
    n_groups = np.int64((v0 + _U(n_atoms * V) + L - _U(1)) // L - g0)
    for t in range(n_groups):
        w0, w1, w2, w3 = _group_block(key[0], key[1], key[2], g0 + _U(t))
        {', '.join(f'buf[{n_lanes} * t + {i}]' for i in range(n_lanes))} = \\
            lanes_fn(w0, w1, w2, w3)
    return np.int64(v0 - g0 * L)
"""
    ns = {"_U": _U, "np": np, "L": L, "_group_block": cpu_inline(_group_block),
          "lanes_fn": cpu_inline(lanes_fn)}
    # a fixed template (the lane count unrolled); compiled under this file's name so that
    # Numba's on-disk cache (keyed on the package sources) serves it like any kernel
    exec(compile(src, __file__, "exec"), ns)  # noqa: S102
    fn = ns[name]
    fn.__module__ = __name__
    return njit(cache=True, nogil=True, error_model="numpy", _nrt=False)(fn)


_philox_inline = cpu_inline(philox4x32)


@njit(cache=True, nogil=True, error_model="numpy", _nrt=False)
def _fill_blocks(key, a0, n_atoms, V, buf):
    """Block 0 of atoms ``a0 .. a0+n-1`` (the ``block`` kind) into ``buf[:, :n]``."""
    for j in range(n_atoms):
        a = _U(key[3] + a0 + j)
        w = _philox_inline(_U(0), a & _MASK32, a >> _SHIFT32, key[2], key[0], key[1])
        buf[0, j] = w[0]
        buf[1, j] = w[1]
        buf[2, j] = w[2]
        buf[3, j] = w[3]
    return np.int64(0)


_FILL = {
    ("normal", 64): _make_fill(_normal_lanes_f64, 2, "fill_normal_f64"),
    ("normal", 32): _make_fill(_normal_lanes_f32, 4, "fill_normal_f32"),
    ("uniform", 64): _make_fill(_uniform_lanes_f64, 2, "fill_uniform_f64"),
    ("uniform", 32): _make_fill(_uniform_lanes_f32, 4, "fill_uniform_f32"),
    ("exponential", 64): _make_fill(_exponential_lanes_f64, 2, "fill_exponential_f64"),
    ("exponential", 32): _make_fill(_exponential_lanes_f32, 4, "fill_exponential_f32"),
    ("block", 64): _fill_blocks,
}
_FILL["uniform64", 64] = _FILL["uniform64", 32] = _FILL["uniform", 64]
_FILL["block", 32] = _fill_blocks


def fill_function(kind: str, float32: bool):
    """The compiled vectorised fill of ``kind`` (see :func:`fill_variates`)."""
    return _FILL[kind, 32 if float32 and not KINDS[kind].fixed64 else 64]


def fill_variates(kind: str, dtype, key, a0: int, n_atoms: int, V: int,
                  buf: np.ndarray) -> int:
    """Variates ``(key[3] + a0) * V ...`` of ``n_atoms`` atoms into ``buf`` (1-D, of
    :func:`variate_dtype`, ``n_atoms * V + 2 * MAX_LANES`` long; the ``block`` kind:
    ``(4, n_atoms)`` uint64); returns the offset of the first one in ``buf``."""
    return int(fill_function(kind, np.dtype(dtype) == np.float32)(
        key, np.int64(a0), np.int64(n_atoms), np.int64(V), buf))


# --------------------------------------------------------------------------- stream tuples
# An atom's stream tuple: (key0, key1, atom_lo, atom_hi, stream) when its variates are
# computed on demand (CUDA, Python), or (key0, key1, atom_lo, atom_hi, stream, buf, j)
# inside the CPU drivers, where buf[j + k] already holds its variate k (for the
# ``block`` kind: buf[:, j] holds its block 0).
@jitable_hot
def make_stream(seed_lo, seed_hi, stream, atom):
    """The stream tuple of atom ``atom`` (a non-negative int64) of a call."""
    a = _U(atom)
    return (seed_lo, seed_hi, a & _MASK32, a >> _SHIFT32, stream)


@njit(inline="always")
def buffered_stream(key, atom, buf, j):
    """The stream tuple of atom ``key[3] + atom`` whose variates are ``buf[j:]``."""
    a = _U(key[3] + atom)
    return (key[0], key[1], a & _MASK32, a >> _SHIFT32, key[2], buf, j)


def _is_buffered(st) -> bool:
    """Does the stream tuple (a Numba type or a Python tuple) carry a buffer?"""
    return len(st) == 7


def _philox_block_computed(st, block):
    return philox4x32(_U(block), st[2], st[3], st[4], st[0], st[1])


def _philox_block_buffered(st, block):
    if block == 0 and st[5].ndim == 2:
        w = st[5]
        j = st[6]
        return w[0, j], w[1, j], w[2, j], w[3, j]
    return philox4x32(_U(block), st[2], st[3], st[4], st[0], st[1])


def philox_block(st, block):
    """Four uint32 words (as uint64) of the atom's Philox block ``block``: counter
    ``(block, atom_lo, atom_hi, stream)``.  (Block 0 is the ``block`` kind's variate,
    which the CPU drivers compute beforehand, vectorised.)"""
    if _is_buffered(st):
        return _philox_block_buffered(st, block)
    return _philox_block_computed(st, block)


def _philox_block_typer(st, block):
    if _is_buffered(st) and isinstance(st[5], types.Array) and st[5].ndim == 2:
        return _philox_block_buffered
    return _philox_block_computed


overload(philox_block, target="generic", strict=False, jit_options=_JIT_OPTIONS,
         inline=_inline_on_cpu)(_philox_block_typer)

# The buffered form as a CPU-inline copy, for code reached only from the CPU drivers
# (whose streams are always buffered): no overload to resolve, so nothing compiled
# stand-alone per process (~0.15 s of a cold Categorical ``sample_and_score``).
philox_block_cpu = cpu_inline(_philox_block_buffered)


@jitable
def _variate_block(st, V, k, n_lanes):
    """``(block words, lane)`` of the atom's variate ``k`` (of ``V``), computed on demand."""
    a = st[2] | (st[3] << _SHIFT32)
    v = a * _U(V) + _U(k)
    L = _U(n_lanes)
    w = _group_block(st[0], st[1], st[4], v // L)
    return w, np.int64(v % L)


@jitable
def _pick2(lane, values):
    return where(lane == 0, values[0], values[1])


@jitable
def _pick4(lane, values):
    return where(lane < 2, where(lane == 0, values[0], values[1]),
                 where(lane == 2, values[2], values[3]))


def _computed(lanes_fn, n_lanes: int, name: str):
    """The atom's variate ``k`` (of ``V``) of the kind whose block lanes ``lanes_fn``
    gives, computed on demand: its group's block, transformed, its lane picked."""
    pick = _pick2 if n_lanes == 2 else _pick4

    def computed(st, V, k):
        w, lane = _variate_block(st, V, k, n_lanes)
        return pick(lane, lanes_fn(w[0], w[1], w[2], w[3]))

    computed.__name__ = computed.__qualname__ = name
    return jitable_flat(computed)


_normal_computed_f64 = _computed(_normal_lanes_f64, 2, "_normal_computed_f64")
_normal_computed_f32 = _computed(_normal_lanes_f32, 4, "_normal_computed_f32")
_uniform_computed_f64 = _computed(_uniform_lanes_f64, 2, "_uniform_computed_f64")
_uniform_computed_f32 = _computed(_uniform_lanes_f32, 4, "_uniform_computed_f32")


@jitable_flat
def _exponential_computed_f64(st, V, k):
    return -log_f64(_uniform_computed_f64(st, V, k))


@jitable_flat
def _exponential_computed_f32(st, V, k):
    return -log_f32(_uniform_computed_f32(st, V, k))


_normal_computed = by_dtype(_normal_computed_f32, _normal_computed_f64)
_uniform_computed = by_dtype(_uniform_computed_f32, _uniform_computed_f64)
_exponential_computed = by_dtype(_exponential_computed_f32, _exponential_computed_f64)


def _from_buffer(like, st, V, k):
    return st[5][st[6] + k]


def _variate_accessor(name: str, computed, doc: str):
    def accessor(like, st, V, k):
        if _is_buffered(st):
            return _from_buffer(like, st, V, k)
        return computed(like, st, V, k)

    accessor.__name__ = accessor.__qualname__ = name
    accessor.__doc__ = doc

    def typer(like, st, V, k):
        if _is_buffered(st):
            return _from_buffer
        return lambda like, st, V, k: computed(like, st, V, k)

    overload(accessor, target="generic", strict=False, jit_options=_JIT_OPTIONS,
             inline=_inline_on_cpu)(typer)
    return accessor


normal_variate = _variate_accessor(
    "normal_variate", _normal_computed,
    """``normal_variate(like, st, V, k)``: the atom's ``k``-th of its ``V`` standard normal
    variates (kind ``normal``), float32 or float64 like ``like``.  ``V`` must be the
    family's ``Variates.per_atom`` (the CPU drivers read the variate from their buffer;
    CUDA and Python compute it from ``atom * V + k``).""")
uniform_variate = _variate_accessor(
    "uniform_variate", _uniform_computed,
    """``uniform_variate(like, st, V, k)``: the atom's ``k``-th of ``V`` uniform variates in
    (0, 1) (kind ``uniform``; pass a float64 ``like`` for the kind ``uniform64``).""")
exponential_variate = _variate_accessor(
    "exponential_variate", _exponential_computed,
    """``exponential_variate(like, st, V, k)``: the atom's ``k``-th of ``V`` Exp(1) variates
    (kind ``exponential``).""")


# --------------------------------------------------------------------------- per-atom blocks
@jitable_hot
def _uniform_f64(st, block):
    w = philox_block(st, block)
    return u01_f64(w[0], w[1]), block + 1


@jitable_hot
def _uniform_f32(st, block):
    w = philox_block(st, block)
    return u01_f32(w[0]), block + 1


uniform = by_dtype(_uniform_f32, _uniform_f64)
uniform.__doc__ = """``uniform(like, st, block) -> (u, next_block)``: u uniform in (0, 1)
from the atom's Philox block ``block``."""


@jitable_flat
def _std_normal_f64(st, block):
    w = philox_block(st, block)
    z, _ = box_muller_f64(w[0], w[1], w[2], w[3])
    return z, block + 1


@jitable_flat
def _std_normal_f32(st, block):
    w = philox_block(st, block)
    z, _ = box_muller_f32(w[0], w[1])
    return z, block + 1


std_normal = by_dtype(_std_normal_f32, _std_normal_f64)
std_normal.__doc__ = """``std_normal(like, st, block) -> (z, next_block)``: a standard normal
(Box-Muller, the cosine lane) from the atom's Philox block ``block``, for samplers that
need a variable number of normals; ``like`` picks float32 or float64."""


@jitable_flat
def _std_exponential_f64(st, block):
    u, block = _uniform_f64(st, block)
    return -log_f64(u), block


@jitable_flat
def _std_exponential_f32(st, block):
    u, block = _uniform_f32(st, block)
    return -log_f32(u), block


std_exponential = by_dtype(_std_exponential_f32, _std_exponential_f64)
std_exponential.__doc__ = """``std_exponential(like, st, block) -> (e, next_block)``: Exp(1)
from the atom's Philox block ``block``."""


# --------------------------------------------------------------------------
# Gamma: Marsaglia & Tsang (2000), returned in log space.
#
# For alpha >= 1: d = alpha - 1/3, c = 1/sqrt(9d); draw z ~ N(0,1) until
# v = (1 + c z)^3 > 0 and u < 1 - 0.0331 z^4 (squeeze) or
# log u < z^2/2 + d (1 - v + log v); then G = d v.  Acceptance >= 95%.
# For alpha < 1 (the "boost"): G(alpha) = G(alpha + 1) * U^(1/alpha), done as
# log G = log G(alpha + 1) + log(U) / alpha, which is finite for any alpha > 0,
# whereas G itself underflows to 0 for alpha ~ 1e-3 about half of the time.
# The first proposal's normal ``z0`` is given (the families take it from their
# vectorised ``normal`` variates, so the common case draws no scalar normal); then
# the atom's blocks from ``block`` on: the proposal's uniform, then [normal, uniform]
# per further proposal, then the boost uniform.  Arithmetic is float64 for both
# dtypes; float32 only selects the 32-bit normal and uniform draws.
# --------------------------------------------------------------------------
_ONE_THIRD = 1.0 / 3.0


def std_gamma_log_from(like, st, z0, block, alpha):
    boost = alpha < 1.0
    d = (alpha + 1.0 if boost else alpha) - _ONE_THIRD
    c = 1.0 / math.sqrt(9.0 * d)
    z = np.float64(z0)
    while True:
        v = 1.0 + c * z
        if v > 0.0:
            v = v * v * v
            u, block = uniform(like, st, block)
            u = np.float64(u)
            z2 = z * z
            if u < 1.0 - 0.0331 * z2 * z2:
                break
            if math.log(u) < 0.5 * z2 + d * (1.0 - v + math.log(v)):
                break
        zn, block = std_normal(like, st, block)
        z = np.float64(zn)
    log_g = math.log(d * v)
    if boost:
        u, block = uniform(like, st, block)
        log_g = log_g + math.log(np.float64(u)) / alpha
    return log_g, block


def _std_gamma_log_from_cpu(like, st, z0, block, alpha):
    # ``like`` picks the kernel of its dtype and the stream goes as its five words (the
    # rejections use blocks >= 1, never the buffered block 0), so each kernel has one
    # signature whatever the driver, array layout or variate buffer.
    return _std_gamma_log_kernel(like, z0, st[0], st[1], st[2], st[3], st[4],
                                 np.int64(block), np.float64(alpha))


# The rejection sampler is compiled once per dtype as a cached kernel and called by
# every CPU driver (Gamma, Beta, Dirichlet, StudentT) instead of being typed again
# inside each; LLVM inlines the compiled kernel into the drivers (``always_inline``),
# so the run time is that of the sampler inlined in the IR (measured: see
# docs/benchmarks.md, "Compile and import time").  Each kernel's body is typed once
# with its dtype fixed (``cpu_inline(..., float32=...)``: the ``uniform`` and
# ``std_normal`` draws inlined as plain copies, not as overloads resolved twice).
std_gamma_log_from = jitable_outline(std_gamma_log_from, _std_gamma_log_from_cpu)
_std_gamma_log_f64 = cpu_inline(std_gamma_log_from, outline=False, float32=False)
_std_gamma_log_f32 = cpu_inline(std_gamma_log_from, outline=False, float32=True)
_KERNEL = dict(cache=True, nogil=True, error_model="numpy", _nrt=False)


@always_inline
@njit(**_KERNEL)
def _std_gamma_log_kernel_f64(z0, k0, k1, a_lo, a_hi, stream, block, alpha):
    # the body's draws are float64 (fixed above): its ``like`` argument is unused
    return _std_gamma_log_f64(z0, (k0, k1, a_lo, a_hi, stream), z0, block, alpha)


@always_inline
@njit(**_KERNEL)
def _std_gamma_log_kernel_f32(z0, k0, k1, a_lo, a_hi, stream, block, alpha):
    return _std_gamma_log_f32(z0, (k0, k1, a_lo, a_hi, stream), z0, block, alpha)


_std_gamma_log_kernel = by_dtype(_std_gamma_log_kernel_f32, _std_gamma_log_kernel_f64)


std_gamma_log_from.__doc__ = """``std_gamma_log_from(like, st, z0, block, alpha)``
``-> (log_g, next_block)``.

``log_g`` (float64) is the log of a standard Gamma(``alpha``) draw (shape ``alpha``
> 0, float64; rate 1), by Marsaglia-Tsang with the ``alpha < 1`` boost in log
space, so it is finite even where the draw itself would underflow.  ``z0`` is the
first proposal's standard normal; the rest comes from the atom's Philox blocks from
``block`` on.  ``like`` picks the float32 (32-bit normal/uniform words) or float64
draws; the arithmetic is float64 either way.  Marsaglia & Tsang, "A simple method for
generating gamma variables", ACM TOMS 26(3), 2000."""


@jitable
def std_gamma_log(like, st, block, alpha):
    z0, block = std_normal(like, st, block)
    return std_gamma_log_from(like, st, z0, block, alpha)


std_gamma_log.__doc__ = """``std_gamma_log(like, st, block, alpha) -> (log_g, next_block)``:
:func:`std_gamma_log_from` with the first normal drawn from block ``block`` too (a
normal and a uniform block per proposal)."""
