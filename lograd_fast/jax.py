r"""JAX adapter: ``log_prob`` of a lograd_fast distribution as a differentiable JAX function.

``import lograd_fast.jax as lfj`` (needs ``jax``; the core package never imports it)::

    lp = lfj.log_prob(lf.Categorical, actions, logits=logits)      # (*lead, *batch_shape)
    loss = -(advantages * lp).mean()
    grads = jax.grad(loss_fn)(params)                              # closed-form scores

The values come from lograd_fast's CPU kernels through :func:`jax.pure_callback`
(so the function works under ``jit``, ``vmap`` (sequentially) and ``grad``), and the
reverse-mode rule (:func:`jax.custom_vjp`) is the closed-form score
``d log p(x) / d param`` reduced over broadcast dims: ``cotangent_param =
sum(g * score)``.  Only first-order reverse mode is defined; ``x`` gets a zero
cotangent (the score-function estimator differentiates the parameters, not the
samples).  The dtype follows the parameters (float32 unless ``jax_enable_x64``).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import Distribution as _LfDistribution

__all__ = ["log_prob", "normal_log_prob", "categorical_log_prob"]


@functools.lru_cache(maxsize=256)
def _layout(dist_class: type, kwargs: tuple, shapes: tuple, dtype: str):
    """Shapes of one call, from a stand-in distribution with zero parameters:
    ``(core, batch_shape, event_ndims, {name: full_shape + tail})``."""
    names = dist_class.family.param_names
    d = dist_class(**{k: np.zeros(s, dtype) for k, s in zip(names, shapes)}, **dict(kwargs))
    core = tuple(d._x_shape(None))
    return core, tuple(d.batch_shape), d.event_ndims, {
        k: tuple(d.full_shape) + tuple(d._param_tail[k]) for k in names}


def _sum_to(a: jax.Array, shape: tuple) -> jax.Array:
    """Sum ``a`` over the axes along which an array of ``shape`` was broadcast."""
    lead = a.ndim - len(shape)
    a = a.sum(axis=tuple(range(lead))) if lead else a
    axes = tuple(i for i, k in enumerate(shape) if k == 1 and a.shape[i] != 1)
    return a.sum(axis=axes, keepdims=True) if axes else a


@functools.lru_cache(maxsize=256)
def _make(dist_class: type, kwargs: tuple):
    names = dist_class.family.param_names
    extra = dict(kwargs)

    def host(x, params, with_scores):
        d = dist_class(**dict(zip(names, params)), **extra)
        core = tuple(d._x_shape(None))
        x = np.asarray(x)
        lead = x.shape[: x.ndim - len(core)]
        flat = x.reshape((math.prod(lead),) + core)
        if not with_scores:
            return np.asarray(d.log_prob(flat)).reshape(lead + tuple(d.batch_shape))
        lp, s = d._log_prob_and_score(flat)  # one validation of x, one pass per row
        lp = np.asarray(lp).reshape(lead + tuple(d.batch_shape))
        return (lp,) + tuple(s[k].reshape(lead + s[k].shape[1:]) for k in names)

    def shapes(x, params):
        dtype = jnp.result_type(*params)
        if dtype not in (jnp.float32, jnp.float64):
            raise TypeError(f"parameters must be float32 or float64, got {dtype}")
        core, batch, _, score_shapes = _layout(dist_class, kwargs,
                                               tuple(tuple(p.shape) for p in params),
                                               np.dtype(dtype).name)
        k = len(core)
        if x.ndim < k or tuple(x.shape[x.ndim - k:]) != core:
            raise ValueError(f"x has shape {tuple(x.shape)}; expected (*lead, *{core})")
        lead = tuple(x.shape[: x.ndim - k])
        lp = jax.ShapeDtypeStruct(lead + batch, dtype)
        scores = tuple(jax.ShapeDtypeStruct(lead + score_shapes[n], dtype) for n in names)
        return lp, scores

    def call(x, params, with_scores):
        lp, scores = shapes(x, params)
        result = (lp,) + scores if with_scores else lp
        return jax.pure_callback(functools.partial(host, with_scores=with_scores), result,
                                 x, params, vmap_method="sequential")

    @jax.custom_vjp
    def f(x, *params):
        return call(x, params, False)

    def fwd(x, *params):
        lp, *scores = call(x, params, True)
        return lp, (scores, tuple(p.shape for p in params))

    def bwd(res, g):
        scores, param_shapes = res
        _, _, event_ndims, _ = _layout(dist_class, kwargs, param_shapes,
                                       np.dtype(g.dtype).name)
        g = g.reshape(g.shape + (1,) * event_ndims)
        grads = []
        for s, shape in zip(scores, param_shapes):
            gs = g.reshape(g.shape + (1,) * (s.ndim - g.ndim)) * s
            grads.append(_sum_to(gs, shape).reshape(shape))
        return (None, *grads)

    f.defvjp(fwd, bwd)
    return f


def log_prob(dist_class: type[_LfDistribution], x: Any, **params: Any) -> jax.Array:
    """``dist_class(**params).log_prob(x)`` as a differentiable JAX function.

    Parameters
    ----------
    dist_class : a lograd_fast family (``lf.Normal``, ``lf.Categorical``, ...)
    x : array ``(*lead, *batch_shape, *event_shape)``
        Any number of leading sample dims.
    **params : the family's unconstrained parameters (JAX arrays, differentiated)
        and other constructor arguments (``event_ndims``, ``mask``: static,
        hashable values or numpy arrays).

    Returns
    -------
    jax.Array ``(*lead, *batch_shape)`` in the parameters' dtype.
    """
    if not (isinstance(dist_class, type) and issubclass(dist_class, _LfDistribution)):
        raise TypeError(f"dist_class must be a lograd_fast distribution class, got "
                        f"{dist_class!r}")
    names = dist_class.family.param_names
    missing = [k for k in names if k not in params]
    if missing:
        raise TypeError(f"{dist_class.__name__} needs the parameters {missing}")
    values = [jnp.asarray(params.pop(k)) for k in names]
    for name, v in zip(names, values):
        if not jnp.issubdtype(v.dtype, jnp.floating):
            raise TypeError(f"{name} must be a float array, got {v.dtype}")
    dtype = jnp.result_type(*values)
    values = [v.astype(dtype) for v in values]
    kwargs = tuple(sorted((k, _hashable(v)) for k, v in params.items()))
    return _make(dist_class, kwargs)(jnp.asarray(x), *values)


class _Frozen:
    """A numpy array (e.g. a mask) as a hashable, comparable static argument."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = np.array(a)
        self.a.flags.writeable = False
        self._key = (self.a.shape, self.a.dtype.str, self.a.tobytes())

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Frozen) and self._key == other._key

    def __array__(self, dtype=None, copy=None):
        return self.a if dtype is None else self.a.astype(dtype)


def _hashable(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return _Frozen(np.asarray(v))


def normal_log_prob(x: Any, loc: Any, log_scale: Any, event_ndims: int = 0) -> jax.Array:
    """``log N(x; loc, exp(log_scale)**2)`` (summed over ``event_ndims`` trailing dims)."""
    from . import Normal

    return log_prob(Normal, x, loc=loc, log_scale=log_scale, event_ndims=event_ndims)


def categorical_log_prob(x: Any, logits: Any, mask: Any = None) -> jax.Array:
    """``log softmax(logits)[x]`` over the last axis (masked classes excluded)."""
    from . import Categorical

    return log_prob(Categorical, x, logits=logits, mask=mask)
