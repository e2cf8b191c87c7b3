"""The generic CPU drivers: one per operation, for every family.

Each driver is written once, as a module-level Python function over the entry
points of ``_engine/dispatch.py`` whose first argument is the family's parameter
record; ``_for(driver, record)`` compiles it for that family (with the family's maths
inlined, see below) and Numba specialises it per dtype and stores the machine code on
disk (``_engine/cache.py``), so a second process loads it instead of compiling.

Work is cut into one contiguous part per thread (a call of one ``CHUNK`` of atoms
or less runs in the calling thread); inside a part the samplers work in passes of
``FILL_ATOMS`` atoms: the family's variates of the pass first (``dispatch.fill1``, a
flat loop of Philox and the variate transform that LLVM vectorises), then the
per-atom maths reading them.  Every variate is a function of its index only (see
``_engine/rng.py``) and every output element is written by exactly one atom (or
group of atoms, summed in a fixed order), so the split never changes a result.
"""

from __future__ import annotations

import types as pytypes

import numpy as np
from numba import carray, njit

from . import cache as _cache  # noqa: F401  (installs the package-hash cache locator)
from .dispatch import (
    REGISTRY,
    entropy1,
    fill1,
    kl1,
    log_prob1,
    per_atom1,
    sample1,
    sample_score1,
    score1,
    variates,
)
from .jit import cpu_inline
from .rng import MAX_LANES, buffered_stream, variate_dtype
from .threads import CHUNK, n_parts, one_part, per_items, run_split

_jit = dict(cache=True, nogil=True, error_model="numpy")
# The per-atom loops run without Numba's reference counting: the family maths is
# inlined with the parameter record passed by value, and every inlined call would
# otherwise incref/decref each array of the record (atomics, measured 28 ns per atom
# for Normal, more than the draw itself).  Nothing in them allocates.
_jit_free = dict(_jit, _nrt=False)

#: atoms per vectorised variate pass: the variates (8 KiB of float64) stay in L1
FILL_ATOMS = 1024
#: parameters of batches smaller than this are tiled to at least this length, so that
#: the per-atom loop runs over long contiguous stretches (it vectorises) instead of
#: restarting every B atoms
TILE = 512
_PAD = 2 * MAX_LANES
# The bases and lengths of the per-atom loops are masked to [0, 2**62): LLVM then knows
# that every index ``base + t`` is non-negative and drops Numba's handling of negative
# (wraparound) indices, which otherwise turns the vectorised loads and stores into
# gathers and scatters (measured: Normal(0, 0).sample 5.9 -> 3.6 ns per atom, one thread).
_NONNEG = np.int64(2**62 - 1)


# --------------------------------------------------------------------------- per family
# Each driver below is written once, as plain Python over the entry points of
# ``dispatch.py`` (``sample1``, ``log_prob1``, ...).  ``_for(driver, p)`` compiles it for
# the family of the record ``p``: a copy of the driver whose entry-point names are
# bound to CPU-inline copies of the family's functions (``jit.cpu_inline``), so Numba
# inlines the family's maths into the loop *before* type inference and types the
# whole driver once.  Resolving them as overloads by record type instead (the CUDA
# kernels do) types each inlined entry point again at every call resolution and, with
# the per-target inlining rule, also compiles it stand-alone (measured, the min of five
# alternating cold processes: all first calls of Normal + Categorical 6.9 -> 5.8 s CPU,
# Categorical.sample_and_score 2.05 -> 1.64 s).  The copies are cached on disk like any
# kernel (``_engine/cache.py``), under the driver's name and the family's.
_FAMILY_OPS = ("sample1", "log_prob1", "score1", "sample_score1", "entropy1", "kl1",
               "reflect1", "reparam1", "sample_run1", "sample_score_run1", "prepare1",
               "log_prob_run1", "entropy_run1")
_SPECIALISED: dict = {}
# the family's record classes, bound in each specialised copy (see ``_for``)
Params = Scores = None
# optional: a family's own loops over a run of atoms of consecutive batch elements
# (``dispatch.py``); None where it has none (the driver's branch is compiled out)
sample_run1 = sample_score_run1 = prepare1 = log_prob_run1 = entropy_run1 = None


