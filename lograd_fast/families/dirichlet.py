r"""Dirichlet distribution over the ``K``-simplex, parametrised by ``log_concentration``.

.. math::

    \log p(x) = \sum_k (\alpha_k - 1)\log x_k - \log B(\alpha),\qquad
    \log B(\alpha) = \sum_k \log\Gamma(\alpha_k) - \log\Gamma(\alpha_0),\quad
    \alpha_k = e^{\texttt{log\_concentration}_k},\ \alpha_0 = \sum_k \alpha_k

Support: rows ``x`` of ``K >= 2`` entries in ``[0, 1]`` summing to 1.  A row with an
entry outside ``[0, 1]`` or whose sum is off 1 by more than ``1e-4 + K * 2**-23``
(which admits float32 rounding) is a ``ValueError``.  ``x_k = 0`` gives ``+inf``,
finite or ``-inf`` as ``alpha_k <`` , ``==`` or ``> 1`` (``0 * log 0`` is 0), never NaN.
A row with one zero where ``alpha_k > 1`` (a factor 0) and another where
``alpha_j < 1`` (a factor ``inf``) has no density limit; measure theory's convention
``0 * inf = 0`` gives ``log_prob = -inf`` there (the literal sum was NaN).

Score (closed form, per component):

* ``d/d log_concentration_k = alpha_k (log x_k + psi(alpha_0) - psi(alpha_k))``

Entropy ``log B(alpha) + sum_k (alpha_k - 1) (psi(alpha_0) - psi(alpha_k))``;
``KL(p||q) = log B(alpha_q) - log B(alpha_p)
- sum_k (alpha_p,k - alpha_q,k) (psi(alpha_p,0) - psi(alpha_p,k))``, the Bregman
divergence of ``log B``, computed without its cancellation (exactly 0 for ``p = q``,
relative accuracy for ``p ~ q``) as
``sum_k lgamma_bregman(alpha_p,k, d_k) - lgamma_bregman(alpha_p,0, sum_k d_k)`` with
``d_k = alpha_p,k expm1(log_concentration_q,k - log_concentration_p,k)``, clamped at 0.
``log B`` is computed once per parameter row without the cancellation of the
``lgamma`` differences at large ``alpha`` (:func:`log_multivariate_beta`).
Mean ``alpha / alpha_0``; marginals are ``Beta(alpha_k, alpha_0 - alpha_k)``.

Sampling: ``K`` Gammas ``G_k ~ Gamma(alpha_k)`` drawn one after the other from the
atom's (row's) stream, in log space (``_rng.std_gamma_log_from``: the first proposals'
normals are the row's ``K`` ``normal`` variates), and
``x_k = exp(log G_k - logsumexp(log G))`` with a running (one-pass) log-sum-exp, so
tiny concentrations (whose Gammas underflow) give a point of the simplex, never
``0/0``.  The log-sum-exp needs every ``log G_k`` before the first ``x_k``: float64
rows keep them in ``x`` itself meanwhile; float32 rows (too coarse to hold them)
draw the same Gammas a second time (the counter-based streams make that exact),
so float32 sampling costs about twice the Gamma draws.  The fused
``sample_and_score`` uses the exact ``log x_k = log G_k - logsumexp``.

References: Devroye, "Non-Uniform Random Variate Generation" (1986), XI.4 (Dirichlet
from Gammas); Penny, "KL-divergences of Normal, Gamma, Dirichlet and Wishart densities"
(2001); R's ``lbeta`` (nmath) for the large-argument ``log B``.

Exactness (fused vs separate): ``sample_and_score`` is exact at the unrounded
``log x_k``; ``score(x)`` / ``log_prob(x)`` at the stored, rounded row.  Where an entry
underflowed to 0 (small ``alpha_k``), ``score(x)`` is a ValueError naming the underflow
(the score there is ``-inf``): use the fused scores.  Concentrations below ``1e-3`` are
refused.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._engine import maths as m
from .._engine import numpy as npb
from .._engine.dispatch import register
from .._engine.jit import by_dtype, jitable
from .._engine.rng import Variates, normal_variate, std_gamma_log_from
from ..distribution import Distribution, Family, as_float_param
from .gamma import (
    HALF_LOG_2PI,
    boundary_score_error,
    check_concentration,
    checked_exp,
    lgamma_correction,
)


class DirichletParams(NamedTuple):
    log_concentration: np.ndarray  # (B, K) float32/64
    concentration: np.ndarray  # (B, K) float64, alpha = exp(log_concentration)
    log_norm: np.ndarray  # (B,) float64, log B(alpha)
    digamma_diff: np.ndarray  # (B, K) float64, psi(alpha_0) - psi(alpha_k)


class DirichletScores(NamedTuple):
    log_concentration: np.ndarray


# --------------------------------------------------------------------------- formulas
# Array-friendly helpers: scalars in compiled code, whole arrays in the numpy backend.
@jitable
def _score(alpha_k, log_x_k, digamma_diff_k):
    return alpha_k * (log_x_k + digamma_diff_k)


@jitable
def _entropy_term(alpha_k, digamma_diff_k):
    return (alpha_k - 1.0) * digamma_diff_k


@jitable
def _kl_delta(alpha_p_k, log_alpha_p_k, log_alpha_q_k):
    """``alpha_q,k - alpha_p,k`` without the rounding of the two exps."""
    return alpha_p_k * m.expm1(log_alpha_q_k - log_alpha_p_k)


# --------------------------------------------------------------------------- scalar maths
# float64 rows park log G_k in x[i, k] between the passes; float32 rows draw again.
@jitable
def _park_f64(x, i, k, log_g):
    x[i, k] = log_g


@jitable
def _park_f32(x, i, k, log_g):
    pass


@jitable
def _recall_f64(p, b, st, x, i, k, block):
    return np.float64(x[i, k]), block


@jitable
def _recall_f32(p, b, st, x, i, k, block):
    return _gamma_k(p, b, st, x, k, block)


_park = by_dtype(_park_f32, _park_f64)
_recall = by_dtype(_recall_f32, _recall_f64)


@jitable
def _lse_update(m_, s, log_g):
    """One step of the running log-sum-exp ``m_ + log(s)``: add ``exp(log_g)``
    (``vectorised._draw`` has the same step with ``np.where``)."""
    if log_g > m_:
        return log_g, s * m.exp(m_ - log_g) + 1.0
    return m_, s + m.exp(log_g - m_)


@jitable
def _row_length(p):
    return p.concentration.shape[1]


@jitable
def _gamma_k(p, b, st, x, k, block):
    """The row's ``k``-th log-Gamma: first normal the ``k``-th variate, then its blocks."""
    K = p.concentration.shape[1]
    return std_gamma_log_from(x, st, normal_variate(x, st, K, k), block, p.concentration[b, k])


