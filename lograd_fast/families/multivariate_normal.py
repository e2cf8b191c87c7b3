r"""Multivariate normal distribution with a lower-triangular scale factor.

Parametrisation (scores are w.r.t. exactly these arrays):

* ``loc`` ``(..., D)``: the mean.
* ``scale_tril_unconstrained`` ``(..., D, D)``: an *unconstrained* square matrix
  ``S`` whose lower triangle holds the Cholesky factor ``L`` of the covariance,
  with the **diagonal in log space**:

  .. math::

      L_{jk} = S_{jk}\ (j > k),\qquad L_{kk} = e^{S_{kk}},\qquad
      L_{jk} = 0\ (j < k),\qquad \Sigma = L L^\top .

  Entries of ``S`` above the diagonal are **ignored** (their score is exactly 0),
  as in ``torch.distributions.transforms.LowerCholeskyTransform``; so every real
  matrix is a valid parameter (a network may output a full ``D x D`` block).
  Use :meth:`MultivariateNormal.from_scale_tril` to pass a constrained factor
  (positive diagonal, zero upper triangle; checked) or
  :meth:`MultivariateNormal.from_covariance` for a covariance matrix.

Support: ``R^D``, ``1 <= D <= 64`` (``MAX_DIM``).  Sampling: ``x = loc + L z`` with
``z`` the row's ``D`` ``normal`` variates ``z_0, z_1, ...`` (``_engine/rng.py``:
variates ``row * D + k``, computed for many rows at once).

With ``r = x - loc``, ``z = L^{-1} r`` (forward substitution, no inverse) and
``v = L^{-T} z`` (back substitution):

.. math::

    \log p(x) = -\tfrac12 \lVert z\rVert^2 - \textstyle\sum_k S_{kk} - \tfrac D2\log 2\pi

Scores (closed form):

* ``d/d loc_j = v_j``
* ``d/d S_jk = v_j z_k`` for ``j > k``  (``d log p / dL = L^{-T} z z^T - L^{-T}``,
  whose strictly-lower part is ``v z^T`` because ``L^{-T}`` is upper triangular)
* ``d/d S_kk = L_kk v_k z_k - 1``  (chain rule through ``L_kk = exp(S_kk)``)
* ``d/d S_jk = 0`` for ``j < k``.

Entropy ``D/2 (1 + log 2 pi) + sum_k S_kk``.  KL (e.g. Rasmussen & Williams,
*Gaussian Processes for ML*, eq. A.23), with ``M = L_q^{-1} L_p`` (lower triangular,
``M_kk = exp(d_k)``, ``d_k = S^p_kk - S^q_kk``) and ``delta = L_q^{-1}(loc_p - loc_q)``:

.. math::

    \mathrm{KL}(p\Vert q) = \tfrac12\big[\operatorname{tr}(\Sigma_q^{-1}\Sigma_p)
        + \lVert\delta\rVert^2 - D + \log\det\Sigma_q - \log\det\Sigma_p\big]
      = \sum_k \tfrac12\big(\operatorname{expm1}(2 d_k) - 2 d_k\big)
        + \tfrac12\sum_{j>k} M_{jk}^2 + \tfrac12\lVert\delta\rVert^2

(the last form, like Normal's, stays accurate when ``p ~ q``: ``expm1(2d) - 2d`` is
``maths.expm1mx``, a series for small ``d``).

Scratch space: forward/back substitution need one length-``D`` float64 vector per
atom.  Entry points get it from :func:`local_vector`, a fixed ``MAX_DIM`` array on
the stack (CPU) or in thread-local memory (CUDA); nothing is allocated on the heap.

Exactness (fused vs separate): ``sample_and_score`` is exact at the unrounded draw
``loc + L z`` (from ``z``, no substitution); ``score(x)`` / ``log_prob(x)`` at the
stored, rounded ``x`` (forward substitution).  They differ by the rounding of ``x``
relative to ``L``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import lower_builtin, type_callable
from numba.np.arrayobj import populate_array

from .._engine import maths as m
from .._engine import numpy as npb
from .._engine.dispatch import register
from .._engine.jit import jitable
from .._engine.rng import Variates, normal_variate
from ..distribution import Distribution, Family, as_float_param
from .normal import Z_TAIL, check_draws_fit

HALF_LOG_2PI = 0.9189385332046727
MAX_DIM = 64


# --------------------------------------------------------------------------- scratch vector
def local_vector():
    """``MAX_DIM`` float64 scratch values: ``np.empty`` in Python; in compiled code an
    ``alloca`` in the calling function (CPU stack, CUDA thread-local memory), the way
    ``numba.cuda.local.array`` is built, so it costs no allocation and works on both
    targets.  Valid only inside the function that calls it."""
    return np.empty(MAX_DIM)


_VECTOR = types.Array(types.float64, 1, "C")


@type_callable(local_vector)
def _type_local_vector(context):
    def typer():
        return _VECTOR

    return typer


@lower_builtin(local_vector)
def _lower_local_vector(context, builder, sig, args):
    item = context.get_data_type(types.float64)
    data = cgutils.alloca_once(builder, item, size=MAX_DIM)  # in the entry block
    intp = context.get_value_type(types.intp)
    ary = context.make_array(_VECTOR)(context, builder)
    populate_array(ary, data=data, shape=[intp(MAX_DIM)], strides=[intp(8)],
                   itemsize=intp(8), meminfo=None)
    return ary._getvalue()


# --------------------------------------------------------------------------- records
class MultivariateNormalParams(NamedTuple):
    loc: np.ndarray  # (B, D) float32/64
    scale_tril_unconstrained: np.ndarray  # (B, D, D) float32/64 (diagonal: log-scales)
    scale_tril: np.ndarray  # (B, D, D) float64, L: exp on the diagonal, zeros above
    log_det: np.ndarray  # (B,) float64, log det L = sum_k S_kk


class MultivariateNormalScores(NamedTuple):
    loc: np.ndarray  # (n_atoms, D)
    scale_tril_unconstrained: np.ndarray  # (n_atoms, D, D)


# --------------------------------------------------------------------------- formulas
# Array-friendly helpers: scalars in compiled code, whole arrays in the numpy backend.
@jitable
def _log_prob_sq(sq_norm_z, log_det, D):
    return -0.5 * sq_norm_z - log_det - D * HALF_LOG_2PI


@jitable
def _entropy(log_det, D):
    return D * (0.5 + HALF_LOG_2PI) + log_det


@jitable
def _kl_diag_term(d):
    """The diagonal part ``(M_kk**2 - 1)/2 - log M_kk`` of the KL, ``M_kk = exp(d)``."""
    return 0.5 * m.expm1mx(2.0 * d)


# --------------------------------------------------------------------------- scalar maths
@jitable
def _forward(p, b, x, i, z):
    """``z = L^{-1} (x[i] - loc)`` into the scratch ``z``; returns ``||z||**2``."""
    D = p.loc.shape[1]
    sq = 0.0
    for j in range(D):
        acc = np.float64(x[i, j]) - np.float64(p.loc[b, j])
        for k in range(j):
            acc -= p.scale_tril[b, j, k] * z[k]
        z[j] = acc / p.scale_tril[b, j, j]
        sq += z[j] * z[j]
    return sq


@jitable
def _write_scores(p, b, z, i, s):
    """Scores of the atom with standardised draw ``z`` (overwritten by ``v = L^{-T} z``).

    Back substitution from the last row: when row ``j`` is reached, ``z[k]`` holds
    ``v_k`` for ``k > j`` and still ``z_k`` for ``k <= j``, which is all that row ``j``
    of the score needs."""
    D = p.loc.shape[1]
    for j in range(D - 1, -1, -1):
        acc = z[j]
        for k in range(D - 1, j, -1):
            acc -= p.scale_tril[b, k, j] * z[k]
        v = acc / p.scale_tril[b, j, j]
        s.loc[i, j] = v
        for k in range(j):
            s.scale_tril_unconstrained[i, j, k] = v * z[k]
        s.scale_tril_unconstrained[i, j, j] = p.scale_tril[b, j, j] * v * z[j] - 1.0
        for k in range(j + 1, D):
            s.scale_tril_unconstrained[i, j, k] = 0.0
        z[j] = v


@jitable
def _row_length(p):
    return p.loc.shape[1]


@jitable
def _draw_z(x, i, st):
    """The atom's ``D`` standard normals into the row ``x[i]`` (exact in its dtype)."""
    for j in range(x.shape[1]):
        x[i, j] = normal_variate(x, st, x.shape[1], j)


