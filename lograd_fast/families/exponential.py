r"""Exponential distribution, parametrised by ``log_rate``.

.. math::

    \log p(x) = \log\lambda - \lambda x \quad (x \ge 0),
    \qquad \lambda = e^{\texttt{log\_rate}}

Support ``[0, inf)``; ``log_prob`` of ``x < 0`` is ``-inf`` and its score is 0
(``log p`` is the constant ``-inf`` there).

Score (closed form, w.r.t. the unconstrained parameter):

* ``d/d log_rate = 1 - lambda x``

Entropy ``1 - log_rate``; ``KL(p||q) = expm1(-d) + d`` with
``d = log_rate_p - log_rate_q`` (``= log(lp/lq) + lq/lp - 1``), computed as
``maths.expm1mx(-d)``: exactly 0 for ``p = q``, full relative accuracy for ``p ~ q``.
Mean ``1/lambda``.

Sampling: inversion, ``x = E / lambda`` with ``E = -log(u) ~ Exp(1)``, the atom's
``exponential`` variate (``_engine/rng.py``: 52-bit uniforms for float64, 23-bit for
float32, our own vectorised ``log``).  Pathwise (``reparam1``): ``dx/d log_rate = -x``.

Reference: any text on the exponential family, e.g. Johnson, Kotz & Balakrishnan,
*Continuous Univariate Distributions* vol. 1, ch. 19.

Exactness (fused vs separate): ``sample_and_score`` is exact at the unrounded draw
(``lambda x = E`` itself); ``score(x)`` / ``log_prob(x)`` at the stored, rounded ``x``
(``1 - lambda x``); they differ by one rounding of ``x``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._engine import maths as m
from .._engine import numpy as npb
from .._engine.dispatch import register
from .._engine.jit import jitable
from .._engine.rng import Variates, exponential_variate
from ..distribution import Distribution, Family
from .normal import TAIL_S, check_draws_fit


class ExponentialParams(NamedTuple):
    log_rate: np.ndarray  # (B,) float32/64
    rate: np.ndarray  # (B,) float64, exp(log_rate)
    inv_rate: np.ndarray  # (B,) float64, exp(-log_rate)


class ExponentialScores(NamedTuple):
    log_rate: np.ndarray


# --------------------------------------------------------------------------- formulas
@jitable
def _entropy(log_rate):
    return 1.0 - log_rate


@jitable
def _kl(log_rate_p, log_rate_q):
    d = log_rate_p - log_rate_q
    return m.expm1mx(-d)


# --------------------------------------------------------------------------- scalar maths
class scalar:
    """Per-atom entry points (see ``_engine/dispatch.py``) compiled for CPU and CUDA."""

    variates = Variates("exponential")

    @staticmethod
    @jitable
    def sample1(p, b, st, x, i):
        e = exponential_variate(x, st, 1, 0)
        x[i] = np.float64(e) * p.inv_rate[b]

    @staticmethod
    @jitable
    def log_prob1(p, b, x, i):
        xi = np.float64(x[i])
        if xi < 0.0:
            return -np.inf
        return np.float64(p.log_rate[b]) - p.rate[b] * xi

    @staticmethod
    @jitable
    def score1(p, b, x, i, s):
        xi = np.float64(x[i])
        s.log_rate[i] = 0.0 if xi < 0.0 else 1.0 - p.rate[b] * xi

    @staticmethod
    @jitable
    def sample_score1(p, b, st, x, i, s):
        e32 = exponential_variate(x, st, 1, 0)
        e = np.float64(e32)
        x[i] = e * p.inv_rate[b]
        s.log_rate[i] = 1.0 - e
        return np.float64(p.log_rate[b]) - e

    @staticmethod
    @jitable
    def entropy1(p, b):
        return _entropy(np.float64(p.log_rate[b]))

    @staticmethod
    @jitable
    def kl1(p, q, b):
        return _kl(np.float64(p.log_rate[b]), np.float64(q.log_rate[b]))

    @staticmethod
    @jitable
    def reparam1(p, b, st, x, i, dx):
        e = exponential_variate(x, st, 1, 0)
        xi = np.float64(e) * p.inv_rate[b]
        x[i] = xi
        dx.log_rate[i] = -xi


# --------------------------------------------------------------------------- numpy baseline
class vectorised:
    """The same maths on whole arrays (``backend="numpy"``)."""

    @staticmethod
    def _draw(p, key, n_atoms, B, dtype):
        _, b = npb.atoms_and_batch(n_atoms, B)
        e = npb.variates("exponential", dtype, key, n_atoms)[:, 0]
        return b, e.astype(np.float64)

    @staticmethod
    def sample(p, key, n_atoms, B, dtype):
        b, e = vectorised._draw(p, key, n_atoms, B, dtype)
        return (e * p.inv_rate[b]).astype(dtype)

    @staticmethod
    def log_prob(p, x, B):
        b = np.arange(x.shape[0]) % B
        xf = x.astype(np.float64)
        lp = p.log_rate[b].astype(np.float64) - p.rate[b] * xf
        return np.where(xf < 0.0, -np.inf, lp)

    @staticmethod
    def score(p, x, B):
        b = np.arange(x.shape[0]) % B
        xf = x.astype(np.float64)
        return {"log_rate": np.where(xf < 0.0, 0.0, 1.0 - p.rate[b] * xf)}

    @staticmethod
    def sample_score(p, key, n_atoms, B, dtype):
        b, e = vectorised._draw(p, key, n_atoms, B, dtype)
        x = (e * p.inv_rate[b]).astype(dtype)
        return x, p.log_rate[b].astype(np.float64) - e, {"log_rate": 1.0 - e}

    @staticmethod
    def entropy(p):
        return _entropy(p.log_rate.astype(np.float64))

    @staticmethod
    def kl(p, q):
        return _kl(p.log_rate.astype(np.float64), q.log_rate.astype(np.float64))


def _prepare(flat: dict) -> dict:
    log_rate = flat["log_rate"].astype(np.float64)
    with np.errstate(over="ignore"):
        rate = np.exp(log_rate)
        inv_rate = np.exp(-log_rate)
    bad = ~((rate > 0) & np.isfinite(rate) & (inv_rate > 0) & np.isfinite(inv_rate))
    if bad.any():
        raise ValueError("log_rate out of range: exp(log_rate) over- or underflows "
                         f"(e.g. {log_rate[bad].ravel()[0]})")
    dtype = flat["log_rate"].dtype
    with np.errstate(over="ignore"):
        extent = TAIL_S * inv_rate
    check_draws_fit(extent, float(np.finfo(dtype).max), "log_rate",
                    f"draws E / rate would overflow {dtype.name}")
    return {"rate": rate, "inv_rate": inv_rate}


FAMILY = Family(
    name="Exponential",
    params_cls=ExponentialParams,
    scores_cls=ExponentialScores,
    param_names=("log_rate",),
    param_event_ndims=(0,),
    prepare=_prepare,
    numpy_ops=vectorised,
)
register(ExponentialParams, scalar)


class Exponential(Distribution):
    """Exponential distribution with rate ``exp(log_rate)`` (mean ``exp(-log_rate)``).

    Parameters
    ----------
    log_rate : array_like (float32 or float64; ints promote to float64)
        Log of the rate; broadcast to ``full_shape``.  Scores are w.r.t. it.
    event_ndims : int
        Trailing dims of ``full_shape`` treated as one event (independent
        components): log-probs and entropies sum over them.
    backend : {"cpu", "cuda", "numpy"}

    Closed-form score ``d/dlog_rate = 1 - rate * x`` for ``x >= 0``;
    ``log_prob`` is ``-inf`` (score 0) for ``x < 0``.
    """

    family = FAMILY

    def __init__(self, log_rate, event_ndims: int = 0, *, backend: str = "cpu"):
        self._setup({"log_rate": log_rate}, event_ndims=event_ndims, backend=backend)

    @property
    def rate(self) -> np.ndarray:
        """``exp(log_rate)`` broadcast, in the distribution's dtype."""
        return self._record.rate.reshape(self.full_shape).astype(self.dtype)

    @property
    def mean(self) -> np.ndarray:
        """``1 / rate`` broadcast to ``full_shape``."""
        return self._record.inv_rate.reshape(self.full_shape).astype(self.dtype)

    @property
    def variance(self) -> np.ndarray:
        return (self._record.inv_rate**2).reshape(self.full_shape).astype(self.dtype)
