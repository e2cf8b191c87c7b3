"""The generic CPU drivers: one per operation, for every family.

Each driver is a module-level ``@njit(cache=True)`` function whose first argument
is the family's parameter record; Numba specialises it per (family, dtype) the
first time it sees that record type and stores the machine code on disk (see
``_cache.py``), so a second process loads it instead of compiling.  The family's
maths comes in through the entry points of ``_dispatch.py``.

Work is split into fixed-size chunks of atoms (``CHUNK``).  Every atom draws from
its own Philox counter, so the split never changes a sample; reductions (the
streaming estimator) are summed per chunk and combined in chunk order, so they do
not depend on the thread count either.  Calls with a single chunk run the serial
range function directly and skip the thread pool's wake-up cost.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import _cache  # noqa: F401  (installs the package-hash cache locator)
from ._dispatch import entropy1, kl1, log_prob1, sample1, sample_score1, score1
from ._rng import _MASK32, _SHIFT32, philox4x32, stream_with_block0

CHUNK = 4096  # atoms (or draws) per parallel task

_jit = dict(cache=True, nogil=True, error_model="numpy")


# --------------------------------------------------------------------------- block 0
@njit(**_jit)
def _first_blocks(key, lo, hi):
    """Philox block 0 of atoms ``lo..hi-1`` as a (4, hi - lo) array.

    A plain loop of Philox vectorises (AVX2: 4 atoms per instruction); inside the
    branchy samplers it cannot.  Computing block 0 here first and handing it to the
    samplers through the stream tuple (``stream_with_block0``) takes the RNG off their
    critical path without changing a single draw."""
    words = np.empty((4, hi - lo), np.uint64)
    for j in range(hi - lo):
        a = np.uint64(key[3] + lo + j)
        w = philox4x32(np.uint64(0), a & _MASK32, a >> _SHIFT32, key[2], key[0], key[1])
        words[0, j] = w[0]
        words[1, j] = w[1]
        words[2, j] = w[2]
        words[3, j] = w[3]
    return words


@njit(**_jit)
def _stream(key, a, words, j):
    return stream_with_block0(key[0], key[1], key[2], key[3] + a,
                              words[0, j], words[1, j], words[2, j], words[3, j])


# --------------------------------------------------------------------------- sample
@njit(**_jit)
def _sample_range(p, key, x, B, lo, hi):
    words = _first_blocks(key, lo, hi)
    b = lo % B
    for a in range(lo, hi):
        sample1(p, b, _stream(key, a, words, a - lo), x, a)
        b += 1
        if b == B:
            b = 0


@njit(parallel=True, **_jit)
def _sample_par(p, key, x, B, n_items):
    for c in prange((n_items + CHUNK - 1) // CHUNK):
        _sample_range(p, key, x, B, c * CHUNK, min(n_items, (c + 1) * CHUNK))


# --------------------------------------------------------------------------- log_prob
@njit(**_jit)
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


@njit(parallel=True, **_jit)
def _log_prob_par(p, x, out, B, E, n_items):
    for c in prange((n_items + CHUNK - 1) // CHUNK):
        _log_prob_range(p, x, out, B, E, c * CHUNK, min(n_items, (c + 1) * CHUNK))


# --------------------------------------------------------------------------- score
@njit(**_jit)
def _score_range(p, x, s, B, lo, hi):
    b = lo % B
    for a in range(lo, hi):
        score1(p, b, x, a, s)
        b += 1
        if b == B:
            b = 0


@njit(parallel=True, **_jit)
def _score_par(p, x, s, B, n_items):
    for c in prange((n_items + CHUNK - 1) // CHUNK):
        _score_range(p, x, s, B, c * CHUNK, min(n_items, (c + 1) * CHUNK))


# --------------------------------------------------------------------------- sample_and_score
@njit(**_jit)
def _sample_score_range(p, key, x, s, out, B, E, lo, hi):
    a = lo * E
    words = _first_blocks(key, a, hi * E)
    b = a % B
    for g in range(lo, hi):
        acc = 0.0
        for _ in range(E):
            acc += sample_score1(p, b, _stream(key, a, words, a - lo * E), x, a, s)
            a += 1
            b += 1
            if b == B:
                b = 0
        out[g] = acc


@njit(parallel=True, **_jit)
def _sample_score_par(p, key, x, s, out, B, E, n_items):
    for c in prange((n_items + CHUNK - 1) // CHUNK):
        _sample_score_range(p, key, x, s, out, B, E, c * CHUNK, min(n_items, (c + 1) * CHUNK))


# --------------------------------------------------------------------------- entropy, kl
@njit(**_jit)
def _entropy_range(p, out, E, lo, hi):
    for g in range(lo, hi):
        acc = 0.0
        for e in range(E):
            acc += entropy1(p, g * E + e)
        out[g] = acc


@njit(**_jit)
def _kl_range(p, q, out, E, lo, hi):
    for g in range(lo, hi):
        acc = 0.0
        for e in range(E):
            acc += kl1(p, q, g * E + e)
        out[g] = acc


# --------------------------------------------------------------------------- launchers
def sample(p, key, x, B):
    n = x.shape[0]
    if n <= CHUNK:
        _sample_range(p, key, x, B, 0, n)
    else:
        _sample_par(p, key, x, B, n)


def log_prob(p, x, out, B, E):
    n = out.shape[0]
    if n * E <= CHUNK:
        _log_prob_range(p, x, out, B, E, 0, n)
    else:
        _log_prob_par(p, x, out, B, E, n)


def score(p, x, s, B):
    n = x.shape[0]
    if n <= CHUNK:
        _score_range(p, x, s, B, 0, n)
    else:
        _score_par(p, x, s, B, n)


def sample_score(p, key, x, s, out, B, E):
    n = out.shape[0]
    if n * E <= CHUNK:
        _sample_score_range(p, key, x, s, out, B, E, 0, n)
    else:
        _sample_score_par(p, key, x, s, out, B, E, n)


def entropy(p, out, E):
    _entropy_range(p, out, E, 0, out.shape[0])


def kl(p, q, out, E):
    _kl_range(p, q, out, E, 0, out.shape[0])