@jitable
def _affine_in_place(p, b, x, i):
    """``x[i] <- loc + L x[i]``, bottom row first so the ``z_k`` it reads are unchanged."""
    D = p.loc.shape[1]
    for j in range(D - 1, -1, -1):
        acc = np.float64(p.loc[b, j])
        for k in range(j + 1):
            acc += p.scale_tril[b, j, k] * np.float64(x[i, k])
        x[i, j] = acc


class scalar:
    """Per-atom (per-row) entry points (see ``_engine/dispatch.py``) compiled for CPU and CUDA."""

    variates = Variates("normal", _row_length)

    @staticmethod
    @jitable
    def sample1(p, b, st, x, i):
        _draw_z(x, i, st)
        _affine_in_place(p, b, x, i)

    @staticmethod
    @jitable
    def log_prob1(p, b, x, i):
        z = local_vector()
        sq = _forward(p, b, x, i, z)
        return _log_prob_sq(sq, p.log_det[b], p.loc.shape[1])

    @staticmethod
    @jitable
    def score1(p, b, x, i, s):
        z = local_vector()
        _forward(p, b, x, i, z)
        _write_scores(p, b, z, i, s)

    @staticmethod
    @jitable
    def sample_score1(p, b, st, x, i, s):
        D = x.shape[1]
        _draw_z(x, i, st)
        z = local_vector()
        sq = 0.0
        for j in range(D):
            z[j] = np.float64(x[i, j])
            sq += z[j] * z[j]
        _affine_in_place(p, b, x, i)
        _write_scores(p, b, z, i, s)
        return _log_prob_sq(sq, p.log_det[b], D)

    @staticmethod
    @jitable
    def entropy1(p, b):
        return _entropy(p.log_det[b], p.loc.shape[1])

    @staticmethod
    @jitable
    def kl1(p, q, b):
        D = p.loc.shape[1]
        z = local_vector()
        acc = 0.0
        for c in range(D):
            acc += _kl_diag_term(np.float64(p.scale_tril_unconstrained[b, c, c])
                                 - np.float64(q.scale_tril_unconstrained[b, c, c]))
        # column c of M = L_q^{-1} L_p, rows c..D-1 (M is lower triangular)
        for c in range(D):
            z[c] = p.scale_tril[b, c, c] / q.scale_tril[b, c, c]
            for j in range(c + 1, D):
                t = p.scale_tril[b, j, c]
                for k in range(c, j):
                    t -= q.scale_tril[b, j, k] * z[k]
                z[j] = t / q.scale_tril[b, j, j]
                acc += 0.5 * z[j] * z[j]
        # delta = L_q^{-1} (loc_p - loc_q)
        for j in range(D):
            t = np.float64(p.loc[b, j]) - np.float64(q.loc[b, j])
            for k in range(j):
                t -= q.scale_tril[b, j, k] * z[k]
            z[j] = t / q.scale_tril[b, j, j]
            acc += 0.5 * z[j] * z[j]
        return acc

    @staticmethod
    @jitable
    def reflect1(p, b, x, i):
        for j in range(x.shape[1]):
            x[i, j] = 2.0 * np.float64(p.loc[b, j]) - np.float64(x[i, j])

    @staticmethod
    @jitable
    def reparam1(p, b, st, x, i, dx):
        """``x = loc + L z`` and its pathwise derivatives.  Every parameter entry moves
        exactly one coordinate of ``x`` (``loc_k`` moves ``x_k``; ``S_jk`` moves ``x_j``),
        so ``dx`` holds that one derivative: ``dx.loc[i, k] = 1``,
        ``dx.S[i, j, k] = z_k`` (j > k), ``L_kk z_k`` (j = k), ``0`` (j < k).  With
        ``g = grad f(x)`` the pathwise gradient is ``g_k dx.loc[k]`` and ``g_j dx.S[j, k]``."""
        D = x.shape[1]
        _draw_z(x, i, st)
        for j in range(D):
            dx.loc[i, j] = 1.0
            for k in range(j):
                dx.scale_tril_unconstrained[i, j, k] = x[i, k]
            dx.scale_tril_unconstrained[i, j, j] = p.scale_tril[b, j, j] * np.float64(x[i, j])
            for k in range(j + 1, D):
                dx.scale_tril_unconstrained[i, j, k] = 0.0
        _affine_in_place(p, b, x, i)


