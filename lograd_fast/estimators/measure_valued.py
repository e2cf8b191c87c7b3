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
exactly ``dist.sample(n, seed)``: the atom's normal uses its Philox block 0 (and
more on a ziggurat rejection); ``E`` and ``E'`` come from the next two blocks.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .._engine import cache as _cache  # noqa: F401  (installs the package-hash cache locator)
from .._engine.cpu import _jit, run_strided
from .._engine.jit import jitable
from .._engine.rng import make_stream, std_exponential, std_normal
from .streaming import _lane_bounds

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
            zb, nb = std_normal(x, st, 0)
            z[b] = np.float64(zb)
            blk[b] = nb
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
               n_draws, first, step):
    W = acc.shape[0]
    for lane in range(first, W, step):
        lo, hi = _lane_bounds(lane, W, n_draws)
        _mvd_lane(p, key, B, f, x_rows, z_buf, blk_buf, coord_loc, coord_ls, g_buf, shift,
                  acc, lane, lo, hi)


def mvd_stream(p, key, B, f, bufs, shift, acc, n_draws):
    """MVD terms of ``n_draws`` draws: moments into ``acc`` (W, 1, 2, P)."""
    args = (p, key, B, f, bufs.x_rows, bufs.z, bufs.blk, bufs.coord_loc, bufs.coord_ls,
            bufs.g, shift, acc)
    run_strided(_mvd_lanes, args + (n_draws,), acc.shape[0])
