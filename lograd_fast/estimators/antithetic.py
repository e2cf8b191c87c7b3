"""Antithetic sampling: the score-function estimator on mirrored pairs."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._engine.dispatch import supports
from ..distribution import Distribution, check_seed
from ._common import _as_dispatcher, _check_dist, _check_draws, _check_progress, _cpu_only
from .baselines import DEFAULT_FOLDS, _check_baseline, _check_folds
from .result import Estimate
from .score_function import _streaming


def antithetic(dist: Distribution, f: Any, n: int, seed: int = 0, *, stream: int = 0,
               baseline: Any = None, n_folds: int = DEFAULT_FOLDS,
               progress: Any = False) -> Estimate:
    """Score-function estimate on ``n`` antithetic pairs ``(x_i, x_i')``.

    ``x_i`` is draw ``i`` of ``dist.sample(n, seed, stream=stream)`` and ``x_i'`` its
    mirror image about the centre of symmetry (``2 loc - x`` for a Normal; the
    family's ``reflect1``), which has the same law, so each pair term

        ``T_i = ((r_i - b_i) s(x_i) + (r_i' - b_i) s(x_i')) / 2``

    is unbiased (``2 n`` evaluations of ``f``).  ``grad`` is the mean of the ``n``
    pair terms and **``var`` is the variance of the per-pair averaged terms**
    ``T_i`` (``stderr = sqrt(var / n)``), so compare it with half the variance of a
    single score-function term at equal cost.

    Baselines are those of :func:`score_function` with the pair as the unit: the
    pair's mean reward ``m_i`` enters ``"mean"``/``"loo"`` (``"loo"`` uses the other
    pairs only, unbiased), ``"optimal"`` cross-fits ``b_j = E[u_j h_j]/E[h_j^2]``
    (``h``, ``u``: the pair averages of ``s`` and ``r s``) over folds of pairs.  The
    ``"mean"`` bias is ``-E[m h]/n`` (no longer exactly the (n-1)/n factor).

    Needs a symmetric family (an ``reflect1`` entry point) and ``backend="cpu"``;
    ``f`` and ``progress`` as in :func:`score_function`.  Returns an :class:`Estimate`.
    """
    _check_dist(dist)
    baseline = _check_baseline(baseline)
    K = _check_folds(n_folds)
    progress = _check_progress(progress)
    if not supports(type(dist._record), "reflect1"):
        raise TypeError(f"dist: antithetic sampling needs a symmetric family with a reflect1 "
                        f"entry point; {type(dist).__name__} has none")
    f = _as_dispatcher(f)
    n = _check_draws(dist, n)
    _cpu_only(dist, "antithetic")
    key = check_seed(seed, stream) + (np.int64(0),)
    return _streaming(dist, f, n, key, baseline, min(K, n) if baseline == "optimal" else 1,
                      pairs=True, progress=progress)