@jitable
def _log_sum_gammas(p, b, st, x, i):
    """Draw the row's K log-Gammas (in order, one stream); return their log-sum-exp."""
    m_ = -np.inf
    s = 0.0
    block = 1
    for k in range(p.concentration.shape[1]):
        log_g, block = _gamma_k(p, b, st, x, k, block)
        _park(x, x, i, k, log_g)
        m_, s = _lse_update(m_, s, log_g)
    return m_ + m.log(s)


class scalar:
    """Per-row entry points (see ``_engine/dispatch.py``) compiled for CPU and CUDA."""

    variates = Variates("normal", _row_length)  # the first proposals' normals

    @staticmethod
    @jitable
    def sample1(p, b, st, x, i):
        lse = _log_sum_gammas(p, b, st, x, i)
        block = 1
        for k in range(p.concentration.shape[1]):
            log_g, block = _recall(x, p, b, st, x, i, k, block)
            x[i, k] = m.exp(log_g - lse)

    @staticmethod
    @jitable
    def log_prob1(p, b, x, i):
        acc = 0.0
        for k in range(p.concentration.shape[1]):
            term = m.xlogy(p.concentration[b, k] - 1.0, np.float64(x[i, k]))
            if term == -np.inf:  # a factor x_k**(alpha_k - 1) = 0: 0 * inf = 0
                return -np.inf
            acc += term
        return acc - p.log_norm[b]

    @staticmethod
    @jitable
    def score1(p, b, x, i, s):
        for k in range(p.concentration.shape[1]):
            s.log_concentration[i, k] = _score(p.concentration[b, k],
                                               m.log(np.float64(x[i, k])), p.digamma_diff[b, k])

    @staticmethod
    @jitable
    def sample_score1(p, b, st, x, i, s):
        lse = _log_sum_gammas(p, b, st, x, i)
        block = 1
        acc = 0.0
        for k in range(p.concentration.shape[1]):
            log_g, block = _recall(x, p, b, st, x, i, k, block)
            log_x = log_g - lse
            alpha = p.concentration[b, k]
            x[i, k] = m.exp(log_x)
            s.log_concentration[i, k] = _score(alpha, log_x, p.digamma_diff[b, k])
            acc += (alpha - 1.0) * log_x
        return acc - p.log_norm[b]

    @staticmethod
    @jitable
    def entropy1(p, b):
        acc = p.log_norm[b]
        for k in range(p.concentration.shape[1]):
            acc += _entropy_term(p.concentration[b, k], p.digamma_diff[b, k])
        return acc

    @staticmethod
    @jitable
    def kl1(p, q, b):
        acc = 0.0
        alpha0 = 0.0
        delta0 = 0.0
        for k in range(p.concentration.shape[1]):
            alpha = p.concentration[b, k]
            delta = _kl_delta(alpha, np.float64(p.log_concentration[b, k]),
                              np.float64(q.log_concentration[b, k]))
            acc += m.lgamma_bregman(alpha, delta)
            alpha0 += alpha
            delta0 += delta
        return m.nonneg(acc - m.lgamma_bregman(alpha0, delta0))


