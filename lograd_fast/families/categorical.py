r"""Categorical distribution over ``K`` classes, parametrised by ``logits`` (+ optional mask).

.. math::

    p_k = \frac{m_k e^{l_k}}{\sum_j m_j e^{l_j}},\qquad
    \log p(x) = l_x - \log\textstyle\sum_j m_j e^{l_j}

where ``m`` is the boolean action mask (``False`` = not allowed).  Masked classes
(and classes whose logit is ``-inf``) have probability exactly 0: they are never
sampled, contribute exactly 0 to the entropy and to every score, and
``log_prob`` of a masked class is ``-inf``.  A row with no allowed class is a
``ValueError``.

Score: ``d log p(x) / d l_k = [k == x] - p_k``.
Entropy ``-sum_k p_k log p_k`` (over ``p_k > 0``); ``KL(p||q) = sum_k p_k (log p_k - log q_k)``
(``+inf`` when ``q`` masks a class that ``p`` allows).

All per-row quantities (log normaliser by log-sum-exp, probabilities, CDF) are
computed once at construction.  Sampling is inversion with one uniform and a
binary search of the CDF; the CDF is exactly 1 from the last allowed class on, so
a masked class can never be returned.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from .._engine import numpy as npb
from .._engine import threads
from .._engine.dispatch import register
from .._engine.jit import jitable
from .._engine.rng import philox_block, u01_f64
from ..distribution import Distribution, Family, as_array, check_finite


class CategoricalParams(NamedTuple):
    logits: np.ndarray  # (B, K) float32/64
    mask: np.ndarray  # (B, K) bool
    log_norm: np.ndarray  # (B,) float64, log-sum-exp of the allowed logits
    log_probs: np.ndarray  # (B, K) float64, -inf where masked
    probs: np.ndarray  # (B, K) float64, exactly 0 where masked
    cdf: np.ndarray  # (B, K) float64, exactly 1 from the last allowed class on


class CategoricalScores(NamedTuple):
    logits: np.ndarray


# --------------------------------------------------------------------------- scalar maths
@jitable
def _search(cdf, b, u):
    """Smallest k with u < cdf[b, k] (the CDF ends at exactly 1 > u)."""
    lo = 0
    hi = cdf.shape[1] - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if u < cdf[b, mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


@jitable
def _draw(p, b, st):
    w = philox_block(st, 0)
    return _search(p.cdf, b, u01_f64(w[0], w[1]))


@jitable
def _write_score(p, b, k, i, s):
    for j in range(p.probs.shape[1]):
        s.logits[i, j] = -p.probs[b, j]
    s.logits[i, k] += 1.0


class scalar:
    """Per-atom (per-row) entry points compiled for CPU and CUDA."""

    @staticmethod
    @jitable
    def sample1(p, b, st, x, i):
        x[i] = _draw(p, b, st)

    @staticmethod
    @jitable
    def log_prob1(p, b, x, i):
        return p.log_probs[b, x[i]]

    @staticmethod
    @jitable
    def score1(p, b, x, i, s):
        _write_score(p, b, x[i], i, s)

    @staticmethod
    @jitable
    def sample_score1(p, b, st, x, i, s):
        k = _draw(p, b, st)
        x[i] = k
        _write_score(p, b, k, i, s)
        return p.log_probs[b, k]

    @staticmethod
    @jitable
    def entropy1(p, b):
        acc = 0.0
        for j in range(p.probs.shape[1]):
            if p.probs[b, j] > 0.0:
                acc -= p.probs[b, j] * p.log_probs[b, j]
        return acc

    @staticmethod
    @jitable
    def kl1(p, q, b):
        acc = 0.0
        for j in range(p.probs.shape[1]):
            if p.probs[b, j] > 0.0:
                acc += p.probs[b, j] * (p.log_probs[b, j] - q.log_probs[b, j])
        return acc


# --------------------------------------------------------------------------- numpy baseline
class vectorised:
    @staticmethod
    def _draw(p, key, n_atoms, B):
        atoms, b = npb.atoms_and_batch(n_atoms, B)
        u, _ = npb.uniform(np.float64, npb.streams(key, atoms), 0)
        # smallest k with u < cdf[b, k]  ==  number of k with cdf[b, k] <= u
        return b, (p.cdf[b] <= u[:, None]).sum(axis=1).astype(np.int64)

    @staticmethod
    def sample(p, key, n_atoms, B, dtype):
        return vectorised._draw(p, key, n_atoms, B)[1]

    @staticmethod
    def log_prob(p, x, B):
        b = np.arange(x.shape[0]) % B
        return p.log_probs[b, x]

    @staticmethod
    def _score(p, b, x):
        s = 0.0 - p.probs[b]
        s[np.arange(x.shape[0]), x] += 1.0
        return s

    @staticmethod
    def score(p, x, B):
        b = np.arange(x.shape[0]) % B
        return {"logits": vectorised._score(p, b, x)}

    @staticmethod
    def sample_score(p, key, n_atoms, B, dtype):
        b, x = vectorised._draw(p, key, n_atoms, B)
        return x, p.log_probs[b, x], {"logits": vectorised._score(p, b, x)}

    @staticmethod
    def entropy(p):
        terms = np.where(p.probs > 0, p.probs * np.where(p.probs > 0, p.log_probs, 0.0), 0.0)
        return -terms.sum(axis=1)

    @staticmethod
    def kl(p, q):
        with np.errstate(invalid="ignore"):
            diff = np.where(p.probs > 0, p.log_probs - q.log_probs, 0.0)
        return (p.probs * diff).sum(axis=1)


@njit(cache=True, nogil=True, error_model="numpy", _nrt=False)
def _prepare_rows(logits, mask, log_norm, log_probs, probs, cdf, lo, hi):
    """Rows ``lo..hi-1``: log-sum-exp over the allowed classes, log-probs, probs, CDF.

    Returns the first invalid row (a NaN or +inf logit, or no allowed class), -1 if
    none; that row's ``log_norm`` is NaN.  Checking here saves the separate passes of
    ``isfinite`` over the logits and ``isnan`` over the result (microseconds that
    matter in an RL step).  Compiled and split over threads like the drivers
    (``_engine/threads.run_split``): it is on the path of every construction, once per step in RL
    code and over millions of rows in batch use; the numpy backend uses the same
    derived arrays, so every backend sees identical inputs.
    """
    K = logits.shape[1]
    first_bad = -1
    for b in range(lo, hi):
        top = -np.inf
        last = -1
        finite = True
        for k in range(K):
            lk = np.float64(logits[b, k])
            finite = finite and (lk < np.inf)  # False for NaN and +inf
            if mask[b, k] and lk > -np.inf:
                last = k
                top = max(top, lk)
        if last < 0 or not finite:
            log_norm[b] = np.nan
            if first_bad < 0:
                first_bad = b
            continue
        total = 0.0
        for k in range(K):
            lk = np.float64(logits[b, k])
            e = math.exp(lk - top) if mask[b, k] and lk > -np.inf else 0.0
            probs[b, k] = e  # unnormalised for now
            total += e
        norm = top + math.log(total)
        log_norm[b] = norm
        inv_total = 1.0 / total
        acc = 0.0
        for k in range(K):
            lk = np.float64(logits[b, k])
            allowed = mask[b, k] and lk > -np.inf
            # finite even where exp underflows to 0
            log_probs[b, k] = lk - norm if allowed else -np.inf
            pk = probs[b, k] * inv_total
            probs[b, k] = pk
            acc += pk
            cdf[b, k] = acc
        for k in range(K):
            # exactly 1 from the last allowed class on: a masked class is never drawn
            cdf[b, k] = 1.0 if k >= last else cdf[b, k] / acc
    return first_bad


def _prepare(flat: dict) -> dict:
    logits, mask = flat["logits"], flat["mask"]
    B, K = logits.shape
    out = {"log_norm": np.empty(B), "log_probs": np.empty((B, K)), "probs": np.empty((B, K)),
           "cdf": np.empty((B, K))}
    bad = [r for r in threads.run_split(_prepare_rows, (logits, mask, out["log_norm"],
                                                    out["log_probs"], out["probs"], out["cdf"]),
                                    B, threads.per_items(K)) if r >= 0]
    if bad:
        check_finite(logits, "logits", allow_neg_inf=True)  # raises for NaN / +inf
        raise ValueError(f"mask/logits allow no class in batch row {bad[0]} (flat index): "
                         "every row needs at least one unmasked, finite logit")
    return out


FAMILY = Family(
    name="Categorical",
    params_cls=CategoricalParams,
    scores_cls=CategoricalScores,
    param_names=("logits",),
    param_event_ndims=(1,),
    prepare=_prepare,
    numpy_ops=vectorised,
    discrete=True,
    prepare_checks_finite=True,
)
register(CategoricalParams, scalar)


_ALL_ALLOWED: dict = {}
_SHARED_MASK_MAX = 2**16  # elements; a larger mask is built per call (cheap by comparison)


def _all_allowed(shape: tuple) -> np.ndarray:
    """An all-True mask of ``shape``; small ones are read-only and shared between
    distributions (the record copies it anyway; this saves building one per
    construction in RL loops without keeping big arrays alive)."""
    mask = _ALL_ALLOWED.get(shape)
    if mask is None:
        mask = np.ones(shape, dtype=bool)
        if mask.size <= _SHARED_MASK_MAX:
            if len(_ALL_ALLOWED) >= 64:
                _ALL_ALLOWED.clear()
            mask.flags.writeable = False
            _ALL_ALLOWED[shape] = mask
    return mask


class Categorical(Distribution):
    """Categorical distribution with ``logits`` of shape ``(..., K)``.

    Parameters
    ----------
    logits : array_like ``(..., K)``
        Unnormalised log-probabilities (``-inf`` allowed: probability 0).
    mask : array_like of bool ``(..., K)``, optional
        ``False`` marks a class that may not be chosen.  Broadcasts with ``logits``.
    backend : {"cpu", "cuda", "numpy"}

    Samples are int64 class indices of shape ``(n, *batch_shape)``.
    ``score(x)["logits"]`` has shape ``(n, *batch_shape, K)``: ``onehot(x) - probs``.
    """

    family = FAMILY

    def __init__(self, logits, mask=None, *, backend: str = "cpu"):
        logits_arr = logits if hasattr(logits, "__cuda_array_interface__") \
            else as_array(logits, "logits")
        shape = tuple(np.shape(logits_arr))
        if len(shape) < 1:
            raise ValueError("logits must have at least one dimension (the classes)")
        K = shape[-1]
        if K < 1:
            raise ValueError("logits must have at least one class")
        if mask is None:
            mask_arr = _all_allowed(shape)
        else:
            mask_arr = as_array(mask, "mask")
            if mask_arr.dtype != np.bool_:
                raise TypeError(f"mask must be a boolean array, got dtype {mask_arr.dtype}")
            if mask_arr.ndim < 1 or mask_arr.shape[-1] != K:
                raise ValueError(f"mask has shape {mask_arr.shape}; its last dim must be "
                                 f"K={K} like logits")
        self._setup({"logits": logits}, {"mask": mask_arr}, backend=backend)
        self.K = K

    def _check_support(self, x: np.ndarray) -> None:
        if x.size and (x.min() < 0 or x.max() >= self.K):
            raise ValueError(f"x holds class indices outside [0, {self.K - 1}]")

    def _check_score_support(self, x: np.ndarray) -> None:
        rows = np.arange(x.size) % self._B
        if not np.all(self._record.probs[rows, x.reshape(-1)] > 0.0):
            raise ValueError("x contains masked (probability 0) actions: their log_prob is -inf "
                             "and the score is undefined")

    @property
    def probs(self) -> np.ndarray:
        """Class probabilities ``(*batch_shape, K)`` (exact zeros where masked)."""
        return self._record.probs.reshape(self.full_shape + (self.K,)).astype(self.dtype)

    @property
    def mean(self) -> np.ndarray:
        """Mean of the one-hot encoding, i.e. :attr:`probs`."""
        return self.probs

    @property
    def mode(self) -> np.ndarray:
        """Most probable allowed class per row ``batch_shape`` (int64)."""
        return np.argmax(self._record.log_probs, axis=1).reshape(self.full_shape)

    @property
    def logits(self) -> np.ndarray:
        return self._user_params["logits"]
