r"""Independent categoricals of different sizes (a MultiDiscrete action space).

Parametrisation: one **flat** ``logits`` array ``(..., K_0 + K_1 + ... + K_{m-1})``,
the concatenation of the ``m`` sub-actions' logits, with ``nvec = (K_0, ..., K_{m-1})``
(the convention of Stable-Baselines3's and RLlib's ``MultiCategorical``, where a
policy head outputs one flat vector).  The constructor also takes the logits as a
list of per-sub-action arrays ``[(..., K_0), (..., K_1), ...]`` and concatenates them.
An optional boolean ``mask`` (flat, or a list like the logits; ``False`` = not
allowed) has Categorical's semantics per sub-action.

With ``l^{(j)}`` the logits and ``m^{(j)}`` the mask of sub-action ``j``:

.. math::

    p^{(j)}_k = \frac{m^{(j)}_k e^{l^{(j)}_k}}{\sum_c m^{(j)}_c e^{l^{(j)}_c}},\qquad
    \log p(x) = \sum_j \log p^{(j)}_{x_j}

Support: int64 vectors ``x`` ``(..., m)`` with ``0 <= x_j < K_j``; masked classes have
probability exactly 0 (never sampled, ``log_prob = -inf``).

Score: ``d log p(x) / d l^{(j)}_k = [k == x_j] - p^{(j)}_k``; ``score(x)["logits"]`` is flat
like ``logits``, ``(n, ..., sum K)``; :meth:`MultiCategorical.split` cuts any such
array into the per-sub-action views.  Entropy and ``KL(p||q)`` are the sums of the
sub-actions' categorical entropies / KLs.

The per-sub-action tables (log-probabilities, probabilities, cumulative weights) are
those of :mod:`.categorical`, built by its ``tables`` on the sub-actions padded to
``K_max`` with masked classes; sampling (one Philox block per sub-action, in order:
sub-action ``j`` uses block ``j``) draws from them exactly as Categorical does, and the
entropy and the KL are Categorical's row maths on each sub-action's segment of the
flat logits.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import NamedTuple

import numpy as np

from .._engine import numpy as npb
from .._engine.dispatch import register
from .._engine.jit import jitable
from ..distribution import Distribution, Family, as_float_param, common_dtype
from . import categorical as _cat


class MultiCategoricalParams(NamedTuple):
    logits: np.ndarray  # (B, sum K) float32/64
    mask: np.ndarray  # (B, sum K) bool
    offsets: np.ndarray  # (m + 1,) int64: sub-action j is logits[:, offsets[j]:offsets[j+1]]
    # Categorical tables of the padded sub-actions, row b * m + j, K_max columns:
    log_probs: np.ndarray  # (B * m, K_max) float64, -inf where masked or padding
    probs: np.ndarray  # (B * m, K_max) float64, exactly 0 where masked or padding
    cdf: np.ndarray  # (B * m, K_max) float64, cumulative weights, +inf from the last on
    total: np.ndarray  # (B * m,) float64, the rows' total weights


class MultiCategoricalScores(NamedTuple):
    logits: np.ndarray  # (n_atoms, sum K)


# --------------------------------------------------------------------------- scalar maths
@jitable
def _draw(p, row, st, j):
    """Sub-action ``j`` (table row ``row``) from the atom's Philox block ``j``."""
    return _cat._draw_table(p.cdf, p.total, row, _cat._uniform(st, j))


@jitable
def _write_score(p, row, k, i, s, lo, hi):
    """Categorical's score ``onehot(k) - probs`` into ``s.logits[i, lo:hi]``."""
    for c in range(hi - lo):
        s.logits[i, lo + c] = -p.probs[row, c]
    s.logits[i, lo + k] += 1.0