# --------------------------------------------------------------------------- numpy baseline
class vectorised:
    """The same maths on whole arrays (``backend="numpy"``).

    Every loop runs over the ``D`` coordinates with numpy operations over all atoms,
    in the order of the scalar code, so samples, log-probs and scores agree bitwise
    with the compiled backends."""

    @staticmethod
    def _z(p, key, n_atoms, B, dtype):
        _, b = npb.atoms_and_batch(n_atoms, B)
        z = npb.variates("normal", dtype, key, n_atoms, p.loc.shape[1])
        return b, z.astype(np.float64)

    @staticmethod
    def _affine(p, b, z, dtype):
        acc = p.loc[b].astype(np.float64)
        for k in range(z.shape[1]):
            # L[b, j, k] is 0 for j < k: adding those zeros changes nothing
            acc += p.scale_tril[:, :, k][b] * z[:, k:k + 1]
        return acc.astype(dtype)

    @staticmethod
    def _forward(p, b, x):
        """Column-oriented forward substitution (same operations per entry as the
        scalar row-oriented one); returns ``z`` and ``||z||**2``."""
        t = x.astype(np.float64) - p.loc[b].astype(np.float64)
        D = t.shape[1]
        z = np.empty_like(t)
        sq = np.zeros(t.shape[0])
        for k in range(D):
            z[:, k] = t[:, k] / p.scale_tril[:, k, k][b]
            sq += z[:, k] * z[:, k]
            t[:, k + 1:] -= p.scale_tril[:, k + 1:, k][b] * z[:, k:k + 1]
        return z, sq

    @staticmethod
    def _scores(p, b, z):
        t = z.copy()
        D = z.shape[1]
        v = np.empty_like(z)
        for k in range(D - 1, -1, -1):
            v[:, k] = t[:, k] / p.scale_tril[:, k, k][b]
            t[:, :k] -= p.scale_tril[:, k, :k][b] * v[:, k:k + 1]
        g = v[:, :, None] * z[:, None, :]
        upper_j, upper_k = np.triu_indices(D, 1)
        g[:, upper_j, upper_k] = 0.0
        diag = np.arange(D)
        g[:, diag, diag] = np.diagonal(p.scale_tril, axis1=1, axis2=2)[b] * v * z - 1.0
        return {"loc": v, "scale_tril_unconstrained": g}

    @staticmethod
    def sample(p, key, n_atoms, B, dtype):
        b, z = vectorised._z(p, key, n_atoms, B, dtype)
        return vectorised._affine(p, b, z, dtype)

    @staticmethod
    def log_prob(p, x, B):
        b = np.arange(x.shape[0]) % B
        _, sq = vectorised._forward(p, b, x)
        return _log_prob_sq(sq, p.log_det[b], p.loc.shape[1])

    @staticmethod
    def score(p, x, B):
        b = np.arange(x.shape[0]) % B
        z, _ = vectorised._forward(p, b, x)
        return vectorised._scores(p, b, z)

    @staticmethod
    def sample_score(p, key, n_atoms, B, dtype):
        b, z = vectorised._z(p, key, n_atoms, B, dtype)
        x = vectorised._affine(p, b, z, dtype)
        sq = np.zeros(n_atoms)
        for k in range(z.shape[1]):
            sq += z[:, k] * z[:, k]
        lp = _log_prob_sq(sq, p.log_det[b], p.loc.shape[1])
        return x, lp, vectorised._scores(p, b, z)

    @staticmethod
    def entropy(p):
        return _entropy(p.log_det, p.loc.shape[1])

    @staticmethod
    def kl(p, q):
        D = p.loc.shape[1]
        f = np.float64
        d = (np.diagonal(p.scale_tril_unconstrained, axis1=1, axis2=2).astype(f)
             - np.diagonal(q.scale_tril_unconstrained, axis1=1, axis2=2).astype(f))
        # forward substitution L_q [M | delta] = [L_p | loc_p - loc_q], all columns at once
        t = np.concatenate([p.scale_tril, (p.loc.astype(f) - q.loc.astype(f))[:, :, None]],
                           axis=2)
        sol = np.empty_like(t)
        for k in range(D):
            sol[:, k, :] = t[:, k, :] / q.scale_tril[:, k, k, None]
            t[:, k + 1:, :] -= q.scale_tril[:, k + 1:, k, None] * sol[:, None, k, :]
        strict = np.tril(sol[:, :, :D], -1)
        return (_kl_diag_term(d).sum(axis=1) + 0.5 * (strict**2).sum(axis=(1, 2))
                + 0.5 * (sol[:, :, D] ** 2).sum(axis=1))


