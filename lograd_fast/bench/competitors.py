"""What users would write instead of lograd_fast: idiomatic numpy (``numpy.random.Generator``
and the closed-form formulas, vectorised), torch.distributions (analytic and autograd
scores, ``torch.compile``) and JAX (``jax.random``, ``jit``).

The headline cases (:mod:`.cases`) and the asv / pytest-benchmark suites (``benchmarks/``)
time the same functions.  torch and JAX are imported only when asked for."""

from __future__ import annotations

import math

import numpy as np

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def import_torch(threads: int):
    try:
        import torch
    except Exception:
        return None
    torch.set_num_threads(threads)
    return torch


def import_jax():
    try:
        import jax

        jax.config.update("jax_enable_x64", True)
        import jax.numpy  # noqa: F401
    except Exception:
        return None
    return jax


def numpy_normal_sample(rng, loc, log_scale, n):
    z = rng.standard_normal((n,) + loc.shape, dtype=loc.dtype)
    return loc + np.exp(log_scale) * z


def numpy_normal_log_prob(loc, log_scale, x):
    z = (x - loc) * np.exp(-log_scale)
    return -0.5 * z * z - log_scale - HALF_LOG_2PI


def numpy_normal_score(loc, log_scale, x):
    inv_scale = np.exp(-log_scale)
    z = (x - loc) * inv_scale
    return {"loc": z * inv_scale, "log_scale": z * z - 1.0}


def numpy_normal_sample_and_score(rng, loc, log_scale, n, out=None):
    """Draw, log-prob and scores; with ``out=(x, lp, {loc, log_scale})`` in place."""
    scale = np.exp(log_scale)
    if out is None:
        z = rng.standard_normal((n,) + loc.shape, dtype=loc.dtype)
        x = loc + scale * z
        lp = -0.5 * z * z - log_scale - HALF_LOG_2PI
        return x, lp, {"loc": z / scale, "log_scale": z * z - 1.0}
    x, lp, s = out
    z = s["log_scale"]
    rng.standard_normal(out=z, dtype=z.dtype)
    np.multiply(z, 1.0 / scale, out=s["loc"])
    np.multiply(z, scale, out=x)
    x += loc
    np.multiply(z, z, out=lp)
    lp *= -0.5
    lp -= log_scale + HALF_LOG_2PI
    z *= z
    z -= 1.0
    return x, lp, s


def numpy_normal_score_function_loo(rng, loc, log_scale, reward, n):
    """REINFORCE with the leave-one-out baseline for a Normal, as a numpy user writes it:
    ``n`` draws as an ``(n, *loc.shape)`` array, ``reward`` (vectorised over the last
    axis) of each draw, the per-draw terms ``(r_i - b_i) score_i`` with
    ``b_i = (sum_j r_j - r_i) / (n - 1)``; returns ``(grad, var)`` dicts (mean and
    ``ddof=1`` variance of the terms over the draws)."""
    scale = np.exp(log_scale)
    z = rng.standard_normal((n,) + loc.shape, dtype=loc.dtype)
    r = reward(loc + scale * z)
    advantage = (r - (r.sum() - r) / (n - 1)).reshape((n,) + (1,) * loc.ndim)
    terms = {"loc": advantage * (z / scale), "log_scale": advantage * (z * z - 1.0)}
    return ({k: t.mean(axis=0) for k, t in terms.items()},
            {k: t.var(axis=0, ddof=1) for k, t in terms.items()})


def numpy_log_softmax(logits):
    top = logits.max(axis=-1, keepdims=True)
    return logits - (top + np.log(np.exp(logits - top).sum(axis=-1, keepdims=True)))


def numpy_categorical_sample(rng, logits, n=None):
    """Inverse-CDF draws of every row (shape ``(n, *batch)``, or ``batch`` for n=None)."""
    cdf = np.cumsum(np.exp(numpy_log_softmax(logits)), axis=-1)
    lead = () if n is None else (n,)
    u = rng.random(lead + logits.shape[:-1] + (1,)) * cdf[..., -1:]
    return np.minimum((cdf <= u).sum(axis=-1), logits.shape[-1] - 1)


def numpy_categorical_log_prob(logits, x):
    log_probs = np.broadcast_to(numpy_log_softmax(logits), x.shape + logits.shape[-1:])
    return np.take_along_axis(log_probs, x[..., None], axis=-1)[..., 0]


def numpy_categorical_score(logits, x):
    probs = np.exp(numpy_log_softmax(logits))
    score = np.broadcast_to(-probs, x.shape + logits.shape[-1:]).copy()
    np.put_along_axis(score, x[..., None], np.take_along_axis(score, x[..., None], -1) + 1.0, -1)
    return score


def numpy_categorical_sample_and_score(rng, logits, n=None):
    log_probs = numpy_log_softmax(logits)
    probs = np.exp(log_probs)
    cdf = np.cumsum(probs, axis=-1)
    lead = () if n is None else (n,)
    u = rng.random(lead + logits.shape[:-1] + (1,)) * cdf[..., -1:]
    x = np.minimum((cdf <= u).sum(axis=-1), logits.shape[-1] - 1)
    lp = np.take_along_axis(np.broadcast_to(log_probs, x.shape + logits.shape[-1:]),
                            x[..., None], axis=-1)[..., 0]
    score = np.broadcast_to(-probs, x.shape + logits.shape[-1:]).copy()
    np.put_along_axis(score, x[..., None], np.take_along_axis(score, x[..., None], -1) + 1.0, -1)
    return x, lp, score


