"""Streaming CPU kernels of the estimators (see ``estimators.py``).

Same pattern as ``_kernels.py``: module-level ``@njit(cache=True)`` functions,
family maths through the entry points of ``_dispatch.py``, fixed chunks of draws
whose partial sums are combined in chunk order (thread-count independent).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import _cache  # noqa: F401  (installs the package-hash cache locator)
from ._dispatch import sample_score1
from ._kernels import _jit
from ._rng import make_stream

N_MOMENTS = 5  # sum s, sum s^2, sum rho s, sum rho^2 s^2, sum rho s^2  (rho = r - shift)


@njit(**_jit)
def _stream_range(p, key, B, f, x_atoms, x_rows, s, s_flat, field_off, coord,
                  g_buf, shift, stats, r_stats, slot, chunk, lo, hi):
    """Draws ``lo..hi-1``: sample + score each draw into buffer slot ``slot``,
    reward it with ``f``, reduce its score to parameter coordinates and add the
    moments to ``stats[chunk, fold]`` (fold = draw index mod n_folds)."""
    T = x_rows.shape[0]
    n_fields = field_off.shape[0] - 1
    n_folds = stats.shape[1]
    P = g_buf.shape[1]
    g = g_buf[slot]
    i0 = slot * B
    for d in range(lo, hi):
        for b in range(B):
            st = make_stream(key[0], key[1], key[2], key[3] + d * B + b)
            sample_score1(p, b, st, x_atoms, i0 + b, s)
        rho = f(x_rows[slot]) - shift
        for j in range(P):
            g[j] = 0.0
        for fi in range(n_fields):
            size = field_off[fi + 1] - field_off[fi]
            base = field_off[fi] * T + slot * size
            for k in range(size):
                g[coord[field_off[fi] + k]] += s_flat[base + k]
        fold = d % n_folds
        st_c = stats[chunk, fold]
        for j in range(P):
            gj = g[j]
            gj2 = gj * gj
            st_c[0, j] += gj
            st_c[1, j] += gj2
            st_c[2, j] += rho * gj
            st_c[3, j] += rho * rho * gj2
            st_c[4, j] += rho * gj2
        r_stats[chunk, fold, 0] += 1.0
        r_stats[chunk, fold, 1] += rho
        r_stats[chunk, fold, 2] += rho * rho


@njit(parallel=True, **_jit)
def _stream_par(p, key, B, f, x_atoms, x_rows, s, s_flat, field_off, coord,
                g_buf, shift, stats, r_stats, n_draws, chunk_draws):
    # One prange iteration per buffer slot, each walking its own chunks: a slot is
    # never used by two threads at once.  (numba.get_thread_id would be simpler but
    # a cached function that calls it crashes when loaded in another process.)
    n_slots = x_rows.shape[0]
    n_chunks = stats.shape[0]
    for t in prange(n_slots):
        slot = np.int64(t)
        for chunk in range(slot, n_chunks, n_slots):
            _stream_range(p, key, B, f, x_atoms, x_rows, s, s_flat, field_off, coord, g_buf,
                          shift, stats, r_stats, slot, chunk, chunk * chunk_draws,
                          min(n_draws, (chunk + 1) * chunk_draws))


def stream(p, key, B, f, bufs, shift, stats, r_stats, n_draws, chunk_draws):
    """Run the streaming estimator over ``n_draws`` draws (see ``estimators.py``)."""
    args = (p, key, B, f, bufs.x_atoms, bufs.x_rows, bufs.s, bufs.s_flat, bufs.field_off,
            bufs.coord, bufs.g, np.float64(shift), stats, r_stats)
    if stats.shape[0] == 1:
        _stream_range(*args, 0, 0, 0, n_draws)
    else:
        _stream_par(*args, n_draws, chunk_draws)
