r"""Bernoulli distribution over ``{0, 1}``, parametrised by ``logits``.

.. math::

    p = \sigma(l) = \frac{1}{1 + e^{-l}},\qquad
    \log p(1) = -\mathrm{softplus}(-l),\quad \log p(0) = -\mathrm{softplus}(l)

Both log-probabilities (log-sigmoid via softplus), ``p`` and ``1 - p`` (each
computed directly, never as ``1 - p``) are computed once at construction in
float64, so nothing overflows or cancels: for ``logits = +-1e3`` the
probabilities are exactly 1 and 0 and the log-probabilities exactly ``0`` and
``-1e3``.  ``logits = -inf`` is allowed (probability exactly 0, as for the
Categorical); ``+inf`` and NaN are not.

Samples are int64 0/1.  ``log_prob`` of any other integer is ``-inf`` and its
score is 0 (``log p`` is the constant ``-inf`` there).

Score (closed form, w.r.t. the logit): ``d log p(x) / d l = x - p``, i.e.
``1 - p`` at ``x = 1`` (stored directly, accurate when ``p ~ 1``) and ``-p`` at 0.

Entropy ``-(p log p + (1-p) log(1-p))`` from the stored log-probabilities (terms with
probability 0 contribute exactly 0, never NaN).
``KL(p||q) = p (log p - log q) + (1-p) (log(1-p) - log(1-q))`` is the Bregman divergence
of the log-normaliser ``softplus``, ``softplus(l_q) - softplus(l_p) - sigmoid(l_p) d``
(``d = l_q - l_p``), whose first-order terms cancel for ``p ~ q``.  It is computed
after the symmetry ``l -> -l`` that makes ``l_p <= 0`` as
``d**2 int_0^1 (1 - s) sigmoid'(l_p + s d) ds`` (10-point Gauss-Legendre, converged:
``sigmoid'`` is analytic in ``|Im| < pi``) for ``|d| <= 1``, and as that difference
(no cancellation once ``|d| > 1`` and ``p <= 1/2``) otherwise: exactly 0 for ``p = q``,
relative accuracy for ``p ~ q``, never negative.  ``KL = +inf`` when ``q`` gives
probability 0 to an outcome that ``p`` allows, and ``softplus(l_q)`` when ``p = 0``.
Mean ``p``.

Sampling: ``x = [u < p]`` with the atom's ``uniform64`` variate ``u`` (52 bits), so the
probability is exact up to the ``2**-52`` grid of ``u`` (``p = 0`` never gives 1,
``p = 1`` never gives 0).

Reference: the logit parametrisation of generalised linear models (McCullagh &
Nelder, *Generalized Linear Models*, 2nd ed., ch. 4); ``log sigma(l) =
-softplus(-l)`` as in TensorFlow Probability's and PyTorch's ``Bernoulli(logits)``.

Exactness (fused vs separate): identical -- the samples are exact 0/1, so
``sample_and_score`` and ``score(x)`` / ``log_prob(x)`` see the same outcome.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._engine import maths as m
from .._engine import numpy as npb
from .._engine.dispatch import register
from .._engine.jit import jitable
from .._engine.rng import Variates, uniform_variate
from ..distribution import Distribution, Family


class BernoulliParams(NamedTuple):
    logits: np.ndarray  # (B,) float32/64
    prob: np.ndarray  # (B,) float64, sigmoid(logits)
    prob_c: np.ndarray  # (B,) float64, sigmoid(-logits) = 1 - prob
    log_prob_1: np.ndarray  # (B,) float64, -softplus(-logits)
    log_prob_0: np.ndarray  # (B,) float64, -softplus(logits)


class BernoulliScores(NamedTuple):
    logits: np.ndarray


# --------------------------------------------------------------------------- scalar maths
@jitable
def _draw(p, b, st):
    return np.int64(1) if uniform_variate(p.prob, st, 1, 0) < p.prob[b] else np.int64(0)


@jitable
def _log_prob(p, b, k):
    if k == 1:
        return p.log_prob_1[b]
    if k == 0:
        return p.log_prob_0[b]
    return -np.inf


@jitable
def _score(p, b, k):
    if k == 1:
        return p.prob_c[b]
    if k == 0:
        return -p.prob[b]
    return 0.0


@jitable
def _kl_logits(l_p, l_q):
    """KL between the Bernoulli laws of logits ``l_p`` and ``l_q`` (see the module doc)."""
    if l_p == -np.inf:  # p = 0: KL = -log(1 - q)
        return m.softplus(l_q)
    if l_q == -np.inf:  # q = 0 < p
        return np.inf
    if l_p > 0.0:  # KL is unchanged by l -> -l (swapping the outcomes)
        l_p = -l_p
        l_q = -l_q
    d = l_q - l_p
    if abs(d) <= 1.0:
        acc = 0.0
        for j in range(m.BREGMAN_S.shape[0]):
            t = -abs(l_p + m.BREGMAN_S[j] * d)
            e = m.exp(t)
            acc += m.BREGMAN_W[j] * e / ((1.0 + e) * (1.0 + e))  # sigmoid'(t)
        return d * d * acc
    prob = m.exp(l_p - m.softplus(l_p))  # sigmoid(l_p), l_p <= 0
    return m.nonneg(m.softplus(l_q) - m.softplus(l_p) - prob * d)


class scalar:
    """Per-atom entry points (see ``_engine/dispatch.py``) compiled for CPU and CUDA."""

    variates = Variates("uniform64")

    @staticmethod
    @jitable
    def sample1(p, b, st, x, i):
        x[i] = _draw(p, b, st)

    @staticmethod
    @jitable
    def log_prob1(p, b, x, i):
        return _log_prob(p, b, x[i])

    @staticmethod
    @jitable
    def score1(p, b, x, i, s):
        s.logits[i] = _score(p, b, x[i])

    @staticmethod
    @jitable
    def sample_score1(p, b, st, x, i, s):
        k = _draw(p, b, st)
        x[i] = k
        s.logits[i] = _score(p, b, k)
        return _log_prob(p, b, k)

    @staticmethod
    @jitable
    def entropy1(p, b):
        acc = 0.0
        if p.prob[b] > 0.0:
            acc -= p.prob[b] * p.log_prob_1[b]
        if p.prob_c[b] > 0.0:
            acc -= p.prob_c[b] * p.log_prob_0[b]
        return acc

    @staticmethod
    @jitable
    def kl1(p, q, b):
        return _kl_logits(np.float64(p.logits[b]), np.float64(q.logits[b]))


# --------------------------------------------------------------------------- numpy baseline
def _weighted(prob, diff):
    """prob * diff with 0 wherever prob == 0 (diff may be -inf/NaN there)."""
    with np.errstate(invalid="ignore"):
        return np.where(prob > 0.0, prob * np.where(prob > 0.0, diff, 0.0), 0.0)


class vectorised:
    """The same maths on whole arrays (``backend="numpy"``)."""

    @staticmethod
    def _draw(p, key, n_atoms, B):
        _, b = npb.atoms_and_batch(n_atoms, B)
        u = npb.variates("uniform64", np.float64, key, n_atoms)[:, 0]
        return b, (u < p.prob[b]).astype(np.int64)

    @staticmethod
    def _log_prob(p, b, x):
        return np.where(x == 1, p.log_prob_1[b], np.where(x == 0, p.log_prob_0[b], -np.inf))

    @staticmethod
    def _score(p, b, x):
        return np.where(x == 1, p.prob_c[b], np.where(x == 0, -p.prob[b], 0.0))

    @staticmethod
    def sample(p, key, n_atoms, B, dtype):
        return vectorised._draw(p, key, n_atoms, B)[1]

    @staticmethod
    def log_prob(p, x, B):
        return vectorised._log_prob(p, np.arange(x.shape[0]) % B, x)

    @staticmethod
    def score(p, x, B):
        return {"logits": vectorised._score(p, np.arange(x.shape[0]) % B, x)}

    @staticmethod
    def sample_score(p, key, n_atoms, B, dtype):
        b, x = vectorised._draw(p, key, n_atoms, B)
        return x, vectorised._log_prob(p, b, x), {"logits": vectorised._score(p, b, x)}

    @staticmethod
    def entropy(p):
        return 0.0 - _weighted(p.prob, p.log_prob_1) - _weighted(p.prob_c, p.log_prob_0)

    @staticmethod
    def kl(p, q):
        return np.vectorize(_kl_logits, otypes=[np.float64])(p.logits.astype(np.float64),
                                                             q.logits.astype(np.float64))


def _sigmoid(l):
    """1 / (1 + exp(-l)) to full relative accuracy for every l (including -inf)."""
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(l))
    return np.where(l >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))


def _prepare(flat: dict) -> dict:
    logits = flat["logits"].astype(np.float64)
    return {
        "prob": _sigmoid(logits),
        "prob_c": _sigmoid(-logits),
        "log_prob_1": -np.logaddexp(0.0, -logits),
        "log_prob_0": -np.logaddexp(0.0, logits),
    }


FAMILY = Family(
    name="Bernoulli",
    params_cls=BernoulliParams,
    scores_cls=BernoulliScores,
    param_names=("logits",),
    param_event_ndims=(0,),
    prepare=_prepare,
    numpy_ops=vectorised,
    discrete=True,
)
register(BernoulliParams, scalar)


class Bernoulli(Distribution):
    """Bernoulli distribution with ``P(x = 1) = sigmoid(logits)``.

    Parameters
    ----------
    logits : array_like (float32 or float64; ints promote to float64)
        Log-odds, broadcast to ``full_shape``; ``-inf`` allowed (probability 0).
        Scores are w.r.t. these.
    event_ndims : int
        Trailing dims of ``full_shape`` treated as one event (independent bits):
        log-probs and entropies sum over them.
    backend : {"cpu", "cuda", "numpy"}

    Samples are int64 0/1; ``score(x)["logits"] = x - sigmoid(logits)``.
    """

    family = FAMILY

    def __init__(self, logits, event_ndims: int = 0, *, backend: str = "cpu"):
        self._setup({"logits": logits}, event_ndims=event_ndims, backend=backend)

    @property
    def probs(self) -> np.ndarray:
        """``P(x = 1)`` broadcast, in the distribution's dtype (exactly 0/1 at +-1e3)."""
        return self._record.prob.reshape(self.full_shape).astype(self.dtype)

    @property
    def mean(self) -> np.ndarray:
        """``P(x = 1)``, i.e. :attr:`probs`."""
        return self.probs

    @property
    def logits(self) -> np.ndarray:
        return self._user_params["logits"]