# --------------------------------------------------------------------------- numpy baseline
class vectorised:
    """The same maths on whole arrays (``backend="numpy"``); loops over the K components
    in the kernels' order, so sums round the same way."""

    @staticmethod
    def _draw(p, key, n_atoms, B, dtype):
        atoms, b = npb.atoms_and_batch(n_atoms, B)
        st = npb.streams(key, atoms)
        alpha = p.concentration[b]
        K = alpha.shape[1]
        z0 = npb.variates("normal", dtype, key, n_atoms, K)
        log_g = np.empty((n_atoms, K))
        block = np.ones(n_atoms, np.int64)
        m_ = np.full(n_atoms, -np.inf)
        s = np.zeros(n_atoms)
        with np.errstate(over="ignore", invalid="ignore"):
            for k in range(K):
                log_g[:, k], block = npb.std_gamma_log_from(dtype, st, z0[:, k], block,
                                                            alpha[:, k])
                up = log_g[:, k] > m_
                s = np.where(up, s * np.exp(m_ - log_g[:, k]) + 1.0,
                             s + np.exp(log_g[:, k] - m_))
                m_ = np.where(up, log_g[:, k], m_)
        log_x = log_g - (m_ + np.log(s))[:, None]
        with np.errstate(under="ignore"):
            x = np.exp(log_x).astype(dtype)
        return b, x, log_x

    @staticmethod
    def sample(p, key, n_atoms, B, dtype):
        return vectorised._draw(p, key, n_atoms, B, dtype)[1]

    @staticmethod
    def log_prob(p, x, B):
        b = np.arange(x.shape[0]) % B
        alpha = p.concentration[b]
        acc = np.zeros(x.shape[0])
        zero = np.zeros(x.shape[0], bool)
        for k in range(alpha.shape[1]):
            term = m.xlogy(alpha[:, k] - 1.0, x[:, k].astype(np.float64))
            zero |= term == -np.inf
            acc = acc + term
        return np.where(zero, -np.inf, acc - p.log_norm[b])

    @staticmethod
    def score(p, x, B):
        b = np.arange(x.shape[0]) % B
        with np.errstate(divide="ignore"):
            log_x = np.log(x.astype(np.float64))
        return {"log_concentration": _score(p.concentration[b], log_x, p.digamma_diff[b])}

    @staticmethod
    def sample_score(p, key, n_atoms, B, dtype):
        b, x, log_x = vectorised._draw(p, key, n_atoms, B, dtype)
        alpha = p.concentration[b]
        acc = np.zeros(n_atoms)
        for k in range(alpha.shape[1]):
            acc = acc + (alpha[:, k] - 1.0) * log_x[:, k]
        return x, acc - p.log_norm[b], {
            "log_concentration": _score(alpha, log_x, p.digamma_diff[b])}

    @staticmethod
    def entropy(p):
        acc = p.log_norm.copy()
        for k in range(p.concentration.shape[1]):
            acc = acc + _entropy_term(p.concentration[:, k], p.digamma_diff[:, k])
        return acc

    @staticmethod
    def kl(p, q):
        acc = alpha0 = delta0 = np.zeros(p.concentration.shape[0])
        for k in range(p.concentration.shape[1]):
            alpha = p.concentration[:, k]
            delta = _kl_delta(alpha, p.log_concentration[:, k].astype(np.float64),
                              q.log_concentration[:, k].astype(np.float64))
            acc = acc + m.lgamma_bregman(alpha, delta)
            alpha0 = alpha0 + alpha
            delta0 = delta0 + delta
        return m.nonneg(acc - m.lgamma_bregman(alpha0, delta0))