class scalar:
    """Per-atom (one draw of all sub-actions) entry points compiled for CPU and CUDA."""

    @staticmethod
    @jitable
    def sample1(p, b, st, x, i):
        m = p.offsets.shape[0] - 1
        for j in range(m):
            x[i, j] = _draw(p, b * m + j, st, j)

    @staticmethod
    @jitable
    def log_prob1(p, b, x, i):
        m = p.offsets.shape[0] - 1
        acc = 0.0
        for j in range(m):
            acc += p.log_probs[b * m + j, x[i, j]]
        return acc

    @staticmethod
    @jitable
    def score1(p, b, x, i, s):
        m = p.offsets.shape[0] - 1
        for j in range(m):
            _write_score(p, b * m + j, x[i, j], i, s, p.offsets[j], p.offsets[j + 1])

    @staticmethod
    @jitable
    def sample_score1(p, b, st, x, i, s):
        m = p.offsets.shape[0] - 1
        acc = 0.0
        for j in range(m):
            row = b * m + j
            k = _draw(p, row, st, j)
            x[i, j] = k
            _write_score(p, row, k, i, s, p.offsets[j], p.offsets[j + 1])
            acc += p.log_probs[row, k]
        return acc

    @staticmethod
    @jitable
    def entropy1(p, b):
        m = p.offsets.shape[0] - 1
        acc = 0.0
        for j in range(m):
            acc += _cat._entropy_row(p.logits, p.mask, b, p.offsets[j], p.offsets[j + 1])
        return acc

    @staticmethod
    @jitable
    def kl1(p, q, b):
        m = p.offsets.shape[0] - 1
        acc = 0.0
        for j in range(m):
            acc += _cat._kl_row(p.logits, p.mask, q.logits, q.mask, b, p.offsets[j],
                                p.offsets[j + 1])
        return acc


# --------------------------------------------------------------------------- numpy baseline
class vectorised:
    """The same maths on whole arrays (``backend="numpy"``), one sub-action at a time."""

    @staticmethod
    def _draw(p, key, n_atoms, B):
        atoms, b = npb.atoms_and_batch(n_atoms, B)
        st = npb.streams(key, atoms)
        m = p.offsets.shape[0] - 1
        x = np.empty((n_atoms, m), np.int64)
        for j in range(m):
            u, _ = npb.uniform(np.float64, st, j)
            x[:, j] = _cat.vectorised.draw(p.cdf, p.total, b * m + j, u)
        return b, x

    @staticmethod
    def _log_prob(p, b, x):
        m = p.offsets.shape[0] - 1
        acc = np.zeros(x.shape[0])
        for j in range(m):
            acc += p.log_probs[b * m + j, x[:, j]]
        return acc

    @staticmethod
    def _score(p, b, x):
        m = p.offsets.shape[0] - 1
        s = np.empty((x.shape[0], int(p.offsets[-1])))
        for j in range(m):
            lo, hi = int(p.offsets[j]), int(p.offsets[j + 1])
            s[:, lo:hi] = _cat.vectorised._score(p.probs, b * m + j, x[:, j])[:, :hi - lo]
        return {"logits": s}

    @staticmethod
    def sample(p, key, n_atoms, B, dtype):
        return vectorised._draw(p, key, n_atoms, B)[1]

    @staticmethod
    def log_prob(p, x, B):
        return vectorised._log_prob(p, np.arange(x.shape[0]) % B, x)

    @staticmethod
    def score(p, x, B):
        return vectorised._score(p, np.arange(x.shape[0]) % B, x)

    @staticmethod
    def sample_score(p, key, n_atoms, B, dtype):
        b, x = vectorised._draw(p, key, n_atoms, B)
        return x, vectorised._log_prob(p, b, x), vectorised._score(p, b, x)

    @staticmethod
    def _sum_sub_actions(p, per_row):
        m = p.offsets.shape[0] - 1
        per_row = per_row.reshape(-1, m)
        acc = np.zeros(per_row.shape[0])
        for j in range(m):
            acc += per_row[:, j]
        return acc

    @staticmethod
    def entropy(p):
        return vectorised._sum_sub_actions(
            p, _cat.vectorised.entropy_rows(p.log_probs, p.probs))

    @staticmethod
    def kl(p, q):
        o = p.offsets
        acc = np.zeros(p.logits.shape[0])
        for j in range(o.shape[0] - 1):
            seg = slice(int(o[j]), int(o[j + 1]))
            acc += _cat.vectorised.kl_rows(
                np.ascontiguousarray(p.logits[:, seg]), np.ascontiguousarray(p.mask[:, seg]),
                np.ascontiguousarray(q.logits[:, seg]), np.ascontiguousarray(q.mask[:, seg]))
        return acc


