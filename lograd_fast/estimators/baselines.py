r"""Baselines of the score-function estimators, and the algebra that applies them.

Baselines ``b_i`` (score function and antithetic)
-------------------------------------------------
``None``        no baseline (``b = 0``).
``float``       a constant.
``"mean"``      the mean of the ``n`` rewards, *including* ``r_i``: biased.  For the
                score function ``E[grad] = (n-1)/n * true gradient`` exactly
                (``grad_mean = (n-1)/n * grad_loo`` draw by draw); kept because it
                is the classic form.
``"loo"``       leave-one-out mean ``(sum_j r_j - r_i)/(n-1)`` (RLOO): unbiased, since
                ``b_i`` does not depend on draw ``i`` and ``E[grad log p] = 0``.
``"optimal"``   per-coordinate variance-minimising baseline
                ``b*_j = E[r s_j^2] / E[s_j^2]``, estimated by **K-fold cross-fitting**:
                draw ``i`` is in fold ``i mod K`` (``K = min(n_folds, n)``, default 8)
                and uses ``b_j = sum_{i' not in fold} r_i' s_i'j^2 / sum_{i' not in fold}
                s_i'j^2``, computed from the *other* folds only.  That baseline is
                independent of draw ``i``, so ``E[(r_i - b_j) s_ij] = E[r s_j]``: the
                estimator is unbiased for every ``n >= 2`` (``K = n`` is leave-one-out,
                the case for ``n <= 8``).  Cross-fitting instead of leave-one-out
                because it is exact in one streaming pass: the kernel keeps the sums
                ``Q_j = sum r s_j^2`` and ``H_j = sum s_j^2`` per fold, and fold ``k`` uses
                ``b_j = (Q_j - Q_j^(k)) / (H_j - H_j^(k))`` (totals minus its own fold).
                (An in-sample ``b`` is biased at small ``n``: see the tests.)
                Coordinates whose score is 0 on all other folds get ``b = 0``.
:class:`EMA`    a moving average of past calls' mean rewards, zero-debiased; the value
                used in a call is fixed before the call, hence unbiased.

The streaming algebra: with ``rho_i = r_i - c`` (``c``: the mean of ``f`` over a short
pilot, which only improves the rounding), per-draw ``h = g`` (the draw's score summed
onto parameter coordinates) and ``u = rho g``, every baseline gives terms
``t = u + a v + c' h`` (``v = rho h``) with scalars ``a, c'`` known at the end, so
``sum t`` and ``sum t^2`` follow from per-fold sums of ``h, h^2, u, u^2, u h`` (and
``v, v^2, u v, v h`` for antithetic pairs, where ``v = m h`` with ``m`` the pair's mean
reward).

Antithetic pairs and odd scores: a parameter whose score is odd under the family's
reflection (``Family.reflect_odd``, e.g. ``loc``: ``s(2 mu - x) = -s(x)``) has a pair
average ``h = (s(x) + s(x'))/2`` that is *identically* 0; the kernel's ``h`` there is
rounding noise (~1e-17), and ``sum u h / sum h^2`` of noise is an O(1e16) "optimal"
coefficient times noise -- an O(1) bias (issue 15, item 1).  Such coordinates need
no baseline, and ``_finish`` sets their ``h`` (and ``v = m h``) moments to the exact
0 of the maths, so every baseline leaves their terms ``t = u`` untouched.  The
decision comes from the family's declaration, never from a threshold on the noise.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .streaming import PAIR_MOMENTS, SCORE_MOMENTS

BASELINES = (None, "mean", "loo", "optimal")  # plus a float or an EMA instance
DEFAULT_FOLDS = 8


class EMA:
    """Exponential-moving-average baseline with zero-debiasing (as in Adam).

    State after ``t`` calls with mean rewards ``m_1..m_t``:
    ``a_t = decay a_{t-1} + (1 - decay) m_t`` (``a_0 = 0``) and the baseline
    ``value = a_t / (1 - decay**t)`` (``0`` before the first call).  Pass the *same*
    object to successive estimator calls: each call subtracts the value from
    *before* the call (independent of that call's samples, so the estimate is
    unbiased) and then folds in the call's mean reward.  The mean reward is a scalar
    for streaming calls and per-draw rewards, and ``batch_shape``-shaped for
    per-element rewards (``score_function(d, rewards=(n, *batch_shape), x=x)``).
    """

    def __init__(self, decay: float = 0.99):
        if isinstance(decay, bool) or not isinstance(decay, numbers.Real):
            raise TypeError(f"decay must be a float in [0, 1), got {decay!r}")
        if not 0.0 <= float(decay) < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.reset()

    def reset(self) -> None:
        """Forget every update."""
        self._acc: Any = 0.0
        self.t = 0

    @property
    def value(self) -> Any:
        """The zero-debiased average (a float, or an array after per-element updates)."""
        if self.t == 0:
            return 0.0
        return self._acc / (1.0 - self.decay**self.t)

    def update(self, mean_reward: Any) -> None:
        """Fold in one call's mean reward (a float or an array)."""
        m = np.asarray(mean_reward, dtype=np.float64)
        if not np.all(np.isfinite(m)):
            raise ValueError("EMA.update: the mean reward is NaN or inf")
        m = float(m) if m.ndim == 0 else m.copy()
        if self.t and np.shape(self._acc) != np.shape(m) and np.ndim(self._acc) > 0:
            raise ValueError(f"EMA holds values of shape {np.shape(self._acc)}; this call's "
                             f"mean reward has shape {np.shape(m)}")
        self._acc = self.decay * self._acc + (1.0 - self.decay) * m
        self.t += 1

    def __repr__(self) -> str:
        return f"EMA(decay={self.decay}, t={self.t}, value={self.value!r})"