def log_multivariate_beta(alpha: np.ndarray) -> np.ndarray:
    """``log B(alpha) = sum_k lgamma(alpha_k) - lgamma(alpha_0)`` per row (numpy, float64).

    Components ``alpha_k >= 10`` enter through Stirling's formula combined with that
    of ``lgamma(alpha_0)``, so the large ``lgamma`` values never cancel:
    ``sum_L [(alpha_k - 1/2) log(alpha_k / alpha_0) + c(alpha_k)] - c(alpha_0)
    - (S + (n_L - 1)/2) log alpha_0 + S + (n_L - 1) log(2 pi)/2 + sum_small lgamma(alpha_k)``
    (``L``: the ``n_L`` large components, ``S`` the sum of the others, ``c`` the
    Stirling correction), with ``log1p(-rest / alpha_0)`` for the largest component.
    For ``K = 2`` this is R's ``lbeta``.  Relative error ~1e-15 (vs mpmath).
    """
    alpha = np.asarray(alpha, np.float64)
    n_rows, K = alpha.shape
    alpha0 = alpha.sum(axis=1)
    large = alpha >= 10.0
    n_large = large.sum(axis=1)
    small_sum = np.where(large, 0.0, alpha).sum(axis=1)
    lgamma_small = np.where(large, 0.0, np.asarray(m.lgamma(np.minimum(alpha, 10.0)),
                                                   np.float64)).sum(axis=1)
    plain = lgamma_small - np.asarray(m.lgamma(alpha0), np.float64)
    # Stirling form (used where any component is large, then alpha_0 >= 10 too)
    rows = np.arange(n_rows)
    top = np.argmax(alpha, axis=1)
    is_top = np.arange(K)[None, :] == top[:, None]
    rest_top = np.where(is_top, 0.0, alpha).sum(axis=1)  # alpha_0 - alpha_top, no cancellation
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log(alpha / alpha0[:, None])
        log_ratio[rows, top] = np.log1p(-rest_top / alpha0)
    big0 = np.maximum(alpha0, 10.0)
    terms = np.where(large, (alpha - 0.5) * log_ratio + lgamma_correction(np.maximum(alpha, 10.0)),
                     0.0).sum(axis=1)
    stirling = (lgamma_small + terms - lgamma_correction(big0)
                - (small_sum + 0.5 * (n_large - 1)) * np.log(big0) + small_sum
                + (n_large - 1) * HALF_LOG_2PI)
    return np.where(n_large > 0, stirling, plain)