@njit(inline="always")
def _next_b(b, B, T):
    """``b mod B`` for ``0 <= b <= T`` (``T``: a multiple of ``B``), without a division in
    the common cases: a stretch ends at the end of the record (untiled ``T = B``: every
    ``B`` atoms) or inside it."""
    if b == T:
        return 0
    if b >= B:
        return b % B
    return b


def _generic(fn):
    """Mark a driver written over the entry points (compiled per family by ``_for``)."""
    return fn


def _specialise(driver, params_cls: type, float32: bool, scores_cls: type | None):
    # Per dtype, a family whose ops say ``inline_by_dtype`` (Categorical: its fused row
    # function) gets its ``by_dtype`` functions bound to plain inline copies too, typed
    # once in the driver instead of resolved as overloads, which Numba also compiles
    # stand-alone (measured: the first one-pass Categorical ``sample_and_score`` 2.45 ->
    # 1.92 s CPU; see jit._patch_alias_analysis).  Not for every family: where small
    # ``by_dtype`` helpers serve several drivers, compiling them once and calling them is
    # cheaper (``lograd-fast compile`` of everything measured +5-8 % CPU otherwise).
    ops = REGISTRY[params_cls]
    inline = float32 if getattr(ops, "inline_by_dtype", False) else None
    bound = {name: None if getattr(ops, name, None) is None else
             cpu_inline(getattr(ops, name), float32=inline)
             for name in driver.__code__.co_names if name in _FAMILY_OPS}
    bound.update(Params=params_cls, Scores=scores_cls)
    return njit(**_jit_free)(_bound_copy(driver, bound, params_cls, float32))


def _bound_copy(fn, bound: dict, params_cls: type, float32: bool):
    """A copy of ``fn`` with the names in ``bound`` bound as its globals, named for the
    family and dtype (``<fn>__<Params>[_f32]``: Numba's disk cache files it under that
    name, so each family's copy is cached on its own)."""
    copy = pytypes.FunctionType(fn.__code__, {**fn.__globals__, **bound},
                                f"{fn.__name__}__{params_cls.__name__}{'_f32' if float32 else ''}",
                                fn.__defaults__, fn.__closure__)
    copy.__qualname__ = copy.__name__
    copy.__doc__ = fn.__doc__
    return copy


def _c_function(copy, sig):
    """``copy`` compiled as a cached Numba ``cfunc`` of signature ``sig`` (pointers,
    int64/uint64, boolean), and a ``ctypes`` function calling it (prototype derived
    from ``sig``): ``(ctypes function, cfunc)`` -- keep both, the cfunc owns the code."""
    import ctypes

    from numba import cfunc
    from numba import types as nt

    def c_type(t):
        if isinstance(t, nt.CPointer):
            return ctypes.c_void_p
        return {nt.int64: ctypes.c_int64, nt.uint64: ctypes.c_uint64,
                nt.boolean: ctypes.c_bool}[t]

    compiled = cfunc(sig, cache=True, nopython=True)(copy)
    proto = ctypes.CFUNCTYPE(c_type(sig.return_type), *[c_type(t) for t in sig.args])
    return proto(compiled.address), compiled


# The drivers take the records as plain tuples (``pt``, ``st``: ``tuple(record)``) and
# name their fields again inside (``Params(*pt)``, free once compiled): Numba's
# dispatcher types a plain tuple of arrays in C, a NamedTuple in Python (measured 0.6 to
# 0.8 us per record argument and call, a third of a small call's dispatch).
def _for(driver, p, s=None):
    """``driver`` compiled for the family and dtype of the record ``p`` (and its score
    record ``s``, where the driver writes scores; one dictionary lookup)."""
    float32 = p[0].dtype == np.float32
    key = (driver, type(p), float32)
    fn = _SPECIALISED.get(key)
    if fn is None:
        fn = _SPECIALISED[key] = _specialise(driver, type(p), float32,
                                             None if s is None else type(s))
    return fn


