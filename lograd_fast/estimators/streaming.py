"""Streaming CPU kernels of the estimators (see ``lograd_fast/estimators/``).

Same pattern as ``cpu.py``: module-level ``@njit(cache=True)`` functions,
family maths through the entry points of ``_engine/dispatch.py``; the user's functions
arrive as C function pointers of a fixed signature (``_common._as_cfunc``), so
each kernel is compiled once per (family, dtype) and then loaded from the cache.

Lanes
-----
The ``n`` draws are split into ``W`` *lanes* of consecutive draws (``W`` a function
of the problem size only, never of the thread count).  Lane ``w`` owns its
buffers (one draw's samples and scores) and its moment accumulators
``acc[w, fold, moment, coord]`` and walks its draws in order; threads take the
lanes in turn (``_engine/threads.run_strided``) and the caller sums the lanes in lane order.  So the
result is bitwise the same for any ``NUMBA_NUM_THREADS``, and the memory is
``O(W x (atoms per draw + folds x moments x parameters))``, whatever ``n``.

Moments accumulated per lane and fold (``fold = draw index mod K``), per
parameter coordinate ``j`` (``g``: the draw's score summed onto the coordinates,
``rho = f(x) - shift``):

* score function (:data:`SCORE_MOMENTS`): ``sum h, sum h^2, sum u, sum u^2, sum u h``
  with ``h = g`` and ``u = rho g``;
* antithetic pairs (:data:`PAIR_MOMENTS`): the same five for the pair averages
  ``h = (g + g')/2``, ``u = (rho g + rho' g')/2``, then ``sum v, sum v^2, sum u v,
  sum v h`` with ``v = m h``, ``m = (rho + rho')/2``;
* pathwise / measure-valued (:data:`TERM_MOMENTS`): ``sum (t - c), sum (t - c)^2``
  of the per-draw terms ``t`` around a pilot estimate ``c``.

``racc[w, fold]`` holds ``count, sum m, sum m^2`` of the draw's (shifted) reward ``m``.

Draws: a lane computes the variates of many consecutive draws at once in the
family's vectorised pass (``dispatch.fill1``, as the sampling drivers do) into its
buffer ``vbuf[w]``, then runs the per-atom maths of each draw from it, so a
streaming estimate draws exactly the numbers ``dist.sample_and_score`` draws.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .._engine import cache as _cache  # noqa: F401  (installs the package-hash cache locator)
from .._engine.cpu import _PAD, FILL_ATOMS, _jit_free, variate_scratch
from .._engine.dispatch import fill1, per_atom1, reflect1, reparam1, sample_score1, score1
from .._engine.rng import buffered_stream
from .._engine.threads import run_strided

SCORE_MOMENTS = 5
PAIR_MOMENTS = 9
TERM_MOMENTS = 2
N_REWARD_MOMENTS = 3


# --------------------------------------------------------------------------- helpers
@njit(**_jit_free)
def _draws_per_pass(p, vb, B):
    """Draws whose variates fit in one pass of the lane's buffer ``vb`` (at least one)."""
    return max(1, (vb.shape[vb.ndim - 1] - _PAD) // per_atom1(p) // B)


@njit(**_jit_free)
def _lane_bounds(lane, n_lanes, n_draws):
    """Draws ``lo..hi-1`` of ``lane`` (consecutive blocks, sizes differ by <= 1)."""
    q = n_draws // n_lanes
    r = n_draws % n_lanes
    lo = lane * q + min(lane, r)
    return lo, lo + q + (1 if lane < r else 0)


@njit(**_jit_free)
def _lane_window(lane, n_lanes, n_draws, done, todo):
    """Draws ``done .. done+todo-1`` of ``lane``'s own (counted from its first draw),
    clipped to the lane: the caller runs a long call in windows (interruptible,
    with progress) and each lane still walks its draws in order, so the result does
    not depend on the windows."""
    lo, hi = _lane_bounds(lane, n_lanes, n_draws)
    return min(lo + done, hi), min(lo + done + todo, hi)


@njit(**_jit_free)
def _reduce(s_flat, field_off, coord, W, lane, g):
    """Sum the score entries of lane ``lane``'s draw onto the parameter coordinates."""
    for j in range(g.shape[0]):
        g[j] = 0.0
    for fi in range(field_off.shape[0] - 1):
        c0 = field_off[fi]
        size = field_off[fi + 1] - c0
        base = c0 * W + lane * size
        for k in range(size):
            g[coord[c0 + k]] += s_flat[base + k]


@njit(**_jit_free)
def _reduce_weighted(s_flat, field_off, coord, tails, ev_size, W, lane, weight, g):
    """Like :func:`_reduce`, each entry weighted by ``weight[e]``, ``e`` the element of
    the draw that the entry moves: entry ``k`` of a field with ``tail`` entries per
    atom belongs to atom ``k // tail``, and its leading tail index (of the
    ``ev_size`` event elements; none for scalar atoms) picks the element."""
    for j in range(g.shape[0]):
        g[j] = 0.0
    for fi in range(field_off.shape[0] - 1):
        c0 = field_off[fi]
        size = field_off[fi + 1] - c0
        base = c0 * W + lane * size
        tail = tails[fi]
        per_element = tail // ev_size
        for k in range(size):
            atom = k // tail
            e = atom * ev_size + (k - atom * tail) // per_element
            g[coord[c0 + k]] += s_flat[base + k] * weight[e]


# --------------------------------------------------------------------------- score function
@njit(**_jit_free)
def _score_lane(p, key, B, f, x_atoms, x_rows, s, s_flat, field_off, coord, g_buf, shift,
                acc, racc, vbuf, lane, lo, hi):
    # Views are taken once per lane and the fold is a counter: a view (or a modulo)
    # per draw costs about as much as the moments themselves.
    W = x_rows.shape[0]
    K = acc.shape[1]
    P = g_buf.shape[2]
    n_fields = field_off.shape[0] - 1
    # score entry k of field fi is coordinate field_off[fi] + k (no broadcast
    # parameter, scalar tails): the moments read the scores directly (-12% per draw)
    identity = coord.shape[0] == P
    for j in range(coord.shape[0]):
        if coord[j] != j:
            identity = False
    g = g_buf[lane, 0]
    a = acc[lane]
    ra = racc[lane]
    row = x_rows[lane]
    i0 = lane * B
    fold = lo % K
    vb = vbuf[lane]
    V = per_atom1(p)
    per = _draws_per_pass(p, vb, B)
    vj = 0  # the next atom's first variate in vb
    left = 0  # draws left in the pass
    for d in range(lo, hi):
        if left == 0:
            left = min(per, hi - d)
            vj = fill1(p, key, d * B, left * B, vb)
        left -= 1
        # (the draw loop is written out: passing the records p and s to a helper
        # function costs more than the draw itself)
        for b in range(B):
            sample_score1(p, b, buffered_stream(key, d * B + b, vb, vj), x_atoms, i0 + b, s)
            vj += V
        rho = f(row) - shift
        if identity:
            for fi in range(n_fields):
                c0 = field_off[fi]
                size = field_off[fi + 1] - c0
                base = c0 * W + lane * size
                for k in range(size):
                    h = np.float64(s_flat[base + k])
                    u = rho * h
                    j = c0 + k
                    a[fold, 0, j] += h
                    a[fold, 1, j] += h * h
                    a[fold, 2, j] += u
                    a[fold, 3, j] += u * u
                    a[fold, 4, j] += u * h
        else:
            _reduce(s_flat, field_off, coord, W, lane, g)
            for j in range(P):
                h = g[j]
                u = rho * h
                a[fold, 0, j] += h
                a[fold, 1, j] += h * h
                a[fold, 2, j] += u
                a[fold, 3, j] += u * u
                a[fold, 4, j] += u * h
        ra[fold, 0] += 1.0
        ra[fold, 1] += rho
        ra[fold, 2] += rho * rho
        fold += 1
        if fold == K:
            fold = 0


@njit(**_jit_free)
def _score_lanes(p, key, B, f, x_atoms, x_rows, s, s_flat, field_off, coord, g_buf, shift,
                 acc, racc, vbuf, n_draws, done, todo, first, step):
    W = acc.shape[0]
    for lane in range(first, W, step):
        lo, hi = _lane_window(lane, W, n_draws, done, todo)
        _score_lane(p, key, B, f, x_atoms, x_rows, s, s_flat, field_off, coord, g_buf, shift,
                    acc, racc, vbuf, lane, lo, hi)


# --------------------------------------------------------------------------- antithetic pairs
@njit(**_jit_free)
def _pair_lane(p, key, B, f, x_atoms, x_rows, s, s_flat, field_off, coord, g_buf, shift,
               acc, racc, vbuf, lane, lo, hi):
    W = x_rows.shape[0]
    K = acc.shape[1]
    P = g_buf.shape[2]
    g1 = g_buf[lane, 0]
    g2 = g_buf[lane, 1]
    a = acc[lane]
    ra = racc[lane]
    row = x_rows[lane]
    i0 = lane * B
    fold = lo % K
    vb = vbuf[lane]
    V = per_atom1(p)
    per = _draws_per_pass(p, vb, B)
    vj = 0  # the next atom's first variate in vb
    left = 0  # draws left in the pass
    for d in range(lo, hi):
        if left == 0:
            left = min(per, hi - d)
            vj = fill1(p, key, d * B, left * B, vb)
        left -= 1
        for b in range(B):
            sample_score1(p, b, buffered_stream(key, d * B + b, vb, vj), x_atoms, i0 + b, s)
            vj += V
        rho1 = f(row) - shift
        _reduce(s_flat, field_off, coord, W, lane, g1)
        for b in range(B):
            reflect1(p, b, x_atoms, i0 + b)
            score1(p, b, x_atoms, i0 + b, s)
        rho2 = f(row) - shift
        _reduce(s_flat, field_off, coord, W, lane, g2)
        m = 0.5 * (rho1 + rho2)
        for j in range(P):
            h = 0.5 * (g1[j] + g2[j])
            u = 0.5 * (rho1 * g1[j] + rho2 * g2[j])
            v = m * h
            a[fold, 0, j] += h
            a[fold, 1, j] += h * h
            a[fold, 2, j] += u
            a[fold, 3, j] += u * u
            a[fold, 4, j] += u * h
            a[fold, 5, j] += v
            a[fold, 6, j] += v * v
            a[fold, 7, j] += u * v
            a[fold, 8, j] += v * h
        ra[fold, 0] += 1.0
        ra[fold, 1] += m
        ra[fold, 2] += m * m
        fold += 1
        if fold == K:
            fold = 0


@njit(**_jit_free)
def _pair_lanes(p, key, B, f, x_atoms, x_rows, s, s_flat, field_off, coord, g_buf, shift,
                acc, racc, vbuf, n_draws, done, todo, first, step):
    W = acc.shape[0]
    for lane in range(first, W, step):
        lo, hi = _lane_window(lane, W, n_draws, done, todo)
        _pair_lane(p, key, B, f, x_atoms, x_rows, s, s_flat, field_off, coord, g_buf, shift,
                   acc, racc, vbuf, lane, lo, hi)


# --------------------------------------------------------------------------- pathwise
@njit(**_jit_free)
def _path_lane(p, key, B, f, df, x_atoms, x_rows, dx, dx_flat, field_off, coord, tails,
               weight, g_buf, shift, acc, racc, vbuf, lane, lo, hi):
    """Per draw: the atoms and ``dx/dtheta`` by reparameterisation, the term
    ``t_j = sum_e df(x_e) dx_e/dtheta_j`` and the objective ``sum_e f(x_e)``."""
    W = weight.shape[0]
    n_elements = weight.shape[1]
    ev_size = n_elements // B
    P = g_buf.shape[2]
    g = g_buf[lane, 0]
    wt = weight[lane]
    row = x_rows[lane]
    i0 = lane * B
    a = acc[lane, 0]
    ra = racc[lane, 0]
    vb = vbuf[lane]
    V = per_atom1(p)
    per = _draws_per_pass(p, vb, B)
    vj = 0  # the next atom's first variate in vb
    left = 0  # draws left in the pass
    for d in range(lo, hi):
        if left == 0:
            left = min(per, hi - d)
            vj = fill1(p, key, d * B, left * B, vb)
        left -= 1
        for b in range(B):
            reparam1(p, b, buffered_stream(key, d * B + b, vb, vj), x_atoms, i0 + b, dx)
            vj += V
        obj = 0.0
        for q in range(n_elements):
            xq = np.float64(row[q])
            obj += f(xq)
            wt[q] = df(xq)
        _reduce_weighted(dx_flat, field_off, coord, tails, ev_size, W, lane, wt, g)
        for j in range(P):
            t = g[j] - shift[j]
            a[0, j] += t
            a[1, j] += t * t
        ra[0] += 1.0
        ra[1] += obj
        ra[2] += obj * obj


@njit(**_jit_free)
def _path_lanes(p, key, B, f, df, x_atoms, x_rows, dx, dx_flat, field_off, coord, tails, weight,
                g_buf, shift, acc, racc, vbuf, n_draws, done, todo, first, step):
    W = acc.shape[0]
    for lane in range(first, W, step):
        lo, hi = _lane_window(lane, W, n_draws, done, todo)
        _path_lane(p, key, B, f, df, x_atoms, x_rows, dx, dx_flat, field_off, coord, tails,
                   weight, g_buf, shift, acc, racc, vbuf, lane, lo, hi)


# --------------------------------------------------------------------------- launchers
def _args(p, key, B, fs, bufs, shift, acc, racc):
    return (p, key, B, *fs, bufs.x_atoms, bufs.x_rows, bufs.s, bufs.s_flat, bufs.field_off,
            bufs.coord, bufs.g, shift, acc, racc)


def _window(n_draws, done, todo):
    return (n_draws, done, n_draws if todo is None else todo)


def _vbuf(p, lanes: int, B: int, n_draws: int):
    """One variate buffer per lane (a pass of up to ~FILL_ATOMS atoms, whole draws)."""
    return variate_scratch(p, min(n_draws, max(1, FILL_ATOMS // B)) * B, lanes)


def score_stream(p, key, B, f, bufs, shift, acc, racc, n_draws, done=0, todo=None):
    """Score-function moments of ``n_draws`` draws into ``acc`` (W, K, 5, P), ``racc``
    (only each lane's draws ``done .. done+todo-1`` when given: see :func:`_lane_window`)."""
    args = _args(p, key, B, (f,), bufs, np.float64(shift), acc, racc)
    vbuf = _vbuf(p, acc.shape[0], B, n_draws)
    run_strided(_score_lanes, args + (vbuf,) + _window(n_draws, done, todo), acc.shape[0])


def pair_stream(p, key, B, f, bufs, shift, acc, racc, n_draws, done=0, todo=None):
    """Antithetic-pair moments of ``n_draws`` pairs into ``acc`` (W, K, 9, P), ``racc``."""
    args = _args(p, key, B, (f,), bufs, np.float64(shift), acc, racc)
    vbuf = _vbuf(p, acc.shape[0], B, n_draws)
    run_strided(_pair_lanes, args + (vbuf,) + _window(n_draws, done, todo), acc.shape[0])


def path_stream(p, key, B, f, df, bufs, shift, acc, racc, n_draws, done=0, todo=None):
    """Pathwise moments of ``n_draws`` draws into ``acc`` (W, 1, 2, P), ``racc``."""
    args = (p, key, B, f, df, bufs.x_atoms, bufs.x_rows, bufs.s, bufs.s_flat, bufs.field_off,
            bufs.coord, bufs.tails, bufs.weight, bufs.g, shift, acc, racc)
    vbuf = _vbuf(p, acc.shape[0], B, n_draws)
    run_strided(_path_lanes, args + (vbuf,) + _window(n_draws, done, todo), acc.shape[0])