def _prepare(flat: dict) -> dict:
    log_alpha = flat["log_concentration"].astype(np.float64)
    if log_alpha.shape[1] < 2:
        raise ValueError("log_concentration must have at least 2 components in its last "
                         f"dim (the simplex), got {log_alpha.shape[1]}")
    check_concentration(log_alpha, "log_concentration")
    alpha = checked_exp(log_alpha, "log_concentration")
    log_norm = log_multivariate_beta(alpha)
    digamma_alpha = np.asarray(m.digamma(alpha), np.float64)
    digamma_diff = np.asarray(m.digamma(alpha.sum(axis=1)), np.float64)[:, None] - digamma_alpha
    if not (np.all(np.isfinite(log_norm)) and np.all(np.isfinite(digamma_diff))):
        raise ValueError("log_concentration out of range: lgamma/digamma of the "
                         "concentrations (or of their sum) overflow")
    return {"concentration": alpha, "log_norm": log_norm, "digamma_diff": digamma_diff}


FAMILY = Family(
    name="Dirichlet",
    params_cls=DirichletParams,
    scores_cls=DirichletScores,
    param_names=("log_concentration",),
    param_event_ndims=(1,),
    prepare=_prepare,
    numpy_ops=vectorised,
    sample_event_shape=lambda p: (p.concentration.shape[1],),
)
register(DirichletParams, scalar)


class Dirichlet(Distribution):
    """Dirichlet distribution with concentrations ``exp(log_concentration)``, ``(..., K)``.

    Parameters
    ----------
    log_concentration : array_like ``(..., K)``, ``K >= 2`` (float32 or float64)
        Log of the concentrations; the leading dims are the batch.  Scores are
        w.r.t. this.
    backend : {"cpu", "cuda", "numpy"}

    Samples have shape ``(n, *batch_shape, K)`` (rows on the simplex).
    ``score(x)["log_concentration"]`` has shape ``(n, *batch_shape, K)``:
    ``alpha_k (log x_k + digamma(alpha_0) - digamma(alpha_k))``.
    """

    family = FAMILY

    def __init__(self, log_concentration, *, backend: str = "cpu"):
        log_concentration = as_float_param(log_concentration, "log_concentration")
        if log_concentration.ndim < 1:
            raise ValueError("log_concentration must have at least one dimension "
                             "(the K components)")
        self._setup({"log_concentration": log_concentration}, backend=backend)
        self.K = int(self._record.concentration.shape[1])

    def _check_score_support(self, x: np.ndarray) -> None:
        if (x == 0.0).any():
            raise boundary_score_error("Dirichlet", "0")

    def _check_support(self, x: np.ndarray) -> None:
        if x.size == 0:
            return
        if x.min() < 0.0 or x.max() > 1.0:
            raise ValueError("x has entries outside [0, 1]: Dirichlet samples are rows "
                             "on the simplex")
        tol = 1e-4 + self.K * float(np.finfo(np.float32).eps)
        off = np.abs(x.sum(axis=-1, dtype=np.float64) - 1.0)
        if off.max() > tol:
            raise ValueError(f"x has rows that do not sum to 1 (off by up to {off.max():.3g} "
                             f"> {tol:.3g}): Dirichlet samples are rows on the simplex")

    @property
    def concentration(self) -> np.ndarray:
        """``exp(log_concentration)``, ``(*batch_shape, K)``, in the distribution's dtype."""
        return self._record.concentration.reshape(self.full_shape + (self.K,)).astype(
            self.dtype)

    @property
    def mean(self) -> np.ndarray:
        """``alpha / alpha_0``, ``(*batch_shape, K)``."""
        a = self._record.concentration
        return (a / a.sum(axis=1, keepdims=True)).reshape(self.full_shape + (self.K,)).astype(
            self.dtype)

    @property
    def variance(self) -> np.ndarray:
        """Marginal variances ``alpha_k (alpha_0 - alpha_k) / (alpha_0**2 (alpha_0 + 1))``."""
        a = self._record.concentration
        a0 = a.sum(axis=1, keepdims=True)
        mean = a / a0
        var = mean * (1.0 - mean) / (a0 + 1.0)
        return var.reshape(self.full_shape + (self.K,)).astype(self.dtype)