# --------------------------------------------------------------------------- sample
# Both sampling drivers work in passes of at most FILL_ATOMS atoms: first the family's
# variates of the whole pass (``fill1``: Philox and the Box-Muller / uniform / log
# transforms in one flat loop that LLVM vectorises), then the per-atom maths over
# stretches where the batch index runs contiguously (``p`` is the record, or its tiled
# copy of period B: see ``_tiled``), which vectorises too for branch-free families
# (Normal).  (The record is passed once: each record argument costs ~2.3 us of Numba's
# argument typing per call.)
@_generic
def _sample_range(pt, key, x, B, lo, hi, buf):
    p = Params(*pt)
    V = per_atom1(p)
    cap = (buf.shape[buf.ndim - 1] - _PAD) // V
    T = p[0].shape[0]  # B, or the length of the tiled record
    a = lo
    while a < hi:
        end = min(a + cap, hi)
        j = fill1(p, key, a, end - a, buf)
        b = a % B
        i = a
        while i < end:
            m = min(end - i, T - b) & _NONNEG
            i0, b0, j0 = i & _NONNEG, b & _NONNEG, j & _NONNEG
            if sample_run1 is not None:  # the family's loop over the run (pruned)
                sample_run1(p, b0, m, key, buf, j0, V, x, i0)
            else:
                for t in range(m):
                    sample1(p, b0 + t, buffered_stream(key, i0 + t, buf, j0 + t * V), x, i0 + t)
            i += m
            j += m * V
            b = _next_b(b + m, B, T)
        a = end


# --------------------------------------------------------------------------- log_prob
@_generic
def _log_prob_range(pt, x, out, st, B, E, lo, hi):
    # with a score record bound (``_for(..., s)``), the scores too, in the same pass:
    # what the adapters' backward passes need (one compiled call and one read of x
    # instead of two: ~2.5 us less per small call); without, the branch is compiled out
    p = Params(*pt)
    if log_prob_run1 is not None and Scores is None:  # the family's loop over runs of
        # rows (pruned where it has none): stretches of consecutive rows, whole items
        a, end = lo * E, hi * E
        b = a % B
        while a < end:
            n = min(end - a, B - b) & _NONNEG
            log_prob_run1(p, b & _NONNEG, n, x, a & _NONNEG, out, E)
            a += n
            b = 0
        return
    if Scores is not None:
        s = Scores(*st)
    a = lo * E
    b = a % B
    for g in range(lo, hi):
        acc = 0.0
        for _ in range(E):
            acc += log_prob1(p, b, x, a)
            if Scores is not None:
                score1(p, b, x, a, s)
            a += 1
            b += 1
            if b == B:
                b = 0
        out[g] = acc


# the same driver compiled with the family's score record bound, under its own name
_log_prob_score_range = pytypes.FunctionType(_log_prob_range.__code__,
                                             _log_prob_range.__globals__,
                                             "_log_prob_score_range")


# --------------------------------------------------------------------------- score
@_generic
def _score_range(pt, x, st, B, lo, hi):
    p, s = Params(*pt), Scores(*st)
    b = lo % B
    for a in range(lo, hi):
        score1(p, b, x, a, s)
        b += 1
        if b == B:
            b = 0


