r"""Log-normal distribution, parametrised by ``loc`` and ``log_scale`` of ``log x``.

``x = exp(y)`` with ``y ~ N(mu, sigma**2)``, ``mu = loc``, ``sigma = exp(log_scale)``:

.. math::

    \log p(x) = -\tfrac12 z^2 - \log\sigma - \tfrac12\log 2\pi - \log x,
    \qquad z = (\log x - \mu)/\sigma

Support ``(0, inf)``; ``log_prob`` of ``x <= 0`` is ``-inf`` (the limit at 0) and
its scores are 0 (``log p`` is the constant ``-inf`` there).

Scores (closed form, w.r.t. the unconstrained parameters; those of the Normal in
``log x``, since the Jacobian ``1/x`` does not depend on them):

* ``d/d loc       = z / sigma``
* ``d/d log_scale = z**2 - 1``

Entropy ``mu + 1/2 + log(2 pi)/2 + log_scale``; KL equals the Normal KL of the
logs (KL is invariant under the common bijection ``exp``).  Mean
``exp(mu + sigma**2 / 2)``.

Sampling: ``x = exp(mu + sigma z)`` with ``z`` the atom's ``normal`` variate
(``_engine/rng.py``).  Pathwise (``reparam1``): ``dx/dloc = x``,
``dx/dlog_scale = x sigma z``.  Parameters whose draws over- or underflow the output
dtype (``mu + sigma z`` beyond ``log`` of its largest or smallest normal number,
~709.8 / -708.4 in float64, ~88.7 / -87.3 in float32) with probability above
``2**-64`` (``|z| > 9.155``) are a ``ValueError`` at construction: such draws would
be ``inf``, or 0 outside the support.

Reference: Johnson, Kotz & Balakrishnan, *Continuous Univariate Distributions*
vol. 1, ch. 14.

Exactness (fused vs separate): ``sample_and_score`` is exact at the unrounded draw
``log x = loc + scale z`` (from ``z``); ``score(x)`` / ``log_prob(x)`` at the stored,
rounded ``x`` (through ``log x``).  They differ by the rounding of ``x`` relative to
``scale``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._engine import maths as m
from .._engine import numpy as npb
from .._engine.dispatch import register
from .._engine.jit import jitable
from .._engine.rng import Variates, normal_variate
from ..distribution import Distribution, Family
from .normal import Z_TAIL, _log_prob_z, check_draws_fit, prepare_scale
from .normal import _entropy as _normal_entropy
from .normal import _kl as _normal_kl


class LogNormalParams(NamedTuple):
    loc: np.ndarray  # (B,) float32/64
    log_scale: np.ndarray  # (B,)
    scale: np.ndarray  # (B,) float64, exp(log_scale)
    inv_scale: np.ndarray  # (B,) float64, exp(-log_scale)


class LogNormalScores(NamedTuple):
    loc: np.ndarray
    log_scale: np.ndarray


# --------------------------------------------------------------------------- formulas
@jitable
def _log_prob_y(y, z, log_scale):
    """log p(x) given y = log x and z = (y - loc) / scale."""
    return _log_prob_z(z, log_scale) - y


# --------------------------------------------------------------------------- scalar maths
class scalar:
    """Per-atom entry points (see ``_engine/dispatch.py``) compiled for CPU and CUDA."""

    variates = Variates("normal")

    @staticmethod
    @jitable
    def sample1(p, b, st, x, i):
        z = normal_variate(x, st, 1, 0)
        x[i] = m.exp(p.loc[b] + p.scale[b] * np.float64(z))

    @staticmethod
    @jitable
    def log_prob1(p, b, x, i):
        xi = np.float64(x[i])
        if xi <= 0.0:
            return -np.inf
        y = m.log(xi)
        z = (y - np.float64(p.loc[b])) * p.inv_scale[b]
        return _log_prob_y(y, z, np.float64(p.log_scale[b]))

    @staticmethod
    @jitable
    def score1(p, b, x, i, s):
        xi = np.float64(x[i])
        if xi <= 0.0:
            s.loc[i] = 0.0
            s.log_scale[i] = 0.0
        else:
            z = (m.log(xi) - np.float64(p.loc[b])) * p.inv_scale[b]
            s.loc[i] = z * p.inv_scale[b]
            s.log_scale[i] = z * z - 1.0

    @staticmethod
    @jitable
    def sample_score1(p, b, st, x, i, s):
        z = np.float64(normal_variate(x, st, 1, 0))
        y = p.loc[b] + p.scale[b] * z
        x[i] = m.exp(y)
        s.loc[i] = z * p.inv_scale[b]
        s.log_scale[i] = z * z - 1.0
        return _log_prob_y(y, z, np.float64(p.log_scale[b]))

    @staticmethod
    @jitable
    def entropy1(p, b):
        return np.float64(p.loc[b]) + _normal_entropy(np.float64(p.log_scale[b]))

    @staticmethod
    @jitable
    def kl1(p, q, b):
        return _normal_kl(np.float64(p.loc[b]), np.float64(p.log_scale[b]),
                          np.float64(q.loc[b]), np.float64(q.log_scale[b]), q.inv_scale[b])

    @staticmethod
    @jitable
    def reparam1(p, b, st, x, i, dx):
        z = np.float64(normal_variate(x, st, 1, 0))
        xi = m.exp(p.loc[b] + p.scale[b] * z)
        x[i] = xi
        dx.loc[i] = xi
        dx.log_scale[i] = xi * (p.scale[b] * z)


# --------------------------------------------------------------------------- numpy baseline
class vectorised:
    """The same maths on whole arrays (``backend="numpy"``)."""

    @staticmethod
    def _draw(p, key, n_atoms, B, dtype):
        _, b = npb.atoms_and_batch(n_atoms, B)
        z = npb.variates("normal", dtype, key, n_atoms)[:, 0].astype(np.float64)
        return b, z, p.loc[b] + p.scale[b] * z

    @staticmethod
    def sample(p, key, n_atoms, B, dtype):
        _, _, y = vectorised._draw(p, key, n_atoms, B, dtype)
        with np.errstate(over="ignore"):
            return np.exp(y).astype(dtype)

    @staticmethod
    def _z(p, x, B):
        b = np.arange(x.shape[0]) % B
        xf = x.astype(np.float64)
        inside = xf > 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.log(np.where(inside, xf, 1.0))
        return b, inside, y, (y - p.loc[b].astype(np.float64)) * p.inv_scale[b]

    @staticmethod
    def log_prob(p, x, B):
        b, inside, y, z = vectorised._z(p, x, B)
        lp = _log_prob_y(y, z, p.log_scale[b].astype(np.float64))
        return np.where(inside, lp, -np.inf)

    @staticmethod
    def score(p, x, B):
        b, inside, _, z = vectorised._z(p, x, B)
        return {"loc": np.where(inside, z * p.inv_scale[b], 0.0),
                "log_scale": np.where(inside, z * z - 1.0, 0.0)}

    @staticmethod
    def sample_score(p, key, n_atoms, B, dtype):
        b, z, y = vectorised._draw(p, key, n_atoms, B, dtype)
        with np.errstate(over="ignore"):
            x = np.exp(y).astype(dtype)
        lp = _log_prob_y(y, z, p.log_scale[b].astype(np.float64))
        return x, lp, {"loc": z * p.inv_scale[b], "log_scale": z * z - 1.0}

    @staticmethod
    def entropy(p):
        return p.loc.astype(np.float64) + _normal_entropy(p.log_scale.astype(np.float64))

    @staticmethod
    def kl(p, q):
        f = np.float64
        return _normal_kl(p.loc.astype(f), p.log_scale.astype(f), q.loc.astype(f),
                          q.log_scale.astype(f), q.inv_scale)


def _prepare(flat: dict) -> dict:
    derived = prepare_scale(flat)
    dtype = np.dtype(flat["loc"].dtype)
    loc = flat["loc"].astype(np.float64)
    with np.errstate(over="ignore"):
        spread = Z_TAIL * derived["scale"]
    info = np.finfo(dtype)
    check_draws_fit(loc + spread, float(np.log(info.max)), "loc/log_scale",
                    f"log of the draws, loc + scale z, beyond log(max {dtype.name}): "
                    "exp would overflow")
    check_draws_fit(spread - loc, -float(np.log(info.tiny)), "loc/log_scale",
                    f"log of the draws, loc - scale z, below log(smallest normal "
                    f"{dtype.name}): draws would round towards 0, outside the support")
    return derived


FAMILY = Family(
    name="LogNormal",
    params_cls=LogNormalParams,
    scores_cls=LogNormalScores,
    param_names=("loc", "log_scale"),
    param_event_ndims=(0, 0),
    prepare=_prepare,
    numpy_ops=vectorised,
)
register(LogNormalParams, scalar)


class LogNormal(Distribution):
    """Log-normal distribution: ``x = exp(y)``, ``y ~ N(loc, exp(log_scale)**2)``.

    Parameters
    ----------
    loc, log_scale : array_like (float32 or float64; ints promote to float64)
        Mean and log standard deviation of ``log x``; broadcast to ``full_shape``.
        Scores are w.r.t. these.
    event_ndims : int
        Trailing dims of ``full_shape`` treated as one event: log-probs and
        entropies sum over them.
    backend : {"cpu", "cuda", "numpy"}

    Closed-form scores: ``d/dloc = (log x - loc) / scale**2`` and
    ``d/dlog_scale = ((log x - loc) / scale)**2 - 1``; ``log_prob`` is ``-inf``
    (scores 0) for ``x <= 0``.
    """

    family = FAMILY

    def __init__(self, loc, log_scale, event_ndims: int = 0, *, backend: str = "cpu"):
        self._setup({"loc": loc, "log_scale": log_scale}, event_ndims=event_ndims,
                    backend=backend)

    @property
    def mean(self) -> np.ndarray:
        """``exp(loc + scale**2 / 2)`` broadcast to ``full_shape`` (may overflow to inf)."""
        r = self._record
        with np.errstate(over="ignore"):
            mean = np.exp(r.loc.astype(np.float64) + 0.5 * r.scale**2)
        return mean.reshape(self.full_shape).astype(self.dtype)

    @property
    def median(self) -> np.ndarray:
        """``exp(loc)`` broadcast to ``full_shape``."""
        with np.errstate(over="ignore"):
            med = np.exp(self._record.loc.astype(np.float64))
        return med.reshape(self.full_shape).astype(self.dtype)
