"""The result of every estimator (:class:`Estimate`) and the map between a
distribution's parameters and the flat coordinates the kernels accumulate."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..distribution import Distribution


@dataclass
class Estimate:
    """A gradient estimate: per-parameter mean, single-term variance, standard error.

    ``grad[p]``, ``var[p]``, ``stderr[p]`` have the shape of parameter ``p`` (for the
    batched functions: ``(*R, *shape)``).  ``var`` is the sample variance (ddof=1)
    of the ``n`` terms whose mean is ``grad``, ``stderr = sqrt(var / n)``.  ``terms``
    (on request, rewards path only) holds the terms themselves: ``(n, *shape)``.
    ``extra`` holds estimator-specific values (e.g. the baseline used).
    """

    grad: dict[str, np.ndarray]
    var: dict[str, np.ndarray]
    stderr: dict[str, np.ndarray]
    n: int
    estimator: str = "score_function"
    baseline: Any = None
    extra: dict = field(default_factory=dict)
    terms: dict[str, np.ndarray] | None = None

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}: {np.array2string(np.asarray(v), precision=4)} "
                          f"± {np.array2string(np.asarray(self.stderr[k]), precision=2)}"
                          for k, v in self.grad.items())
        return f"Estimate({self.estimator}, baseline={self.baseline!r}, n={self.n}, {parts})"


def _coords(d: Distribution) -> tuple[np.ndarray, list, list]:
    """Map every score entry of one draw to its parameter coordinate.

    Returns (coord, per-parameter (name, shape, offset), per-field sizes)."""
    coord, layout, sizes = [], [], []
    offset = 0
    for name in d.family.param_names:
        shape = d.params[name].shape
        tail = d._param_tail[name]
        idx = np.arange(math.prod(shape), dtype=np.int64).reshape(shape)
        coord.append(offset + np.broadcast_to(idx, d.full_shape + tail).ravel())
        sizes.append(d._B * math.prod(tail))
        layout.append((name, shape, offset))
        offset += idx.size
    return np.concatenate(coord), layout, sizes


def _n_coords(layout: list) -> int:
    return layout[-1][2] + math.prod(layout[-1][1])


def _split(vec: np.ndarray, layout: list, dtype: np.dtype) -> dict:
    """A flat (..., P) vector of coordinates -> {param: (..., *shape)}."""
    lead = vec.shape[:-1]
    return {name: vec[..., off:off + math.prod(shape)].reshape(lead + shape).astype(dtype)
            for name, shape, off in layout}


def _result(grad: np.ndarray, var: np.ndarray, n: int, layout: list, dtype, **kw) -> Estimate:
    var = np.maximum(var, 0.0)
    return Estimate(_split(grad, layout, dtype), _split(var, layout, dtype),
                    _split(np.sqrt(var / n), layout, dtype), n, **kw)


def _grad_var(sum_t: np.ndarray, sum_t2: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    grad = sum_t / n
    return grad, np.maximum(sum_t2 - sum_t * grad, 0.0) / (n - 1)