# --------------------------------------------------------------------------- family
def _prepare(flat: dict, nvec: tuple) -> dict:
    logits = flat["logits"].astype(np.float64)
    mask = flat["mask"]
    B, m, k_max = logits.shape[0], len(nvec), max(nvec)
    offsets = np.concatenate([[0], np.cumsum(nvec)]).astype(np.int64)
    padded = np.full((B, m, k_max), -np.inf)
    padded_mask = np.zeros((B, m, k_max), bool)
    for j, (lo, hi) in enumerate(zip(offsets[:-1], offsets[1:])):
        padded[:, j, : hi - lo] = logits[:, lo:hi]
        padded_mask[:, j, : hi - lo] = mask[:, lo:hi]
    allowed = (padded_mask & (padded > -np.inf)).any(axis=2)
    if not allowed.all():
        row, j = np.unravel_index(np.argmin(allowed), allowed.shape)
        raise ValueError(f"mask/logits allow no class of sub-action {j} in batch row {row} "
                         "(flat index): every sub-action needs at least one unmasked, "
                         "finite logit")
    padded, padded_mask = padded.reshape(B * m, k_max), padded_mask.reshape(B * m, k_max)
    # read-only like a Categorical's record: the same compiled kernels serve both
    padded.flags.writeable = padded_mask.flags.writeable = False
    _cat.check_rows(padded, padded_mask)
    tables = _cat.tables(padded, padded_mask)
    return {"offsets": offsets, "log_probs": tables["log_probs"], "probs": tables["probs"],
            "cdf": tables["cdf"], "total": tables["total"]}


def _prepare_without_nvec(flat: dict) -> dict:
    raise TypeError("MultiCategorical's family is bound to its nvec per distribution")


FAMILY = Family(
    name="MultiCategorical",
    params_cls=MultiCategoricalParams,
    scores_cls=MultiCategoricalScores,
    param_names=("logits",),
    param_event_ndims=(1,),
    prepare=_prepare_without_nvec,  # per distribution: _prepare with its nvec
    numpy_ops=vectorised,
    sample_event_shape=lambda p: (p.offsets.shape[0] - 1,),
    discrete=True,
)
register(MultiCategoricalParams, scalar)


def _check_nvec(nvec) -> tuple:
    arr = None if isinstance(nvec, (str, bytes)) else np.asarray(nvec)
    if arr is None or arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iu" \
            or (arr < 1).any():
        raise ValueError("nvec must be a non-empty 1-D sequence of positive ints (classes "
                         f"per sub-action), got {nvec!r}")
    return tuple(int(k) for k in arr)


def _concat_sub_actions(parts: list, name: str, convert) -> np.ndarray:
    """Broadcast the leading dims of per-sub-action arrays and concatenate them."""
    try:
        lead = np.broadcast_shapes(*(a.shape[:-1] for a in parts))
    except ValueError:
        raise ValueError(f"{name}: the leading (batch) dims of the sub-actions do not "
                         "broadcast: " + ", ".join(str(a.shape) for a in parts)) from None
    return np.concatenate([convert(np.broadcast_to(a, lead + a.shape[-1:])) for a in parts],
                          axis=-1)