def _check_baseline(baseline: Any) -> Any:
    if isinstance(baseline, EMA) or baseline is None or (
            isinstance(baseline, str) and baseline in ("mean", "loo", "optimal")):
        return baseline
    if isinstance(baseline, numbers.Real) and not isinstance(baseline, bool):
        if not math.isfinite(float(baseline)):
            raise ValueError(f"baseline must be finite, got {baseline}")
        return float(baseline)
    raise ValueError("baseline must be None, a float, 'mean', 'loo', 'optimal' or an "
                     f"lf.EMA(decay) instance; got {baseline!r}")


def _check_folds(n_folds: Any) -> int:
    if isinstance(n_folds, bool) or not isinstance(n_folds, numbers.Integral):
        raise TypeError(f"n_folds must be an int >= 2, got {n_folds!r}")
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    return int(n_folds)


def check_terms_finite(sum_t: Any, sum_t2: Any, baseline: Any,
                       what: str = "f(x)") -> None:
    """ValueError when the sums (or mean and variance) of the estimator's terms
    ``(r - b) * score`` are NaN or inf (finite rewards and scores, but a huge constant
    baseline or reward whose products overflow float64): never a silent inf/NaN."""
    if np.isfinite(sum_t).all() and np.isfinite(sum_t2).all():
        return
    hint = f" or the baseline ({baseline!r})" if isinstance(baseline, float) else ""
    raise ValueError(f"the estimator's terms (reward - baseline) * score overflow float64: "
                     f"{what}{hint} is too large in magnitude for the scores")


def _moment_rows(acc: np.ndarray) -> tuple:
    """(H, H2, U, U2, UH, V, V2, UV, VH) from score (5) or pair (9) moment rows."""
    if acc.shape[-2] == SCORE_MOMENTS:
        h, h2, u, u2, uh = (acc[..., m, :] for m in range(5))
        return h, h2, u, u2, uh, u, u2, u2, uh  # v = rho h = u
    return tuple(acc[..., m, :] for m in range(PAIR_MOMENTS))


