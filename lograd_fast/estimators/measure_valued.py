r"""Measure-valued derivative (MVD) of ``E[f(x)]`` for the Normal family: kernels.

Weak derivatives of the Normal density (Mohamed, Rosca, Figurnov & Mnih 2020,
"Monte Carlo Gradient Estimation in Machine Learning", JMLR 21(132), section 6,
Table 1), for one atom ``x = mu + sigma z``:

* ``d/dmu N(x|mu, sigma) = c_mu (N+(x) - N-(x))`` with ``c_mu = 1 / (sigma sqrt(2 pi))``,
  ``N+ = mu + sigma W``, ``N- = mu - sigma W``, ``W ~ Weibull(2, 1/2)`` (density
  ``w exp(-w^2/2)``, the Rayleigh law: ``W = sqrt(2 E)``, ``E ~ Exp(1)``);
* ``d/dsigma N = (1/sigma) (M(x) - N(x))`` with ``M = mu + sigma D``, ``D`` double-sided
  Maxwell (density ``d^2 phi(d)``); by the chain rule
  ``d/dlog_sigma E f = E f(mu + sigma D) - E f(mu + sigma z)``.

Coupling (common random numbers, which keeps the estimator unbiased and lowers its
variance): the same ``W`` serves both sides of the ``mu`` difference, and the
Maxwell draw reuses the atom's own normal ``z``: ``D = sign(z) sqrt(2 E' + z^2)``
(a chi-3 magnitude, since ``2 E' ~ chi^2_2`` and ``z^2 ~ chi^2_1``, with a sign
independent of it), so the negative part of the ``sigma`` difference *is* the
unperturbed draw.  The other atoms of the draw keep their unperturbed values.

Per draw this costs ``1 + 3 B`` calls of ``f`` (B atoms).  The unperturbed draw is
exactly ``dist.sample(n, seed)``: the atom's normal is its ``normal`` variate, as in
Normal's sampler; ``E`` and ``E'`` come from its own Philox blocks 1 and 2.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
from numba import njit

from .._engine.cpu import _jit
from .._engine.jit import jitable
from .._engine.rng import make_stream, normal_variate, std_exponential
from .._engine.threads import run_strided
from ..distribution import Distribution, check_seed
from . import streaming as _ek
from ._common import (
    Progress,
    _as_dispatcher,
    _check_dist,
    _check_draws,
    _check_f,
    _check_progress,
    _cpu_only,
    _finish_terms,
    _lanes,
    _reward_of,
    _run_windows,
)
from .result import Estimate, _coords, _n_coords
from .streaming import _lane_window, _window

INV_SQRT_2PI = 0.3989422804014327


@jitable
def rayleigh(like, st, block):
    """``(w, next_block)``: a Weibull(2, 1/2) (Rayleigh) draw ``sqrt(2 E)``."""
    e, block = std_exponential(like, st, block)
    return math.sqrt(2.0 * np.float64(e)), block


@jitable
def maxwell_coupled(z, like, st, block):
    """``(d, next_block)``: a double-sided Maxwell draw sharing the sign of ``z``
    (itself standard normal): ``sign(z) sqrt(2 E + z^2)``."""
    e, block = std_exponential(like, st, block)
    mag = math.sqrt(2.0 * np.float64(e) + z * z)
    return (-mag if z < 0.0 else mag), block


@njit(**_jit)
def _mvd_lane(p, key, B, f, x_rows, z_buf, blk_buf, coord_loc, coord_ls, g_buf, shift,
              acc, lane, lo, hi):
    P = g_buf.shape[1]
    x = x_rows[lane]
    z = z_buf[lane]
    blk = blk_buf[lane]
    g = g_buf[lane]
    a = acc[lane, 0]
    for d in range(lo, hi):
        for b in range(B):
            st = make_stream(key[0], key[1], key[2], key[3] + d * B + b)
            z[b] = np.float64(normal_variate(x, st, 1, 0))
            blk[b] = 1  # E and E' from the atom's own blocks 1 and 2
            x[b] = p.loc[b] + p.scale[b] * z[b]
        f0 = f(x)
        for j in range(P):
            g[j] = 0.0
        for b in range(B):
            st = make_stream(key[0], key[1], key[2], key[3] + d * B + b)
            w, nb = rayleigh(x, st, blk[b])
            dm, _ = maxwell_coupled(z[b], x, st, nb)
            keep = x[b]
            mu = np.float64(p.loc[b])
            sigma = p.scale[b]
            x[b] = mu + sigma * w
            f_plus = f(x)
            x[b] = mu - sigma * w
            f_minus = f(x)
            x[b] = mu + sigma * dm
            f_maxwell = f(x)
            x[b] = keep
            g[coord_loc[b]] += (f_plus - f_minus) * (INV_SQRT_2PI * p.inv_scale[b])
            g[coord_ls[b]] += f_maxwell - f0
        for j in range(P):
            t = g[j] - shift[j]
            a[0, j] += t
            a[1, j] += t * t


@njit(**_jit)
def _mvd_lanes(p, key, B, f, x_rows, z_buf, blk_buf, coord_loc, coord_ls, g_buf, shift, acc,
               n_draws, done, todo, first, step):
    W = acc.shape[0]
    for lane in range(first, W, step):
        lo, hi = _lane_window(lane, W, n_draws, done, todo)
        _mvd_lane(p, key, B, f, x_rows, z_buf, blk_buf, coord_loc, coord_ls, g_buf, shift,
                  acc, lane, lo, hi)


def mvd_stream(p, key, B, f, bufs, shift, acc, n_draws, done=0, todo=None):
    """MVD terms of ``n_draws`` draws: moments into ``acc`` (W, 1, 2, P) (each lane's
    draws ``done .. done+todo-1`` only, when given)."""
    args = (p, key, B, f, bufs.x_rows, bufs.z, bufs.blk, bufs.coord_loc, bufs.coord_ls,
            bufs.g, shift, acc)
    run_strided(_mvd_lanes, args + _window(n_draws, done, todo), acc.shape[0])


# --------------------------------------------------------------------------- the estimator
def measure_valued(dist: Distribution, f: Any, n: int, seed: int = 0, *,
                   stream: int = 0, progress: Any = False) -> Estimate:
    """Measure-valued derivative (weak derivative) estimate for a Normal.

    For each draw ``x`` (exactly ``dist.sample(n, seed)``) and each atom ``b``:

    * ``d/dloc_b``: ``(f(x | x_b = mu + sigma W) - f(x | x_b = mu - sigma W)) / (sigma
      sqrt(2 pi))`` with ``W`` Weibull(2, 1/2) (Rayleigh), the same ``W`` on both sides;
    * ``d/dlog_scale_b``: ``f(x | x_b = mu + sigma D) - f(x)`` with ``D`` a double-sided
      Maxwell draw coupled to the atom's own normal (see ``measure_valued.py``), i.e. the
      ``sigma``-derivative ``(1/sigma)(E f(M) - E f(N))`` times ``sigma`` (chain rule).

    Mohamed, Rosca, Figurnov & Mnih (2020), JMLR 21(132), sections 6 and 8, Table 1.
    Unbiased for any integrable ``f`` (no differentiability needed); ``1 + 3 B``
    calls of ``f`` per draw.  ``f`` as in :func:`score_function` (a 1-D array of the
    draw).  ``var`` is the variance of the per-draw terms.  ``backend="cpu"`` only.
    ``progress`` as in :func:`score_function`.
    """
    from ..families.normal import Normal

    _check_dist(dist)
    progress = _check_progress(progress)
    if not isinstance(dist, Normal):
        raise TypeError(f"dist: the measure-valued estimator is implemented for Normal "
                        f"(loc, log_scale); got {type(dist).__name__}")
    f = _as_dispatcher(f)
    n = _check_draws(dist, n)
    _cpu_only(dist, "measure_valued")
    key = check_seed(seed, stream) + (np.int64(0),)
    _check_f(dist, f, key)
    coord, layout, _ = _coords(dist)
    P = _n_coords(layout)
    B = dist._B
    W = _lanes(n, B, 2 * P + 3 * B)
    bufs = SimpleNamespace(x_rows=np.zeros((W, B), dist.dtype), z=np.zeros((W, B)),
                           blk=np.zeros((W, B), np.int64), coord_loc=coord[:B].copy(),
                           coord_ls=coord[B:].copy(), g=np.zeros((W, P)))
    reward, check = _reward_of(f, dist._sample_dtype, "measure_valued")
    pilot_n = min(n, 64)
    pilot = np.zeros((1, 1, _ek.TERM_MOMENTS, P))
    mvd_stream(dist._record, key, B, reward, bufs, np.zeros(P), pilot, pilot_n)
    check()
    shift = pilot[0, 0, 0] / pilot_n
    acc = np.zeros((W, 1, _ek.TERM_MOMENTS, P))
    _run_windows(lambda done, todo: mvd_stream(dist._record, key, B, reward, bufs, shift, acc,
                                               n, done, todo),
                 n, W, B, check, Progress(progress, "measure_valued", n))
    return _finish_terms(acc, None, shift, n, layout, dist.dtype, "measure_valued", "f")