# --------------------------------------------------------------------------- family
def _prepare(flat: dict) -> dict:
    raw = flat["scale_tril_unconstrained"].astype(np.float64)
    D = raw.shape[-1]
    log_diag = np.diagonal(raw, axis1=1, axis2=2)
    with np.errstate(over="ignore", under="ignore"):
        diag = np.exp(log_diag)
        inv_diag = np.exp(-log_diag)
    bad = ~((diag > 0) & np.isfinite(diag) & (inv_diag > 0) & np.isfinite(inv_diag))
    if bad.any():
        row, k = np.unravel_index(np.argmax(bad), bad.shape)
        raise ValueError("scale_tril_unconstrained: diagonal entries are log-scales and "
                         f"exp of them over- or underflows (flat row {row}, entry "
                         f"[{k}, {k}] = {log_diag[row, k]}): the factor is not positive "
                         "definite in floating point")
    tril = np.tril(raw, -1)
    tril[:, np.arange(D), np.arange(D)] = diag
    # coordinate j of L z is N(0, |row j of L|^2): its norm, scaled against overflow
    top = np.abs(tril).max(axis=2)
    with np.errstate(over="ignore", invalid="ignore"):
        row_norm = top * np.sqrt(((tril / top[:, :, None]) ** 2).sum(axis=2))
        extent = np.abs(flat["loc"].astype(np.float64)) + Z_TAIL * row_norm
    dtype = flat["loc"].dtype
    check_draws_fit(extent, float(np.finfo(dtype).max), "loc/scale_tril_unconstrained",
                    f"draws loc + L z would overflow {dtype.name}")
    return {"scale_tril": tril, "log_det": log_diag.sum(axis=1)}