def numpy_rloo(rewards, scores):
    """Idiomatic numpy RLOO: leave-one-out baseline per replicate, mean and variance.

    ``rewards`` ``(R, N)``, ``scores`` ``(R, N, D)`` -> ``(grad, var)``, each ``(R, D)``."""
    n = rewards.shape[-1]
    adv = rewards - (rewards.sum(axis=-1, keepdims=True) - rewards) / (n - 1)
    terms = adv[..., None] * scores
    return terms.mean(axis=-2), terms.var(axis=-2, ddof=1)


def torch_normal(torch, op, loc, log_scale, n, x=None, autograd=False):
    """``op`` with torch.distributions.Normal: analytic scores, or autograd w.r.t.
    per-draw copies of the parameters (so that the gradient *is* the per-draw score)."""
    D = torch.distributions
    if autograd and op in ("score", "sample_and_score"):
        shape = (n,) + tuple(loc.shape)
        loc_e = loc.expand(shape).clone().requires_grad_()
        ls_e = log_scale.expand(shape).clone().requires_grad_()
        dist = D.Normal(loc_e, ls_e.exp())
        if x is None:
            x = dist.sample()
        lp = dist.log_prob(x)
        lp.sum().backward()
        scores = {"loc": loc_e.grad, "log_scale": ls_e.grad}
        return (x, lp.detach(), scores) if op == "sample_and_score" else scores
    with torch.no_grad():
        scale = log_scale.exp()
        dist = D.Normal(loc, scale)
        if op == "sample":
            return dist.sample((n,))
        if x is None:
            x = dist.sample((n,))
        if op == "log_prob":
            return dist.log_prob(x)
        z = (x - loc) / scale
        scores = {"loc": z / scale, "log_scale": z * z - 1.0}
        return scores if op == "score" else (x, dist.log_prob(x), scores)


def torch_categorical(torch, op, logits, n=None, x=None, autograd=False):
    """``op`` with torch.distributions.Categorical (analytic or autograd score)."""
    D = torch.distributions
    shape = () if n is None else (n,)
    K = logits.shape[-1]
    if autograd and op in ("score", "sample_and_score"):
        leaf = logits.detach().expand(shape + tuple(logits.shape)).clone().requires_grad_()
        dist = D.Categorical(logits=leaf)
        if x is None:
            x = dist.sample()
        lp = dist.log_prob(x)
        lp.sum().backward()  # each draw's log-prob depends on its own copy of the logits
        return (x, lp.detach(), leaf.grad) if op == "sample_and_score" else leaf.grad
    with torch.no_grad():
        dist = D.Categorical(logits=logits)
        if op == "sample":
            return dist.sample(shape)
        if x is None:
            x = dist.sample(shape)
        if op == "log_prob":
            return dist.log_prob(x)
        score = torch.nn.functional.one_hot(x, K).to(logits.dtype) - dist.probs
        return score if op == "score" else (x, dist.log_prob(x), score)


def torch_categorical_fn(torch):
    """Sample + log_prob + score as one function for ``torch.compile`` (inverse CDF)."""

    def f(logits):
        log_probs = torch.log_softmax(logits, dim=-1)
        probs = log_probs.exp()
        cdf = probs.cumsum(-1)
        u = torch.rand(logits.shape[:-1] + (1,), dtype=logits.dtype) * cdf[..., -1:]
        x = (cdf <= u).sum(-1).clamp_max(logits.shape[-1] - 1)
        lp = log_probs.gather(-1, x[..., None])[..., 0]
        s = torch.nn.functional.one_hot(x, logits.shape[-1]).to(logits.dtype) - probs
        return x, lp, s

    return f


def jax_normal_fn(jax, op, n):
    """A jitted ``f(key, loc, log_scale, x)`` doing ``op`` (``x`` unused when sampling)."""
    jnp = jax.numpy

    def f(key, loc, log_scale, x):
        scale = jnp.exp(log_scale)
        if op in ("sample", "sample_and_score"):
            z = jax.random.normal(key, (n,) + loc.shape, loc.dtype)
            x = loc + scale * z
            if op == "sample":
                return x
        else:
            z = (x - loc) / scale
        lp = -0.5 * z * z - log_scale - HALF_LOG_2PI
        scores = {"loc": z / scale, "log_scale": z * z - 1.0}
        return {"log_prob": lp, "score": scores, "sample_and_score": (x, lp, scores)}[op]

    return jax.jit(f)


def jax_categorical_fn(jax, op, n=None):
    """A jitted ``f(key, logits, x)`` doing ``op`` (Gumbel-max sampling, ``jax.random``)."""
    jnp = jax.numpy

    def f(key, logits, x):
        K = logits.shape[-1]
        if op in ("sample", "sample_and_score"):
            shape = logits.shape[:-1] if n is None else (n,) + logits.shape[:-1]
            x = jax.random.categorical(key, logits, axis=-1, shape=shape)
            if op == "sample":
                return x
        log_probs = jax.nn.log_softmax(logits, axis=-1)
        log_probs = jnp.broadcast_to(log_probs, x.shape + (K,))
        lp = jnp.take_along_axis(log_probs, x[..., None], axis=-1)[..., 0]
        score = jax.nn.one_hot(x, K, dtype=logits.dtype) - jnp.exp(log_probs)
        return {"log_prob": lp, "score": score, "sample_and_score": (x, lp, score)}[op]

    return jax.jit(f)


def jax_block(out):
    import jax

    return jax.block_until_ready(out)
