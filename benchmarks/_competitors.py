"""The same jobs written without lograd_fast, per family and operation.

The formulas live in ``lograd_fast/bench/competitors.py`` (the headline table uses them
too); this module only binds them to a benchmark's inputs.  Families without
hand-written competitors are compared with the numpy baseline alone.

Imported lazily: asv imports every module of this directory while discovering
benchmarks, also against older commits that have no ``lograd_fast.bench``.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np

IMPLS = ("lograd_fast", "numpy_baseline", "numpy", "torch", "torch_autograd", "jax")
WRITTEN_FOR = ("Normal", "Categorical")  # families with idiomatic numpy/torch/JAX versions


def _headline():
    from lograd_fast.bench import competitors

    return competitors


def torch_module():
    return _headline().import_torch(numba.get_num_threads())


def jax_module():
    return _headline().import_jax()


def _logits(params: dict, kwargs: dict) -> np.ndarray:
    logits = params["logits"]
    mask = kwargs.get("mask")
    if mask is None:
        return logits
    return np.where(np.broadcast_to(mask, logits.shape), logits, -np.inf).astype(logits.dtype)


def competitor(family: str, impl: str, op: str, params: dict, kwargs: dict, n: int,
               x: np.ndarray | None) -> Callable[[], object] | None:
    """A no-argument callable doing ``op`` with ``impl``, or None when there is none
    (library not installed, family not written, autograd for a non-score op)."""
    if family not in WRITTEN_FOR:
        return None
    if impl == "torch_autograd" and op not in ("score", "sample_and_score"):
        return None
    if impl == "numpy":
        return _numpy(family, op, params, kwargs, n, x)
    if impl in ("torch", "torch_autograd"):
        torch = torch_module()
        if torch is None:
            return None
        return _torch(torch, family, op, params, kwargs, n, x, impl == "torch_autograd")
    if impl == "jax":
        jax = jax_module()
        if jax is None:
            return None
        return _jax(jax, family, op, params, kwargs, n, x)
    raise ValueError(f"unknown competitor {impl!r}")


def _numpy(family, op, params, kwargs, n, x):
    H = _headline()
    rng = np.random.default_rng(0)
    if family == "Normal":
        loc, log_scale = params["loc"], params["log_scale"]
        return {"sample": lambda: H.numpy_normal_sample(rng, loc, log_scale, n),
                "log_prob": lambda: H.numpy_normal_log_prob(loc, log_scale, x),
                "score": lambda: H.numpy_normal_score(loc, log_scale, x),
                "sample_and_score":
                    lambda: H.numpy_normal_sample_and_score(rng, loc, log_scale, n)}[op]
    logits = _logits(params, kwargs)
    return {"sample": lambda: H.numpy_categorical_sample(rng, logits, n),
            "log_prob": lambda: H.numpy_categorical_log_prob(logits, x),
            "score": lambda: H.numpy_categorical_score(logits, x),
            "sample_and_score": lambda: H.numpy_categorical_sample_and_score(rng, logits, n)}[op]


def _torch(torch, family, op, params, kwargs, n, x, autograd):
    H = _headline()
    tx = None if x is None or op in ("sample", "sample_and_score") else torch.from_numpy(x)
    if family == "Normal":
        loc, log_scale = (torch.from_numpy(params[k]) for k in ("loc", "log_scale"))
        return lambda: H.torch_normal(torch, op, loc, log_scale, n, x=tx, autograd=autograd)
    logits = torch.from_numpy(_logits(params, kwargs))
    return lambda: H.torch_categorical(torch, op, logits, n, x=tx, autograd=autograd)


def _jax(jax, family, op, params, kwargs, n, x):
    H = _headline()
    jnp = jax.numpy
    key = jax.random.PRNGKey(0)
    jx = None if x is None or op in ("sample", "sample_and_score") else jnp.asarray(x)
    if family == "Normal":
        f = H.jax_normal_fn(jax, op, n)
        loc, log_scale = (jnp.asarray(params[k]) for k in ("loc", "log_scale"))
        return lambda: H.jax_block(f(key, loc, log_scale, jx))
    f = H.jax_categorical_fn(jax, op, n)
    logits = jnp.asarray(_logits(params, kwargs))
    return lambda: H.jax_block(f(key, logits, jx))