FAMILY = Family(
    name="MultivariateNormal",
    params_cls=MultivariateNormalParams,
    scores_cls=MultivariateNormalScores,
    param_names=("loc", "scale_tril_unconstrained"),
    param_event_ndims=(1, 2),
    prepare=_prepare,
    numpy_ops=vectorised,
    reflect_odd=("loc",),  # the score of loc flips sign under reflect1; the others' do not
    sample_event_shape=lambda p: (p.loc.shape[1],),
)
register(MultivariateNormalParams, scalar)


def _shape(value, name: str) -> tuple:
    """The shape of an array-like without converting arrays (tensors, device arrays);
    nested lists go through :func:`as_float_param` (a TypeError naming ``name`` if ragged)."""
    shape = getattr(value, "shape", None)
    return tuple(shape) if shape is not None else as_float_param(value, name).shape


def _check_shapes(loc, raw, raw_name: str) -> None:
    loc_shape, raw_shape = _shape(loc, "loc"), _shape(raw, raw_name)
    if len(raw_shape) < 2 or raw_shape[-1] != raw_shape[-2]:
        raise ValueError(f"{raw_name} must be square in its last two dims (..., D, D), "
                         f"got shape {raw_shape}")
    D = raw_shape[-1]
    if not 1 <= D <= MAX_DIM:
        raise ValueError(f"{raw_name}: D = {D} is outside the supported 1 <= D <= {MAX_DIM}")
    if len(loc_shape) < 1 or loc_shape[-1] != D:
        raise ValueError(f"loc must have shape (..., D) with D = {D} like {raw_name} "
                         f"{raw_shape}, got shape {loc_shape}")