# --------------------------------------------------------------------------- sample_and_score
@_generic
def _sample_score_range(pt, key, x, st, out, B, E, direct, lo, hi, scratch):
    p, s = Params(*pt), Scores(*st)
    # lps: the atoms' log-probs of a pass, summed into ``out`` per item; or, ``direct``,
    # ``out`` itself (one float64 atom per item), written in place
    buf, lps = scratch
    V = per_atom1(p)
    per = max(1, (buf.shape[buf.ndim - 1] - _PAD) // V // E)  # items per pass
    T = p[0].shape[0]  # B, or the length of the tiled record
    g = lo
    while g < hi:
        q = min(per, hi - g)
        a = g * E
        end = a + q * E
        j = fill1(p, key, a, end - a, buf)
        b = a % B
        i = a
        k = 0 if not direct else a
        while i < end:
            m = min(end - i, T - b) & _NONNEG
            i0, b0, j0, k0 = i & _NONNEG, b & _NONNEG, j & _NONNEG, k & _NONNEG
            if sample_score_run1 is not None:  # the family's loop over the run (pruned)
                sample_score_run1(p, b0, m, key, buf, j0, V, x, i0, s, lps, k0)
            else:
                for t in range(m):
                    lps[k0 + t] = sample_score1(p, b0 + t, buffered_stream(key, i0 + t, buf,
                                                                            j0 + t * V),
                                                x, i0 + t, s)
            i += m
            j += m * V
            k += m
            b = _next_b(b + m, B, T)
        g0 = g & _NONNEG
        if direct:
            pass
        elif E == 1:
            for t in range(q & _NONNEG):
                out[g0 + t] = lps[t]
        else:
            for t in range(q & _NONNEG):
                acc = 0.0
                for e in range(E):
                    acc += lps[t * E + e]
                out[g0 + t] = acc
        g += q


# --------------------------------------------------------------------------- entropy, kl
@_generic
def _entropy_range(pt, out, E, lo, hi):
    p = Params(*pt)
    if entropy_run1 is not None:  # the family's loop over runs of rows (pruned elsewhere)
        entropy_run1(p, (lo * E) & _NONNEG, ((hi - lo) * E) & _NONNEG, out, E)
        return
    for g in range(lo, hi):
        acc = 0.0
        for e in range(E):
            acc += entropy1(p, g * E + e)
        out[g] = acc



@_generic
def _kl_range(pt, qt, out, E, lo, hi):
    p, q = Params(*pt), Params(*qt)
    for g in range(lo, hi):
        acc = 0.0
        for e in range(E):
            acc += kl1(p, q, g * E + e)
        out[g] = acc


_SPECS: dict = {}


def _spec(p) -> tuple:
    """``(kind, per_atom, variate dtype)`` of the record's family and dtype (cached: small
    calls pay a dictionary lookup, not the derivation)."""
    key = (type(p), p[0].dtype)
    spec = _SPECS.get(key)
    if spec is None:
        v = variates(type(p))
        spec = _SPECS[key] = (v.kind, v.per_atom, variate_dtype(v.kind, p[0].dtype))
    return spec


def variate_scratch(p, atoms: int, n: int) -> np.ndarray:
    """``n`` variate buffers for passes of up to ``atoms`` atoms of the family of ``p``:
    ``(n, atoms * V + pad)`` of its variate dtype (the ``block`` kind:
    ``(n, 4, atoms + pad)`` uint64)."""
    kind, per, dtype = _spec(p)
    if kind == "block":
        return np.empty((n, 4, atoms + _PAD), dtype)
    V = per if type(per) is int else int(per(p))
    return np.empty((n, atoms * V + _PAD), dtype)


def _tiled(p, B: int, n_atoms: int):
    """``p`` with every field repeated (period ``B``) to ``>= TILE + B`` entries, for
    small scalar batches in calls large enough to pay for the copy; else ``p``."""
    if B >= TILE or n_atoms < 4 * TILE or not all(
            isinstance(f, np.ndarray) and f.shape == (B,) for f in p):
        return p
    reps = -(-TILE // B) + 1
    fields = []
    for f in p:
        t = np.tile(f, reps)
        t.flags.writeable = False  # the record's type: read-only arrays (one kernel)
        fields.append(t)
    return type(p)(*fields)


def sample(p, key, x, B):
    n = x.shape[0]
    parts = n_parts(-(-n // CHUNK))
    run_split(_for(_sample_range, p), (tuple(_tiled(p, B, n)), key, x, B), n, CHUNK,
              variate_scratch(p, min(n, FILL_ATOMS), parts))


def log_prob(p, x, out, B, E):
    run_split(_for(_log_prob_range, p), (tuple(p), x, out, (), B, E), out.shape[0],
              per_items(E))


def score(p, x, s, B):
    run_split(_for(_score_range, p, s), (tuple(p), x, tuple(s), B), x.shape[0], CHUNK)


def log_prob_score(p, x, out, s, B, E):
    run_split(_for(_log_prob_score_range, p, s), (tuple(p), x, out, tuple(s), B, E),
              out.shape[0], per_items(E))


# --------------------------------------------------------------------------- checked log_prob
@_generic
def _checked_log_prob_score_range(pt, x, out, st, E):
    # The adapters' flat update path (log_prob_and_score_flat): one atom per element of
    # the flat parameters, ``len(out) * E`` atoms, and everything in this one call --
    # the construction's checks and derived fields (the family's ``prepare1``, into the
    # record's scratch fields), x's NaN check, the log-probs and scores.  Returns 0, or
    # 1 (a bad parameter) / 2 (NaN in x) with nothing more computed: the caller then
    # takes the general path, whose checks raise the precise error.  One call instead of
    # three: inside a torch update (the (64, 6) Normal update of ``bench.rl``, each of
    # the three calls added in turn, round-robin) they cost 5.5-8.6 us each, against
    # 1.0-4.7 in a loop of that call alone -- caches the backward evicted (docs/rl.md).
    p, s = Params(*pt), Scores(*st)
    if prepare1(p):
        return 1
    for a in range(x.shape[0]):
        if np.isnan(x[a]):
            return 2
    a = 0
    for g in range(out.shape[0]):
        acc = 0.0
        for _ in range(E):
            acc += log_prob1(p, a, x, a)
            score1(p, a, x, a, s)
            a += 1
        out[g] = acc
    return 0


_CHECKED: dict = {}


def checked_log_prob_score(params_cls: type, scores_cls: type, dtype):
    """:func:`_checked_log_prob_score_range` compiled for the family of ``params_cls``
    and ``dtype`` (called as ``fn(pt, x, out, st, E)``, ``pt``'s derived fields scratch,
    one part: the caller keeps it small); None where the family has no ``prepare1``."""
    key = (params_cls, np.dtype(dtype))  # (a dtype or a scalar type: one copy per dtype)
    fn = _CHECKED.get(key)
    if fn is None and key not in _CHECKED:
        fn = _CHECKED[key] = None if getattr(REGISTRY[params_cls], "prepare1", None) is None \
            else _specialise(_checked_log_prob_score_range, params_cls,
                             key[1] == np.float32, scores_cls)
    return fn


# The same call on raw pointers, for the torch adapter: a C function (Numba ``cfunc``,
# cached on disk like the drivers) that it calls through ``ctypes`` with the tensors'
# ``data_ptr()`` -- no numpy arrays made, no Numba dispatcher, outputs that torch
# allocates.  Inside an update that is what costs: the (64, 6) Normal update of
# ``bench.rl.measure_calls`` 129-131 -> 114-118 us (torch.distributions 143-149; two
# runs of each tree, alternating), the numpy route's conversions and dispatch costing
# about twice what they do in a loop of their own.
# For the location-scale record (``loc, log_scale, scale, inv_scale``; scores ``loc,
# log_scale``) of the families with ``prepare1``: the pointers' layout is the record's.
_LOCATION_SCALE = (("loc", "log_scale", "scale", "inv_scale"), ("loc", "log_scale"))


def _checked_log_prob_score_raw(loc, log_scale, x, lp, s_loc, s_log_scale, fields, n, E):
    f = carray(fields, (2, n))
    return checked_range((carray(loc, n), carray(log_scale, n), f[0], f[1]), carray(x, n),
                         carray(lp, n // E), (carray(s_loc, n), carray(s_log_scale, n)), E)


_RAW: dict = {}
checked_range = None  # bound in each compiled copy: the family's checked driver


def checked_log_prob_score_raw(params_cls: type, scores_cls: type, dtype):
    """:func:`checked_log_prob_score` as a ``ctypes`` function of raw pointers ``(loc,
    log_scale, x, log_prob, score_loc, score_log_scale, fields, n, E) -> int``: C
    arrays of ``n`` elements of ``dtype`` (``log_prob``: ``n // E``), ``fields`` 2 n
    float64 of scratch; 0, or the code of a bad value.  None for a family without
    ``prepare1`` or of another record layout, or with Numba's JIT disabled."""
    return _raw(_raw_function, params_cls, scores_cls, dtype)


def _raw(build, params_cls: type, scores_cls: type, dtype):
    """``build(params_cls, scores_cls, dtype)``'s ctypes function, built once per
    family and dtype (None where it gives none)."""
    key = (build, params_cls, np.dtype(dtype))
    got = _RAW.get(key)
    if got is None:  # (the ctypes function, the compiled cfunc that owns its code)
        got = _RAW[key] = build(params_cls, scores_cls, key[2]) or (None, None)
    return got[0]


def _raw_function(params_cls: type, scores_cls: type, dtype: np.dtype):
    from numba import config
    from numba import types as nt

    driver = checked_log_prob_score(params_cls, scores_cls, dtype)
    if driver is None or config.DISABLE_JIT or (
            params_cls._fields, scores_cls._fields) != _LOCATION_SCALE:
        return None
    f32 = dtype == np.float32
    ptr = nt.CPointer(nt.float32 if f32 else nt.float64)
    sig = nt.int64(ptr, ptr, ptr, ptr, ptr, ptr, nt.CPointer(nt.float64), nt.int64, nt.int64)
    return _c_function(_bound_copy(_checked_log_prob_score_raw, {"checked_range": driver},
                                   params_cls, f32), sig)


# The RL step on raw pointers, for the torch adapter's rollout: the construction's
# checks (``prepare1``) and the step's fused draw (``_sample_score_range``, one draw per
# atom) in one C call, the key as three integers, the variate and log-prob scratch
# given by the caller.  Same record layout as the update's call.
@_generic
def _prepare_range(pt):
    return prepare1(Params(*pt))


def _checked_sample_score_raw(loc, log_scale, seed_lo, seed_hi, stream, x, lp, s_loc,
                              s_log_scale, fields, vbuf, nv, lps, nl, n, E, direct):
    f = carray(fields, (2, n))
    pt = (carray(loc, n), carray(log_scale, n), f[0], f[1])
    if prepare_range(pt):
        return 1
    sample_range(pt, (seed_lo, seed_hi, stream, np.int64(0)), carray(x, n),
                 (carray(s_loc, n), carray(s_log_scale, n)), carray(lp, n // E), n, E,
                 direct, 0, n // E, (carray(vbuf, nv), carray(lps, nl)))
    return 0


prepare_range = sample_range = None  # bound in each compiled copy (the family's drivers)


def checked_sample_score_raw(params_cls: type, scores_cls: type, dtype):
    """The RL step of the location-scale families with ``prepare1`` as a ``ctypes``
    function of raw pointers ``(loc, log_scale, seed_lo, seed_hi, stream, x, log_prob,
    score_loc, score_log_scale, fields, vbuf, nv, lps, nl, n, E, direct) -> int`` (C
    arrays of ``n`` elements of ``dtype``; ``log_prob``: ``n // E``; ``fields``: 2 n
    float64; ``vbuf``: ``nv`` variates, ``lps``: ``nl`` float64 -- or ``log_prob``
    itself where ``direct``: see :func:`step_sizes`); 0, or 1 for a bad parameter
    (nothing drawn).  None where :func:`checked_log_prob_score_raw` is None."""
    return _raw(_raw_sampler, params_cls, scores_cls, dtype)


def step_sizes(params_cls: type, dtype, n: int, E: int) -> tuple | None:
    """``(nv, vdtype, nl, direct)`` of the raw step for ``n`` atoms in items of ``E``:
    the variate scratch (length, dtype), the log-prob scratch (float64 length; 0 where
    ``direct``: the log-probs go to ``log_prob`` in place); None where the step would
    split between threads or the family's variates per atom are not a constant."""
    items = n // E
    if not one_part(-(-items // per_items(E))):
        return None
    v = variates(params_cls)
    if type(v.per_atom) is not int:
        return None
    dt = np.dtype(dtype)
    atoms, direct = _pass_sizes(items, E, dt)
    return atoms * v.per_atom + _PAD, variate_dtype(v.kind, dt), 0 if direct else atoms, \
        direct


def _raw_sampler(params_cls: type, scores_cls: type, dtype: np.dtype):
    from numba import types as nt

    if checked_log_prob_score_raw(params_cls, scores_cls, dtype) is None:
        return None
    f32 = dtype == np.float32
    kind = variates(params_cls).kind
    if kind == "block":  # a 2-D scratch: not this call's layout
        return None
    bound = {"prepare_range": _specialise(_prepare_range, params_cls, f32, None),
             "sample_range": _specialise(_sample_score_range, params_cls, f32, scores_cls)}
    ptr = nt.CPointer(nt.float32 if f32 else nt.float64)
    vptr = nt.CPointer(nt.float32 if variate_dtype(kind, dtype) == np.float32 else nt.float64)
    f64p, i64, u64 = nt.CPointer(nt.float64), nt.int64, nt.uint64
    sig = nt.int64(ptr, ptr, u64, u64, u64, ptr, ptr, ptr, ptr, f64p, vptr, i64, f64p, i64,
                   i64, i64, nt.boolean)
    return _c_function(_bound_copy(_checked_sample_score_raw, bound, params_cls, f32), sig)


def _pass_sizes(n: int, E: int, out_dtype) -> tuple[int, bool]:
    """``(atoms, direct)`` of a fused call of ``n`` items of ``E`` atoms: the atoms of
    one pass (whole items), and whether ``out`` takes the atoms' log-probs in place
    (one float64 atom per item)."""
    return max(min(n * E, max(FILL_ATOMS // E, 1) * E), E), E == 1 and out_dtype == np.float64


def sample_score(p, key, x, s, out, B, E):
    n, per = out.shape[0], per_items(E)
    parts = n_parts(-(-n // per))
    atoms, direct = _pass_sizes(n, E, out.dtype)
    bufs = variate_scratch(p, atoms, parts)
    fn = _for(_sample_score_range, p, s)
    if parts == 1:  # the small call (an RL step): no split, no lists
        fn(tuple(_tiled(p, B, n * E)), key, x, tuple(s), out, B, E, direct, 0, n,
           (bufs[0], out if direct else np.empty(atoms)))
        return
    run_split(fn, (tuple(_tiled(p, B, n * E)), key, x, tuple(s), out, B, E, direct),
              n, per, [(bufs[t], out if direct else np.empty(atoms)) for t in range(parts)])


# The RL step -- one draw of every item of a small batch, fresh outputs -- is called
# thousands of times with the same family, dtype and sizes: what ``sample_score``
# derives for it (driver, scratch, whether ``out`` takes the atoms' log-probs in
# place) is kept per ``(record type, dtype, B, E)``, so such a call costs a lookup,
# the scratch and the compiled call (measured ~2 us less per step).
_STEPS: dict = {}


def sample_score_step(p, key, x, s, out, B, E) -> None:
    """:func:`sample_score` of one draw per item (``out.shape[0] * E == B`` atoms)."""
    k = (type(p), p[0].dtype, B, E)
    step = _STEPS.get(k)
    if step is None:
        if len(_STEPS) >= 1024:  # many batch sizes (variable-length batches): start over
            _STEPS.clear()
        step = _STEPS[k] = _step(p, s, B, E, out.dtype)
    if step is False:  # a batch large enough to split between threads
        sample_score(p, key, x, s, out, B, E)
        return
    fn, shape, dtype, atoms, direct, resolved = step
    args = (tuple(p), key, x, tuple(s), out, B, E, direct, 0, out.shape[0],
            (np.empty(shape, dtype), out if direct else np.empty(atoms)))
    fn(*args)
    if not resolved:
        step[0], step[5] = _entry_point(fn, args), True


def _step(p, s, B: int, E: int, out_dtype) -> list | bool:
    n = B // E
    if not one_part(-(-n // per_items(E))):  # the rule does not depend on the threads
        return False
    atoms, direct = _pass_sizes(n, E, out_dtype)
    scratch = variate_scratch(p, atoms, 1)
    return [_for(_sample_score_range, p, s), scratch.shape[1:], scratch.dtype, atoms, direct,
            False]


# Numba's dispatcher types every argument of every call (~0.15 us per array, 1.9 us for
# the step's eleven): a step calls the compiled function it resolved the first time
# directly, as safe as the dispatcher here because every argument's type is fixed by
# the step's key -- the record's class and dtype (fresh read-only aligned C arrays:
# ``_setup``), the key (``check_seed``), fresh C outputs of the record's dtypes and the
# family's ranks, ints, the scratch.  Measured: 2.05 -> 1.55 us for the (64, 6)
# Categorical step's compiled call (the unboxing stays).
def _entry_point(fn, args: tuple):
    """The compiled function behind the dispatcher ``fn`` for the types of ``args``
    (its C wrapper: unboxing, no typing), else ``fn`` (no JIT, no such overload)."""
    overloads = getattr(fn, "overloads", None)
    if not overloads:
        return fn
    cres = overloads.get(tuple(fn.typeof_pyval(a) for a in args))
    return fn if cres is None else cres.entry_point


def entropy(p, out, E):
    run_split(_for(_entropy_range, p), (tuple(p), out, E), out.shape[0], per_items(E))


def kl(p, q, out, E):
    run_split(_for(_kl_range, p), (tuple(p), tuple(q), out, E), out.shape[0], per_items(E))
