"""Many independent replicates of the score-function estimator at once (RLOO and the
other baselines within each replicate), from rewards ``(*R, N)`` and scores ``(*R, N, *S)``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit, prange

from .._engine import cpu
from .._engine.cpu import _jit
from .baselines import DEFAULT_FOLDS, EMA, _check_baseline, _check_folds, check_terms_finite
from .result import Estimate


# --------------------------------------------------------------------------- kernels
@njit(**_jit)
def _batched_one(r, s, t_out, grad, var, mode, const, K, adv, beta):
    """One replicate: rewards ``r`` (N,), scores ``s`` (N, D) -> grad, var (D,).

    ``mode``: 0 constant baseline ``const``, 1 batch mean, 2 leave-one-out mean,
    3 per-coordinate optimal baseline cross-fitted over ``K`` folds (draw i in fold
    i mod K).  ``adv`` (N,) and ``beta`` (2, K + 1, D) are scratch.  Terms go to
    ``t_out`` (N, D) unless it is empty.  Two passes over the replicate (it stays in
    cache): the mean, then the centred sum of squares; the loops over ``D`` are
    branch-free so that they vectorise.
    """
    N = r.shape[0]
    D = s.shape[1]
    total = 0.0
    for i in range(N):
        total += r[i]
    for i in range(N):
        if mode == 0:
            adv[i] = r[i] - const
        elif mode == 1:
            adv[i] = r[i] - total / N
        elif mode == 2:
            adv[i] = r[i] - (total - r[i]) / (N - 1)
        else:
            adv[i] = r[i]
    b = beta[0]
    if mode == 3:
        num = beta[0]
        den = beta[1]
        num[:, :] = 0.0
        den[:, :] = 0.0
        k = 0
        for i in range(N):
            ri = r[i]
            for j in range(D):
                s2 = np.float64(s[i, j]) * np.float64(s[i, j])
                num[k, j] += ri * s2
                den[k, j] += s2
            k += 1
            if k == K:
                k = 0
        for k in range(K):
            for j in range(D):
                num[K, j] += num[k, j]
                den[K, j] += den[k, j]
        for k in range(K):  # the baseline of fold k from the other folds' sums
            for j in range(D):
                dd = den[K, j] - den[k, j]
                num[k, j] = (num[K, j] - num[k, j]) / dd if dd > 0.0 else 0.0
    else:
        b[:, :] = 0.0  # one fold, baseline already in adv
        K = 1
    for j in range(D):
        grad[j] = 0.0
        var[j] = 0.0
    k = 0
    for i in range(N):
        a = adv[i]
        bk = b[k]
        for j in range(D):
            grad[j] += (a - bk[j]) * np.float64(s[i, j])
        k += 1
        if k == K:
            k = 0
    for j in range(D):
        grad[j] /= N
    k = 0
    for i in range(N):
        a = adv[i]
        bk = b[k]
        for j in range(D):
            dev = (a - bk[j]) * np.float64(s[i, j]) - grad[j]
            var[j] += dev * dev
        k += 1
        if k == K:
            k = 0
    for j in range(D):
        var[j] /= N - 1
    if t_out.shape[0] == N:
        k = 0
        for i in range(N):
            a = adv[i]
            bk = b[k]
            for j in range(D):
                t_out[i, j] = (a - bk[j]) * np.float64(s[i, j])
            k += 1
            if k == K:
                k = 0


@njit(parallel=True, **_jit)
def batched_par(r, s, t_out, grad, var, mode, const, K):
    """Rewards ``r`` (R, N), scores ``s`` (R, N, D) -> ``grad``, ``var`` (R, D);
    terms into ``t_out`` (R, N, D) unless it has shape (R, 0, 0).  See
    :func:`_batched_one` for ``mode``; replicates run in parallel."""
    R = r.shape[0]
    N = r.shape[1]
    D = s.shape[2]
    for q in prange(R):
        _batched_one(r[q], s[q], t_out[q], grad[q], var[q], mode, const, K, np.empty(N),
                     np.empty((2, K + 1, D)))


@njit(**_jit)
def batched_serial(r, s, t_out, grad, var, mode, const, K):
    """:func:`batched_par` on one thread (small inputs: no thread-pool wake-up)."""
    N = r.shape[1]
    D = s.shape[2]
    adv = np.empty(N)
    beta = np.empty((2, K + 1, D))
    for q in range(r.shape[0]):
        _batched_one(r[q], s[q], t_out[q], grad[q], var[q], mode, const, K, adv, beta)


# --------------------------------------------------------------------------- numpy and API
_MODES = {"loo": 2, "mean": 1, "optimal": 3}


def _batched_numpy(r: np.ndarray, s: np.ndarray, baseline: Any, K: int):
    """The numpy baseline: r (R, N), s (R, N, D) -> grad, var (R, D), terms."""
    N = r.shape[1]
    if baseline == "loo":
        adv = r - (r.sum(axis=1, keepdims=True) - r) / (N - 1)
    elif baseline == "mean":
        adv = r - r.mean(axis=1, keepdims=True)
    elif baseline == "optimal":
        adv = r
    else:
        adv = r - (baseline or 0.0)
    t = adv[:, :, None] * s
    if baseline == "optimal":
        folds = np.arange(N) % K
        s2 = s * s
        num = np.stack([(t * s)[:, folds == k].sum(axis=1) for k in range(K)], axis=1)
        den = np.stack([s2[:, folds == k].sum(axis=1) for k in range(K)], axis=1)
        rest_num = num.sum(axis=1, keepdims=True) - num
        rest_den = den.sum(axis=1, keepdims=True) - den
        with np.errstate(invalid="ignore", divide="ignore"):
            beta = np.where(rest_den > 0, rest_num / rest_den, 0.0)
        t = t - beta[:, folds] * s
    return t.mean(axis=1), t.var(axis=1, ddof=1), t


def batched_score_function(rewards: Any, scores: Any, *, baseline: Any = "loo",
                           return_terms: bool = False, backend: str = "cpu",
                           n_folds: int = DEFAULT_FOLDS) -> Estimate:
    """Score-function estimates of many independent replicates at once.

    Parameters
    ----------
    rewards : array_like ``(*R, N)``
        ``N`` rewards per replicate (``*R`` any replicate dims, possibly none).
    scores : array ``(*R, N, *S)`` or dict ``{name: (*R, N, *S_name)}``
        The score of each draw (e.g. ``sample_and_score``'s, reshaped); float32 or
        float64.  A plain array is reported under the key ``"score"``.
    baseline : None, float, "mean", "loo" (default) or "optimal"
        As in :func:`score_function`, within each replicate (``"optimal"``:
        cross-fitted over ``min(n_folds, N)`` folds ``i mod K``).
    return_terms : bool
        Also return the terms, ``terms[name]`` of shape ``(*R, N, *S_name)``.
    backend : "cpu" (Numba, replicates in parallel, one fused pass per replicate)
        or "numpy" (the vectorised baseline).

    Returns
    -------
    Estimate
        ``grad``, ``var``, ``stderr`` of shape ``(*R, *S_name)`` per key; ``n = N``.
    """
    baseline = _check_baseline(baseline)
    if isinstance(baseline, EMA):
        raise ValueError("baseline: an EMA is a baseline across calls; use it with "
                         "score_function (batched_score_function takes None, a float, "
                         "'mean', 'loo' or 'optimal')")
    K = _check_folds(n_folds)
    if backend not in ("cpu", "numpy"):
        raise ValueError(f"backend must be 'cpu' or 'numpy', got {backend!r}")
    try:
        r = np.asarray(rewards, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"rewards must be a numeric array, got {type(rewards).__name__}") \
            from exc
    if r.ndim < 1:
        raise ValueError(f"rewards must have shape (*R, N), got {r.shape}")
    if not np.isfinite(r).all():
        raise ValueError("rewards contain NaN or inf")
    lead, N = r.shape[:-1], r.shape[-1]
    if N < 2:
        raise ValueError(f"need at least 2 samples per replicate (rewards' last axis), got {N}")
    named = scores if isinstance(scores, dict) else {"score": scores}
    if not named:
        raise ValueError("scores is an empty dict")
    K = min(K, N)
    R = math.prod(lead)
    rf = np.ascontiguousarray(r.reshape(R, N))
    grad, var, stderr, terms = {}, {}, {}, {}
    for name, s in named.items():
        label = "scores" if name == "score" and not isinstance(scores, dict) else \
            f"scores[{name!r}]"
        if not (isinstance(s, np.ndarray) or hasattr(s, "__array__")):
            raise TypeError(f"{label} must be an array, got {type(s).__name__}")
        s = np.asarray(s)
        if s.dtype not in (np.float32, np.float64):
            raise TypeError(f"{label} must be float32 or float64, got {s.dtype}")
        if s.shape[:len(lead) + 1] != r.shape:
            raise ValueError(f"{label} has shape {s.shape}; it must start with the rewards' "
                             f"shape {r.shape} (*R, N)")
        tail = s.shape[len(lead) + 1:]
        D = math.prod(tail)
        sf = np.ascontiguousarray(s.reshape(R, N, D))
        if backend == "numpy":
            with np.errstate(over="ignore", invalid="ignore"):  # checked just below
                g, v, t = _batched_numpy(rf, sf.astype(np.float64, copy=False), baseline, K)
        else:
            g, v = np.empty((R, D)), np.empty((R, D))
            t = np.empty((R, N, D)) if return_terms else np.empty((R, 0, 0))
            mode = 0 if baseline is None or isinstance(baseline, float) else _MODES[baseline]
            const = baseline if isinstance(baseline, float) else 0.0
            run = batched_par if R * N * D > 2 * cpu.CHUNK and R > 1 else \
                batched_serial
            run(rf, sf, t, g, v, mode, float(const), K)
        if not (np.isfinite(g).all() and np.isfinite(v).all()):
            # NaN/inf scores propagate to g or v: one check of the (R, D) results
            # instead of a pass over the (R, N, D) scores on every call
            if not np.isfinite(sf).all():
                where = np.unravel_index(np.argmax(~np.isfinite(s)), s.shape)
                raise ValueError(f"{label} contain NaN or inf (first at index "
                                 f"{tuple(int(i) for i in where)})")
            check_terms_finite(g, v, baseline, "a reward")
        grad[name] = g.reshape(lead + tail).astype(s.dtype)
        var[name] = v.reshape(lead + tail).astype(s.dtype)
        stderr[name] = np.sqrt(v / N).reshape(lead + tail).astype(s.dtype)
        if return_terms:
            terms[name] = t.reshape(lead + (N,) + tail).astype(s.dtype)
    return Estimate(grad, var, stderr, N, "score_function", baseline,
                    {"n_folds": K} if baseline == "optimal" else {},
                    terms if return_terms else None)


def rloo(rewards: Any, scores: Any, *, return_terms: bool = False,
         backend: str = "cpu") -> Estimate:
    """REINFORCE leave-one-out (RLOO) over many replicates at once.

    ``rewards`` ``(*R, N)``, ``scores`` ``(*R, N, *S)`` (or a dict of such arrays) ->
    ``grad``/``var``/``stderr`` ``(*R, *S)``: per replicate,
    ``grad = mean_i (r_i - (sum_j r_j - r_i)/(N-1)) s_i``.  Shorthand for
    :func:`batched_score_function` with ``baseline="loo"``.
    """
    return batched_score_function(rewards, scores, baseline="loo", return_terms=return_terms,
                                  backend=backend)
