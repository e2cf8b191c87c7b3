"""The generic CPU drivers: one per operation, for every family.

Each driver is a module-level ``@njit(cache=True)`` function whose first argument
is the family's parameter record; Numba specialises it per (family, dtype) the
first time it sees that record type and stores the machine code on disk (see
``_engine/cache.py``), so a second process loads it instead of compiling.  The family's
maths comes in through the entry points of ``_engine/dispatch.py``.

Work is cut into one contiguous part per thread (a call of one ``CHUNK`` of atoms
or less runs in the calling thread); inside a part the samplers compute Philox
block 0 for ``CHUNK`` atoms at a time.  Every atom draws from its own Philox
counter and every output element is written by exactly one atom (or group of
atoms, summed in a fixed order), so the split never changes a result.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import cache as _cache  # noqa: F401  (installs the package-hash cache locator)
from .dispatch import entropy1, kl1, log_prob1, sample1, sample_score1, score1
from .rng import _MASK32, _SHIFT32, philox4x32, stream_with_block0
from .threads import CHUNK, n_parts, per_items, run_split

_jit = dict(cache=True, nogil=True, error_model="numpy")
# The per-atom loops run without Numba's reference counting: the family maths is
# inlined with the parameter record passed by value, and every inlined call would
# otherwise incref/decref each array of the record (atomics, measured 28 ns per atom
# for Normal, more than the draw itself).  Nothing in them allocates.
_jit_free = dict(_jit, _nrt=False)


# --------------------------------------------------------------------------- block 0
@njit(**_jit_free)
def _fill_first_blocks(key, a0, n, words):
    """Philox block 0 of atoms ``a0 .. a0+n-1`` into ``words[:, :n]``.

    A plain loop of Philox vectorises (AVX2: 4 atoms per instruction); inside the
    branchy samplers it cannot.  Computing block 0 here first and handing it to the
    samplers through the stream tuple (``stream_with_block0``) takes the RNG off their
    critical path without changing a single draw."""
    for j in range(n):
        a = np.uint64(key[3] + a0 + j)
        w = philox4x32(np.uint64(0), a & _MASK32, a >> _SHIFT32, key[2], key[0], key[1])
        words[0, j] = w[0]
        words[1, j] = w[1]
        words[2, j] = w[2]
        words[3, j] = w[3]


@njit(inline="always", **_jit_free)
def _stream(key, a, words, j):
    return stream_with_block0(key[0], key[1], key[2], key[3] + a,
                              words[0, j], words[1, j], words[2, j], words[3, j])


# --------------------------------------------------------------------------- sample
@njit(**_jit_free)
def _sample_range(p, key, x, B, lo, hi, words):
    cap = words.shape[1]
    j = cap
    b = lo % B
    for a in range(lo, hi):
        if j == cap:
            _fill_first_blocks(key, a, min(cap, hi - a), words)
            j = 0
        sample1(p, b, _stream(key, a, words, j), x, a)
        j += 1
        b += 1
        if b == B:
            b = 0



# --------------------------------------------------------------------------- log_prob
@njit(**_jit_free)
def _log_prob_range(p, x, out, B, E, lo, hi):
    a = lo * E
    b = a % B
    for g in range(lo, hi):
        acc = 0.0
        for _ in range(E):
            acc += log_prob1(p, b, x, a)
            a += 1
            b += 1
            if b == B:
                b = 0
        out[g] = acc


# --------------------------------------------------------------------------- score
@njit(**_jit_free)
def _score_range(p, x, s, B, lo, hi):
    b = lo % B
    for a in range(lo, hi):
        score1(p, b, x, a, s)
        b += 1
        if b == B:
            b = 0



# --------------------------------------------------------------------------- sample_and_score
@njit(**_jit_free)
def _sample_score_range(p, key, x, s, out, B, E, lo, hi, words):
    cap = words.shape[1]
    j = cap
    a = lo * E
    end = hi * E
    b = a % B
    for g in range(lo, hi):
        acc = 0.0
        for _ in range(E):
            if j == cap:
                _fill_first_blocks(key, a, min(cap, end - a), words)
                j = 0
            acc += sample_score1(p, b, _stream(key, a, words, j), x, a, s)
            a += 1
            j += 1
            b += 1
            if b == B:
                b = 0
        out[g] = acc


# --------------------------------------------------------------------------- entropy, kl
@njit(**_jit_free)
def _entropy_range(p, out, E, lo, hi):
    for g in range(lo, hi):
        acc = 0.0
        for e in range(E):
            acc += entropy1(p, g * E + e)
        out[g] = acc



@njit(**_jit_free)
def _kl_range(p, q, out, E, lo, hi):
    for g in range(lo, hi):
        acc = 0.0
        for e in range(E):
            acc += kl1(p, q, g * E + e)
        out[g] = acc


def _words(n_atoms: int, n_chunks: int) -> np.ndarray:
    """Block-0 scratch, one (4, <=CHUNK) slab per part."""
    return np.empty((n_parts(n_chunks), 4, max(1, min(CHUNK, n_atoms))), np.uint64)


def sample(p, key, x, B):
    n = x.shape[0]
    run_split(_sample_range, (p, key, x, B), n, CHUNK, _words(n, -(-n // CHUNK)))


def log_prob(p, x, out, B, E):
    run_split(_log_prob_range, (p, x, out, B, E), out.shape[0], per_items(E))


def score(p, x, s, B):
    run_split(_score_range, (p, x, s, B), x.shape[0], CHUNK)


def sample_score(p, key, x, s, out, B, E):
    n, per = out.shape[0], per_items(E)
    run_split(_sample_score_range, (p, key, x, s, out, B, E), n, per, _words(n * E, -(-n // per)))


def entropy(p, out, E):
    run_split(_entropy_range, (p, out, E), out.shape[0], per_items(E))


def kl(p, q, out, E):
    run_split(_kl_range, (p, q, out, E), out.shape[0], per_items(E))