class MultivariateNormal(Distribution):
    """Multivariate normal ``N(loc, L L^T)`` of dimension ``D`` (``1 <= D <= 64``).

    Parameters
    ----------
    loc : array_like ``(..., D)``
    scale_tril_unconstrained : array_like ``(..., D, D)``
        ``S``: the strictly-lower triangle is that of the Cholesky factor ``L``,
        the diagonal holds ``log L_kk``, the upper triangle is ignored (score 0).
        Leading dims broadcast with those of ``loc`` to ``batch_shape``.
    backend : {"cpu", "cuda", "numpy"}

    Samples have shape ``(n, *batch_shape, D)``; ``score(x)`` returns ``loc``
    ``(n, *batch_shape, D)`` and ``scale_tril_unconstrained`` ``(n, *batch_shape, D, D)``
    (formulas in the module docstring).  See :meth:`from_scale_tril` and
    :meth:`from_covariance` for constrained inputs.
    """

    family = FAMILY

    def __init__(self, loc, scale_tril_unconstrained, *, backend: str = "cpu"):
        _check_shapes(loc, scale_tril_unconstrained, "scale_tril_unconstrained")
        self._setup({"loc": loc, "scale_tril_unconstrained": scale_tril_unconstrained},
                    backend=backend)
        self.D = self.sample_event_shape[0]

    @classmethod
    def from_scale_tril(cls, loc, scale_tril, *, backend: str = "cpu") -> MultivariateNormal:
        """From a Cholesky factor: lower triangular with a positive diagonal (checked;
        ``ValueError`` naming ``scale_tril`` otherwise).  The distribution's parameter
        is then ``scale_tril`` with ``log`` applied to its diagonal (exact up to the
        rounding of ``exp(log(.))``)."""
        tril = as_float_param(scale_tril, "scale_tril")
        _check_shapes(loc, tril, "scale_tril")
        if np.isnan(tril).any() or np.isinf(tril).any():
            raise ValueError("scale_tril contains NaN or inf values")
        if np.triu(tril, 1).any():
            raise ValueError("scale_tril must be lower triangular: it has nonzero entries "
                             "above the diagonal (an upper Cholesky factor? use its "
                             "transpose)")
        diag = np.diagonal(tril, axis1=-2, axis2=-1)
        if not (diag > 0).all():
            raise ValueError("scale_tril must have a strictly positive diagonal (it is a "
                             f"Cholesky factor); smallest diagonal entry {diag.min()}")
        raw = np.array(tril)
        D = raw.shape[-1]
        raw[..., np.arange(D), np.arange(D)] = np.log(diag)
        return cls(loc, raw, backend=backend)

    @classmethod
    def from_covariance(cls, loc, covariance, *, backend: str = "cpu") -> MultivariateNormal:
        """From a symmetric positive-definite covariance (``ValueError`` naming
        ``covariance`` if it is not), via its Cholesky factor."""
        cov = as_float_param(covariance, "covariance")
        _check_shapes(loc, cov, "covariance")
        if not np.isfinite(cov).all():
            raise ValueError("covariance contains NaN or inf values")
        if not np.allclose(cov, np.swapaxes(cov, -1, -2), rtol=1e-12, atol=0.0):
            raise ValueError("covariance must be symmetric")
        try:
            tril = np.linalg.cholesky(cov.astype(np.float64)).astype(cov.dtype)
        except np.linalg.LinAlgError:
            raise ValueError("covariance is not positive definite") from None
        return cls.from_scale_tril(loc, tril, backend=backend)

    @property
    def mean(self) -> np.ndarray:
        """``loc`` broadcast to ``batch_shape + (D,)``."""
        return self._record.loc.reshape(self.full_shape + (self.D,)).copy()

    @property
    def scale_tril(self) -> np.ndarray:
        """The Cholesky factor ``L`` ``(*batch_shape, D, D)`` in the distribution's dtype."""
        return self._record.scale_tril.reshape(self.full_shape + (self.D,) * 2).astype(
            self.dtype)

    @property
    def covariance(self) -> np.ndarray:
        """``L L^T`` ``(*batch_shape, D, D)``."""
        tril = self._record.scale_tril
        return (tril @ np.swapaxes(tril, 1, 2)).reshape(self.full_shape + (self.D,) * 2) \
            .astype(self.dtype)
