"""The pathwise (reparameterisation) estimator."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._engine.dispatch import supports
from ..distribution import Distribution, check_seed
from . import streaming as _ek
from ._common import (
    Progress,
    _as_dispatcher,
    _as_scalar_cfunc,
    _check_dist,
    _check_draws,
    _check_progress,
    _check_scalar_f,
    _cpu_only,
    _finish_terms,
    _lanes,
    _run_windows,
    _stream_buffers,
    _watch,
)
from .result import Estimate, _coords, _n_coords


def _first(values: np.ndarray) -> float:
    return float(values[0])


def pathwise(dist: Distribution, f: Any, df: Any = None, n: int | None = None, seed: int = 0,
             *, stream: int = 0, progress: Any = False) -> Estimate:
    r"""Pathwise (reparameterisation) estimate of ``grad E[sum_e f(x_e)]``.

    ``f`` and ``df`` are ``@numba.njit`` *scalar* functions of one element ``x_e``
    (a float) returning a float: the objective of a draw is ``sum_e f(x_e)`` over
    its elements and ``df = f'``.  Each draw ``x = T(eps, theta)`` comes from the
    family's ``reparam1`` (the same stream as ``dist.sample``), and its term is

        ``t_j = sum_e df(x_e) dx_e/dtheta_j``

    (unbiased when ``f`` is differentiable almost everywhere with integrable
    derivative).  ``grad`` is the mean of the ``n`` terms, ``var`` their variance
    (ddof=1).  ``extra["objective"]`` is the mean of ``sum_e f(x_e)``.

    The elements ``x_e`` are all batch and event elements of a draw (for a
    MultivariateNormal, the ``D`` coordinates of each atom).  ``reparam1`` writes one
    derivative per parameter entry: the entry moves the element picked by its
    leading tail indices (the atom itself for scalar atoms; coordinate ``j`` for
    ``loc[j]`` and ``S[j, k]`` of a MultivariateNormal).

    Needs a family with a ``reparam1`` entry point and ``backend="cpu"``.  Memory
    O(lanes x parameters) whatever ``n``.  ``progress`` as in :func:`score_function`;
    an exception raised by ``f`` or ``df`` reaches the caller.
    """
    _check_dist(dist)
    progress = _check_progress(progress)
    if not supports(type(dist._record), "reparam1"):  # first: no df can help then
        raise TypeError(f"dist: the pathwise estimator needs a reparameterisable family (a "
                        f"reparam1 entry point); {type(dist).__name__} has none: use "
                        f"score_function")
    f = _as_dispatcher(f, "f", "of one element (a float)")
    if df is None:
        raise TypeError("df is required for the pathwise estimator: the derivative of f, "
                        "an @numba.njit function of one element (a float)")
    df = _as_dispatcher(df, "df", "of one element (a float)")
    ev = dist.sample_event_shape
    for name, tail in dist._param_tail.items():
        if tuple(tail[:len(ev)]) != tuple(ev):
            raise TypeError(f"dist: the pathwise estimator needs each entry of a parameter's "
                            f"derivative to move one element of the draw (tail dims starting "
                            f"with the atom's event dims {ev}); {name} has tail dims {tail}")
    n = _check_draws(dist, n)
    _cpu_only(dist, "pathwise")
    key = check_seed(seed, stream) + (np.int64(0),)
    _check_scalar_f(dist, f, "f", key)
    _check_scalar_f(dist, df, "df", key)
    coord, layout, sizes = _coords(dist)
    P = _n_coords(layout)
    W = _lanes(n, dist._B, 2 * P + 3 * dist._B * math.prod(ev) + sum(sizes))
    bufs = _stream_buffers(dist, coord, sizes, P, W)
    (fc, f_failures), (dfc, df_failures) = _as_scalar_cfunc(f), _as_scalar_cfunc(df)
    check = _watch("pathwise", (f, f_failures, "f", _first), (df, df_failures, "df", _first))
    pilot_n = min(n, 64)
    pilot = np.zeros((1, 1, _ek.TERM_MOMENTS, P))
    pilot_r = np.zeros((1, 1, _ek.N_REWARD_MOMENTS))
    _ek.path_stream(dist._record, key, dist._B, fc, dfc, bufs, np.zeros(P), pilot, pilot_r,
                    pilot_n)
    check()
    shift = pilot[0, 0, 0] / pilot_n
    acc = np.zeros((W, 1, _ek.TERM_MOMENTS, P))
    racc = np.zeros((W, 1, _ek.N_REWARD_MOMENTS))
    _run_windows(lambda done, todo: _ek.path_stream(dist._record, key, dist._B, fc, dfc, bufs,
                                                    shift, acc, racc, n, done, todo),
                 n, W, dist._B, check, Progress(progress, "pathwise", n))
    return _finish_terms(acc, racc, shift, n, layout, dist.dtype, "pathwise", "f or df")
