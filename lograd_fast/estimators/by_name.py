"""Any estimator by name (what the sweep and the CLI call)."""

from __future__ import annotations

from typing import Any

from ..distribution import Distribution
from .antithetic import antithetic
from .baselines import DEFAULT_FOLDS
from .measure_valued import measure_valued
from .pathwise import pathwise
from .result import Estimate
from .score_function import score_function

ESTIMATORS = ("score", "antithetic", "pathwise", "mvd")


def estimate(dist: Distribution, f: Any, n: int, seed: int = 0, *, estimator: str = "score",
             baseline: Any = None, df: Any = None, stream: int = 0,
             n_folds: int = DEFAULT_FOLDS, progress: Any = False) -> Estimate:
    """Run the estimator named ``estimator`` (one of :data:`ESTIMATORS`).

    ``"score"`` -> :func:`score_function`, ``"antithetic"`` -> :func:`antithetic`
    (both take ``baseline``), ``"pathwise"`` -> :func:`pathwise` (``f`` and ``df``
    scalar functions of one element), ``"mvd"`` -> :func:`measure_valued`.
    ``progress`` is passed on (``True`` or a callable ``(done, total, elapsed_s)``).
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if estimator in ("pathwise", "mvd") and baseline is not None:
        raise ValueError(f"baseline does not apply to estimator={estimator!r} (got "
                         f"{baseline!r}); pass baseline=None")
    if estimator == "score":
        return score_function(dist, f, n, seed, stream=stream, baseline=baseline,
                              n_folds=n_folds, progress=progress)
    if estimator == "antithetic":
        return antithetic(dist, f, n, seed, stream=stream, baseline=baseline, n_folds=n_folds,
                          progress=progress)
    if estimator == "pathwise":
        return pathwise(dist, f, df, n, seed, stream=stream, progress=progress)
    return measure_valued(dist, f, n, seed, stream=stream, progress=progress)
