r"""Beta distribution, parametrised by ``log_alpha`` and ``log_beta``.

.. math::

    \log p(x) = (a - 1)\log x + (b - 1)\log(1 - x) - \log B(a, b),
    \qquad a = e^{\texttt{log\_alpha}},\ b = e^{\texttt{log\_beta}}

Support ``[0, 1]``, both ends included: ``log p(0)`` is ``+inf`` for ``a < 1``,
``-log B(1, b) = log b`` for ``a == 1`` and ``-inf`` for ``a > 1`` (likewise at 1
with ``b``), never NaN (``0 * log 0`` is taken as 0).  Outside ``[0, 1]``
``log_prob`` is ``-inf`` and ``score`` raises.  ``log(1 - x)`` is ``log1p(-x)``.

Scores (closed form, w.r.t. the unconstrained parameters):

* ``d/d log_alpha = a (log x       - psi(a) + psi(a + b))``
* ``d/d log_beta  = b (log(1 - x)  - psi(b) + psi(a + b))``

Entropy ``log B(a, b) - (a - 1) psi(a) - (b - 1) psi(b) + (a + b - 2) psi(a + b)``;
``KL(p||q) = log B(a_q, b_q) - log B(a_p, b_p) + (a_p - a_q) psi(a_p) + (b_p - b_q) psi(b_p)
+ (a_q - a_p + b_q - b_p) psi(a_p + b_p)``.  The entropy is written with the differences
``psi(a + b) - psi(a)``, ``psi(a + b) - psi(b)`` computed once per parameter set, and
``log B(a, b)`` without the cancellation of its ``lgamma`` terms at large ``a, b``
(``dirichlet.log_multivariate_beta``, R's ``lbeta`` for two components).  The KL is the
Bregman divergence of ``log B = lgamma(a) + lgamma(b) - lgamma(a + b)``, so it is

    KL = lgamma_bregman(a_p, da) + lgamma_bregman(b_p, db) - lgamma_bregman(a_p + b_p, da + db)

with ``da = a_p expm1(log_alpha_q - log_alpha_p)`` (likewise ``db``): exactly 0 for
``p = q``, O(delta**2) terms with relative accuracy for ``p ~ q`` (the literal form
has an absolute error of eps times ``log B``), clamped at 0.
Mean ``a / (a + b)`` (a sigmoid of ``log_alpha - log_beta``), variance
``a b / ((a + b)**2 (a + b + 1))``.

Sampling: two Gammas drawn one after the other from the atom's stream,
``G1 ~ Gamma(a)`` then ``G2 ~ Gamma(b)``, in log space (``_rng.std_gamma_log_from``: the
first proposals' normals are the atom's two ``normal`` variates), and
``x = G1 / (G1 + G2)`` as ``log x = -softplus(log G2 - log G1)``,
``log(1 - x) = -softplus(log G1 - log G2)``.  Both logs are finite for any
``a, b > 0``, so tiny ``a, b`` (whose Gammas underflow, making ``G1/(G1+G2)`` a
``0/0``) give ``x`` in ``[0, 1]`` and never NaN; ``x`` rounds to exactly 0 or 1 when
it is closer than a float allows.  The fused ``sample_and_score`` evaluates
``log_prob`` and the scores at the exact log-space draw (finite), while
``log_prob(x)`` of a stored ``x`` of 0 or 1 gives the boundary values above and
``score(x)`` there (``-inf``) is a ValueError naming the underflow.

References: Marsaglia & Tsang (2000) for the Gammas; the Beta/Dirichlet entropy and KL
e.g. in Penny, "KL-divergences of Normal, Gamma, Dirichlet and Wishart densities" (2001).

Exactness (fused vs separate): ``sample_and_score`` is exact at the unrounded
``(log x, log(1 - x))``; ``score(x)`` / ``log_prob(x)`` at the stored, rounded ``x``.
Where ``x`` rounded onto 0 or 1 (small ``a`` or ``b``), ``score(x)`` is a ValueError
naming the underflow (the score there is ``-inf``): use the fused scores.
Concentrations below ``1e-3`` are refused.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._engine import maths as m
from .._engine import numpy as npb
from .._engine.dispatch import register
from .._engine.jit import jitable
from .._engine.rng import Variates, normal_variate, std_gamma_log_from
from ..distribution import Distribution, Family
from .dirichlet import log_multivariate_beta
from .gamma import boundary_score_error, check_concentration, checked_exp


class BetaParams(NamedTuple):
    log_alpha: np.ndarray  # (B,) float32/64
    log_beta: np.ndarray  # (B,)
    alpha: np.ndarray  # (B,) float64, a = exp(log_alpha)
    beta: np.ndarray  # (B,) float64, b = exp(log_beta)
    log_beta_fn: np.ndarray  # (B,) float64, log B(a, b)
    digamma_diff_alpha: np.ndarray  # (B,) float64, psi(a + b) - psi(a)
    digamma_diff_beta: np.ndarray  # (B,) float64, psi(a + b) - psi(b)


class BetaScores(NamedTuple):
    log_alpha: np.ndarray
    log_beta: np.ndarray


# --------------------------------------------------------------------------- formulas
# Array-friendly helpers: scalars in compiled code, whole arrays in the numpy backend.
@jitable
def _in_support(x):
    return (x >= 0.0) & (x <= 1.0)


@jitable
def _log_prob(log_x_term, log1m_x_term, log_beta_fn):
    """``log p`` from ``(a - 1) log x`` and ``(b - 1) log(1 - x)``."""
    return log_x_term + log1m_x_term - log_beta_fn


@jitable
def _score(a, log_x, digamma_diff_a):
    """``a (log x + psi(a + b) - psi(a))`` (and the same for ``b`` with ``log(1 - x)``)."""
    return a * (log_x + digamma_diff_a)


@jitable
def _log_x_pair(log_g1, log_g2):
    """``(log x, log(1 - x))`` of ``x = G1 / (G1 + G2)`` from the two log-Gammas."""
    return -m.softplus(log_g2 - log_g1), -m.softplus(log_g1 - log_g2)


@jitable
def _entropy(a, b, log_beta_fn, digamma_diff_a, digamma_diff_b):
    return log_beta_fn + (a - 1.0) * digamma_diff_a + (b - 1.0) * digamma_diff_b


@jitable
def _kl(a_p, b_p, log_a_p, log_b_p, log_a_q, log_b_q):
    da = a_p * m.expm1(log_a_q - log_a_p)
    db = b_p * m.expm1(log_b_q - log_b_p)
    return m.nonneg(m.lgamma_bregman(a_p, da) + m.lgamma_bregman(b_p, db)
                    - m.lgamma_bregman(a_p + b_p, da + db))


# --------------------------------------------------------------------------- scalar maths
@jitable
def _draw(p, b, st, x, i):
    """Draw atom ``i`` into ``x``; return ``(log x, log(1 - x))`` unrounded."""
    log_g1, block = std_gamma_log_from(x, st, normal_variate(x, st, 2, 0), 1, p.alpha[b])
    log_g2, _ = std_gamma_log_from(x, st, normal_variate(x, st, 2, 1), block, p.beta[b])
    log_x, log1m_x = _log_x_pair(log_g1, log_g2)
    x[i] = m.exp(log_x)
    return log_x, log1m_x


class scalar:
    """Per-atom entry points (see ``_engine/dispatch.py``) compiled for CPU and CUDA."""

    variates = Variates("normal", 2)  # the first proposals' normals of G1 and G2

    @staticmethod
    @jitable
    def sample1(p, b, st, x, i):
        _draw(p, b, st, x, i)

    @staticmethod
    @jitable
    def log_prob1(p, b, x, i):
        xv = np.float64(x[i])
        if not _in_support(xv):
            return -np.inf
        return _log_prob(m.xlogy(p.alpha[b] - 1.0, xv), m.xlog1py(p.beta[b] - 1.0, -xv),
                         p.log_beta_fn[b])

    @staticmethod
    @jitable
    def score1(p, b, x, i, s):
        xv = np.float64(x[i])
        s.log_alpha[i] = _score(p.alpha[b], m.log(xv), p.digamma_diff_alpha[b])
        s.log_beta[i] = _score(p.beta[b], m.log1p(-xv), p.digamma_diff_beta[b])

    @staticmethod
    @jitable
    def sample_score1(p, b, st, x, i, s):
        log_x, log1m_x = _draw(p, b, st, x, i)
        a = p.alpha[b]
        bb = p.beta[b]
        s.log_alpha[i] = _score(a, log_x, p.digamma_diff_alpha[b])
        s.log_beta[i] = _score(bb, log1m_x, p.digamma_diff_beta[b])
        return _log_prob((a - 1.0) * log_x, (bb - 1.0) * log1m_x, p.log_beta_fn[b])

    @staticmethod
    @jitable
    def entropy1(p, b):
        return _entropy(p.alpha[b], p.beta[b], p.log_beta_fn[b], p.digamma_diff_alpha[b],
                        p.digamma_diff_beta[b])

    @staticmethod
    @jitable
    def kl1(p, q, b):
        return _kl(p.alpha[b], p.beta[b], np.float64(p.log_alpha[b]),
                   np.float64(p.log_beta[b]), np.float64(q.log_alpha[b]),
                   np.float64(q.log_beta[b]))


# --------------------------------------------------------------------------- numpy baseline
class vectorised:
    """The same maths on whole arrays (``backend="numpy"``)."""

    @staticmethod
    def _draw(p, key, n_atoms, B, dtype):
        atoms, b = npb.atoms_and_batch(n_atoms, B)
        st = npb.streams(key, atoms)
        z0 = npb.variates("normal", dtype, key, n_atoms, 2)
        log_g1, block = npb.std_gamma_log_from(dtype, st, z0[:, 0], 1, p.alpha[b])
        log_g2, _ = npb.std_gamma_log_from(dtype, st, z0[:, 1], block, p.beta[b])
        log_x, log1m_x = _log_x_pair(log_g1, log_g2)
        with np.errstate(under="ignore"):
            x = np.exp(log_x).astype(dtype)
        return b, x, log_x, log1m_x

    @staticmethod
    def sample(p, key, n_atoms, B, dtype):
        return vectorised._draw(p, key, n_atoms, B, dtype)[1]

    @staticmethod
    def log_prob(p, x, B):
        b = np.arange(x.shape[0]) % B
        x = x.astype(np.float64)
        lp = _log_prob(m.xlogy(p.alpha[b] - 1.0, x), m.xlog1py(p.beta[b] - 1.0, -x),
                       p.log_beta_fn[b])
        return np.where(_in_support(x), lp, -np.inf)

    @staticmethod
    def score(p, x, B):
        b = np.arange(x.shape[0]) % B
        x = x.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return {"log_alpha": _score(p.alpha[b], np.log(x), p.digamma_diff_alpha[b]),
                    "log_beta": _score(p.beta[b], np.log1p(-x), p.digamma_diff_beta[b])}

    @staticmethod
    def sample_score(p, key, n_atoms, B, dtype):
        b, x, log_x, log1m_x = vectorised._draw(p, key, n_atoms, B, dtype)
        a, bb = p.alpha[b], p.beta[b]
        lp = _log_prob((a - 1.0) * log_x, (bb - 1.0) * log1m_x, p.log_beta_fn[b])
        return x, lp, {"log_alpha": _score(a, log_x, p.digamma_diff_alpha[b]),
                       "log_beta": _score(bb, log1m_x, p.digamma_diff_beta[b])}

    @staticmethod
    def entropy(p):
        return _entropy(p.alpha, p.beta, p.log_beta_fn, p.digamma_diff_alpha,
                        p.digamma_diff_beta)

    @staticmethod
    def kl(p, q):
        f = np.float64
        return _kl(p.alpha, p.beta, p.log_alpha.astype(f), p.log_beta.astype(f),
                   q.log_alpha.astype(f), q.log_beta.astype(f))


def _prepare(flat: dict) -> dict:
    check_concentration(flat["log_alpha"], "log_alpha")
    check_concentration(flat["log_beta"], "log_beta")
    a = checked_exp(flat["log_alpha"].astype(np.float64), "log_alpha")
    b = checked_exp(flat["log_beta"].astype(np.float64), "log_beta")
    ab = a + b
    log_beta_fn = log_multivariate_beta(np.stack([a, b], axis=1))
    digamma_ab = np.asarray(m.digamma(ab), np.float64)
    digamma_diff_a = digamma_ab - np.asarray(m.digamma(a), np.float64)
    digamma_diff_b = digamma_ab - np.asarray(m.digamma(b), np.float64)
    for name, v in (("log_alpha", digamma_diff_a), ("log_beta", digamma_diff_b)):
        if not np.all(np.isfinite(v) & np.isfinite(log_beta_fn)):
            raise ValueError(f"{name} out of range: lgamma/digamma of the parameters overflow")
    return {"alpha": a, "beta": b, "log_beta_fn": log_beta_fn,
            "digamma_diff_alpha": digamma_diff_a, "digamma_diff_beta": digamma_diff_b}


FAMILY = Family(
    name="Beta",
    params_cls=BetaParams,
    scores_cls=BetaScores,
    param_names=("log_alpha", "log_beta"),
    param_event_ndims=(0, 0),
    prepare=_prepare,
    numpy_ops=vectorised,
)
register(BetaParams, scalar)


class Beta(Distribution):
    """Beta distribution ``Beta(exp(log_alpha), exp(log_beta))`` on ``[0, 1]``.

    Parameters
    ----------
    log_alpha, log_beta : array_like (float32 or float64; ints promote to float64)
        Broadcast together to ``full_shape``.  Scores are w.r.t. these.
    event_ndims : int
        Number of trailing dims of ``full_shape`` treated as one event (independent
        Betas): log-probs and entropies sum over them.
    backend : {"cpu", "cuda", "numpy"}

    Closed-form scores: ``d/dlog_alpha = a (log x - digamma(a) + digamma(a + b))`` and
    ``d/dlog_beta = b (log(1 - x) - digamma(b) + digamma(a + b))``.  ``log_prob`` at
    ``x = 0`` or ``1`` is finite or ``+-inf`` as the density says (never NaN) and
    ``-inf`` outside ``[0, 1]``, where ``score`` raises ``ValueError``.
    """

    family = FAMILY

    def __init__(self, log_alpha, log_beta, event_ndims: int = 0, *, backend: str = "cpu"):
        self._setup({"log_alpha": log_alpha, "log_beta": log_beta}, event_ndims=event_ndims,
                    backend=backend)

    def _check_score_support(self, x: np.ndarray) -> None:
        if not np.all(_in_support(x)):
            raise ValueError("x has values outside the support [0, 1] of the Beta: "
                             "their log_prob is -inf and the score is undefined")
        if ((x == 0.0) | (x == 1.0)).any():
            raise boundary_score_error("Beta", "0 or 1")

    @property
    def alpha(self) -> np.ndarray:
        """``exp(log_alpha)`` broadcast, in the distribution's dtype."""
        return self._record.alpha.reshape(self.full_shape).astype(self.dtype)

    @property
    def beta(self) -> np.ndarray:
        """``exp(log_beta)`` broadcast, in the distribution's dtype."""
        return self._record.beta.reshape(self.full_shape).astype(self.dtype)

    @property
    def mean(self) -> np.ndarray:
        """``a / (a + b)`` (as a sigmoid of ``log_alpha - log_beta``), ``full_shape``."""
        r = self._record
        d = r.log_beta.astype(np.float64) - r.log_alpha.astype(np.float64)
        return np.exp(-np.logaddexp(0.0, d)).reshape(self.full_shape).astype(self.dtype)

    @property
    def variance(self) -> np.ndarray:
        """``a b / ((a + b)**2 (a + b + 1))``, ``full_shape``."""
        a, b = self._record.alpha, self._record.beta
        mean = a / (a + b)
        var = mean * (b / (a + b)) / (a + b + 1.0)
        return var.reshape(self.full_shape).astype(self.dtype)
