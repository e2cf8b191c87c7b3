"""Gradient estimators of ``grad_theta E_{x ~ p_theta}[f(x)]`` and variance reduction.

Every estimator returns an :class:`Estimate` (``grad``, ``var``, ``stderr``, ``n``).
"""

from .score_function import (
    BASELINES,
    EMA,
    ESTIMATORS,
    Estimate,
    antithetic,
    batched_score_function,
    estimate,
    measure_valued,
    pathwise,
    rloo,
    score_function,
)

__all__ = ["Estimate", "EMA", "score_function", "antithetic", "pathwise", "measure_valued",
           "rloo", "batched_score_function", "estimate", "BASELINES", "ESTIMATORS"]