def _baseline_value(baseline: Any, racc: np.ndarray, shift: float, n: int) -> Any:
    if isinstance(baseline, EMA):
        value = baseline.value
        if np.ndim(value):
            raise ValueError("this EMA holds per-element values (from a per-element rewards "
                             "call); a streaming estimate needs a scalar baseline")
        return float(value)
    if isinstance(baseline, float):
        return baseline
    if baseline in ("mean", "loo"):
        return float(racc[:, 1].sum()) / n + shift
    return 0.0 if baseline is None else None


def reflect_odd_mask(d: Any, layout: list) -> np.ndarray:
    """``(P,)`` bool: the coordinates of the parameters whose score is odd under the
    family's reflection (``d.family.reflect_odd``); ``layout`` as in ``result._coords``."""
    mask = np.zeros(layout[-1][2] + math.prod(layout[-1][1]), bool)
    for name, shape, offset in layout:
        if name in d.family.reflect_odd:
            mask[offset:offset + math.prod(shape)] = True
    return mask


def _finish(acc: np.ndarray, racc: np.ndarray, shift: float, baseline: Any, n: int,
            odd: np.ndarray | None = None):
    """Sum and sum of squares of the terms, per coordinate, from the per-fold moments.

    ``acc`` (K, 5 or 9, P), ``racc`` (K, 3); see the module docstring.  ``odd``
    (antithetic pairs): the coordinates whose pair-averaged score ``h`` is
    identically 0 (their ``h`` and ``v`` moments are set to that exact 0).  Returns
    ``(sum_t, sum_t2, extra)``."""
    if odd is not None and odd.any():
        acc = acc.copy()
        acc[:, [0, 1, 4, 5, 6, 7, 8]] *= ~odd  # h, h^2, u h, v, v^2, u v, v h
    H, H2, U, U2, UH, V, V2, UV, VH = _moment_rows(acc)
    extra = {}
    if baseline == "optimal":
        tot_uh, tot_h2 = UH.sum(axis=0), H2.sum(axis=0)
        den = tot_h2[None, :] - H2
        with np.errstate(invalid="ignore", divide="ignore"):
            beta = np.where(den > 0.0, (tot_uh[None, :] - UH) / den, 0.0)
        with np.errstate(over="ignore", invalid="ignore"):
            sum_t = (U - beta * H).sum(axis=0)
            sum_t2 = (U2 - 2.0 * beta * UH + beta * beta * H2).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            extra["baseline_value"] = np.where(tot_h2 > 0, tot_uh / tot_h2, 0.0) + shift
        extra["n_folds"] = acc.shape[0]
        check_terms_finite(sum_t, sum_t2, baseline)
        return sum_t, sum_t2, extra
    H, H2, U, U2, UH, V, V2, UV, VH = (m.sum(axis=0) for m in (H, H2, U, U2, UH, V, V2, UV, VH))
    S = float(racc[:, 1].sum())
    a = 0.0
    if baseline == "loo":
        a, c = 1.0 / (n - 1), -S / (n - 1)
    elif baseline == "mean":
        c = -S / n
    else:  # None, a constant, an EMA: b fixed in advance
        b = _baseline_value(baseline, racc, shift, n)
        c = -(b - shift)
    if baseline is not None:
        extra["baseline_value"] = _baseline_value(baseline, racc, shift, n)
    with np.errstate(over="ignore", invalid="ignore"):
        sum_t = U + a * V + c * H
    with np.errstate(over="ignore", invalid="ignore"):
        sum_t2 = U2 + a * a * V2 + c * c * H2 + 2 * a * UV + 2 * c * UH + 2 * a * c * VH
    check_terms_finite(sum_t, sum_t2, baseline)
    return sum_t, sum_t2, extra


def _update_ema(baseline: Any, racc: np.ndarray, shift: float, n: int) -> None:
    if isinstance(baseline, EMA):
        baseline.update(float(racc[..., 1].sum()) / n + shift)


def _baseline_label(baseline: Any) -> Any:
    return "ema" if isinstance(baseline, EMA) else baseline