class MultiCategorical(Distribution):
    """Independent categoricals with ``nvec = (K_0, ..., K_{m-1})`` classes (MultiDiscrete).

    Parameters
    ----------
    logits : list of array_like ``[(..., K_0), (..., K_1), ...]``, or one flat array
        ``(..., sum K)`` together with ``nvec``.  Leading dims broadcast to ``batch_shape``.
        ``-inf`` allowed (probability 0).
    mask : optional; a list like ``logits`` (``None`` entries allowed) or a flat bool
        array ``(..., sum K)``; ``False`` marks a class that may not be chosen.
    nvec : sequence of int, required with flat logits.
    backend : {"cpu", "cuda", "numpy"}

    Samples are int64 ``(n, *batch_shape, m)``; ``log_prob`` and ``entropy`` sum over the
    sub-actions.  ``score(x)["logits"]`` is flat ``(n, *batch_shape, sum K)``
    (``onehot(x_j) - p^{(j)}`` per sub-action); ``split`` gives the per-sub-action views.
    """

    family = FAMILY

    def __init__(self, logits, mask=None, *, nvec=None, backend: str = "cpu"):
        if nvec is None:
            if not isinstance(logits, (list, tuple)) or not logits:
                raise TypeError("logits must be a non-empty list of per-sub-action arrays "
                                "[(..., K_0), (..., K_1), ...], or a flat array with nvec=")
            parts = [as_float_param(a, f"logits[{j}]") for j, a in enumerate(logits)]
            for j, a in enumerate(parts):
                if a.ndim < 1 or a.shape[-1] < 1:
                    raise ValueError(f"logits[{j}] must have shape (..., K) with K >= 1, "
                                     f"got {a.shape}")
            nvec = tuple(a.shape[-1] for a in parts)
            dtype = common_dtype(parts, [False] * len(parts))
            flat = _concat_sub_actions(parts, "logits", lambda a: a.astype(dtype))
        else:
            nvec = _check_nvec(nvec)
            flat = logits
            shape = getattr(flat, "shape", None)
            shape = tuple(shape) if shape is not None else as_float_param(flat, "logits").shape
            if len(shape) < 1 or shape[-1] != sum(nvec):
                raise ValueError(f"logits must have shape (..., sum(nvec)) = (..., "
                                 f"{sum(nvec)}) for nvec={list(nvec)}, got {shape}")
        total = sum(nvec)
        mask_arr = self._flat_mask(mask, nvec)
        if mask_arr.shape[-1] != total:
            raise ValueError(f"mask has shape {mask_arr.shape}; its last dim must be "
                             f"sum(nvec) = {total} like logits")
        self.nvec = nvec
        self.family = replace(FAMILY, prepare=partial(_prepare, nvec=nvec))
        self._setup({"logits": flat}, {"mask": mask_arr}, backend=backend)
        self._offsets = np.concatenate([[0], np.cumsum(nvec)]).astype(int)

    @staticmethod
    def _flat_mask(mask, nvec: tuple) -> np.ndarray:
        if mask is None:
            return np.ones((sum(nvec),), dtype=bool)
        if isinstance(mask, (list, tuple)):
            if len(mask) != len(nvec):
                raise ValueError(f"mask is a list of {len(mask)} items; expected one per "
                                 f"sub-action ({len(nvec)}), None for no mask")
            parts = []
            for j, (mj, k) in enumerate(zip(mask, nvec)):
                mj = np.ones((k,), bool) if mj is None else np.asarray(mj)
                if mj.dtype != np.bool_:
                    raise TypeError(f"mask[{j}] must be a boolean array, got dtype {mj.dtype}")
                if mj.ndim < 1 or mj.shape[-1] != k:
                    raise ValueError(f"mask[{j}] has shape {mj.shape}; its last dim must be "
                                     f"K_{j} = {k} like logits[{j}]")
                parts.append(mj)
            return _concat_sub_actions(parts, "mask", lambda a: a)
        mask_arr = np.asarray(mask)
        if mask_arr.dtype != np.bool_:
            raise TypeError(f"mask must be a boolean array, got dtype {mask_arr.dtype}")
        if mask_arr.ndim < 1:
            raise ValueError("mask must have shape (..., sum(nvec))")
        return mask_arr

    def _check_support(self, x: np.ndarray) -> None:
        if x.size and ((x < 0).any() or (x >= np.asarray(self.nvec)).any()):
            raise ValueError(f"x holds class indices outside [0, K_j) for nvec={list(self.nvec)}")

    def kl(self, other: Distribution) -> np.ndarray:
        """KL(self || other), summed over the sub-actions; ``other`` needs the same nvec."""
        if isinstance(other, MultiCategorical) and other.nvec != self.nvec:
            raise ValueError(f"kl: nvec differ {list(self.nvec)} vs {list(other.nvec)}")
        return super().kl(other)

    def split(self, a) -> list:
        """Views of ``a[..., sum K]`` (logits, scores, gradients, probs) per sub-action."""
        o = self._offsets
        return [a[..., o[j]:o[j + 1]] for j in range(len(self.nvec))]

    @property
    def probs(self) -> np.ndarray:
        """Class probabilities, flat ``(*batch_shape, sum K)`` (exact zeros where masked)."""
        m, rec = len(self.nvec), self._record
        rows = rec.probs.reshape(self._B, m, -1)
        flat = np.concatenate([rows[:, j, :k] for j, k in enumerate(self.nvec)], axis=1)
        return flat.reshape(self.full_shape + (sum(self.nvec),)).astype(self.dtype)

    @property
    def mean(self) -> np.ndarray:
        """Mean of the concatenated one-hot encodings, i.e. :attr:`probs`."""
        return self.probs

    @property
    def mode(self) -> np.ndarray:
        """Most probable allowed class of every sub-action ``(*batch_shape, m)`` (int64)."""
        m = len(self.nvec)
        best = np.argmax(self._record.log_probs, axis=1).reshape(self._B, m)
        return best.reshape(self.full_shape + (m,))

    @property
    def logits(self) -> np.ndarray:
        """The flat logits ``(*batch_shape_as_passed, sum K)``."""
        return self._user_params["logits"]

    @property
    def n_sub(self) -> int:
        """Number of sub-actions ``m``."""
        return len(self.nvec)

