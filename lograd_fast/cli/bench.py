"""``lograd-fast bench``: the headline speed table, every ratio measured side by side.

Each headline case times a few *contenders* doing the same job (lograd_fast's CPU
kernels, the pure-numpy baseline ``backend="numpy"``, idiomatic numpy with
``numpy.random.Generator``, and torch / JAX when they are installed).  The
contenders of a case run round-robin in one process, ``--repeats`` times each,
and the minimum time of each is kept, so a burst of load from another process
hits every contender alike.  Ratios are ``time(other) / time(lograd_fast)``:
above 1 means lograd_fast is faster.

``--out FILE.md`` writes the table as Markdown with the machine (CPU model,
cores), thread count and versions; ``benchmarks/update_readme.py`` puts it in
the README.  Only the public API of lograd_fast is used here.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

NAME = "bench"
HELP = "time the headline cases against the numpy baseline (and torch/JAX when installed)"

BASELINE = "numpy baseline"
LOGRAD = "lograd_fast"
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def add_arguments(parser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and few repeats (checks that everything runs)")
    parser.add_argument("--out", metavar="FILE.md", help="also write the table as Markdown")
    parser.add_argument("--json", metavar="FILE.json", help="also write every timing as JSON")
    parser.add_argument("--threads", type=int, default=None,
                        help="Numba (and torch) threads (default: min(2, cores))")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed repeats per contender, the minimum is kept "
                             "(default 5, quick 2)")
    parser.add_argument("--cases", default=None,
                        help="comma-separated case ids to run (default: all); "
                             f"one of {', '.join(c for c in CASE_IDS)}")
    parser.add_argument("--no-optional", action="store_true",
                        help="leave out torch and JAX even when installed")


# ----------------------------------------------------------------------------- timing
def best_times(contenders: dict[str, Callable[[], object]], repeats: int,
               budget_s: float = 20.0, calls: int = 1) -> dict[str, float]:
    """Seconds per call of each contender: the minimum over ``repeats`` rounds.

    Contenders run round-robin after one untimed warm-up call each (compilation,
    page faults of first use).  A contender whose rounds have cost more than
    ``budget_s`` seconds stops after two rounds.  ``calls`` calls are timed per
    round and averaged (for calls of microseconds).
    """
    for fn in contenders.values():
        fn()
    best = {name: math.inf for name in contenders}
    spent = dict.fromkeys(contenders, 0.0)
    done = dict.fromkeys(contenders, 0)
    for _ in range(repeats):
        for name, fn in contenders.items():
            if done[name] >= 2 and spent[name] > budget_s:
                continue
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            dt = time.perf_counter() - t0
            spent[name] += dt
            done[name] += 1
            best[name] = min(best[name], dt / calls)
    return best


@dataclass
class Row:
    """One line of the table: the contenders' times for one case."""

    id: str
    title: str
    size: str
    times: dict[str, float]
    target: str
    met: bool | None
    primary: str = LOGRAD
    baseline: str | None = BASELINE
    unit: str = "s"
    note: str = ""
    extra: dict = field(default_factory=dict)

    def ratio(self, other: str) -> float:
        return self.times[other] / self.times[self.primary]


@dataclass
class Context:
    quick: bool
    repeats: int
    threads: int
    optional: bool
    torch: object = None
    jax: object = None
    bandwidth: dict = field(default_factory=dict)

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full


# ----------------------------------------------------------------------------- optional libs
def _import_torch(threads: int):
    try:
        import torch
    except Exception:
        return None
    torch.set_num_threads(threads)
    return torch


def _import_jax():
    try:
        import jax

        jax.config.update("jax_enable_x64", True)
        import jax.numpy  # noqa: F401
    except Exception:
        return None
    return jax


# ----------------------------------------------------------------------------- idiomatic numpy
# What a user writes without lograd_fast: numpy.random.Generator draws and the
# closed-form formulas, vectorised.  ``benchmarks/`` times these per operation too.
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
    rng.standard_normal(out=z)
    np.multiply(z, 1.0 / scale, out=s["loc"])
    np.multiply(z, scale, out=x)
    x += loc
    np.multiply(z, z, out=lp)
    lp *= -0.5
    lp -= log_scale + HALF_LOG_2PI
    z *= z
    z -= 1.0
    return x, lp, s


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


# ----------------------------------------------------------------------------- torch
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


# ----------------------------------------------------------------------------- JAX
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


# ----------------------------------------------------------------------------- bandwidth
def measure_bandwidth(ctx: Context) -> dict:
    """This machine's memory bandwidth, from numpy (one thread) on arrays far beyond L3."""
    n = ctx.size(2**25, 2**21)  # 256 MiB per float64 array (quick: 16 MiB)
    a = np.full(n, 1.5)
    b = np.empty_like(a)
    b.fill(0.0)
    t = best_times({"copy": lambda: np.copyto(b, a), "fill": lambda: b.fill(2.5)},
                   max(ctx.repeats, 3))
    return {"copy_GBps": 2 * a.nbytes / t["copy"] / 1e9,  # read + write
            "fill_GBps": a.nbytes / t["fill"] / 1e9, "array_MiB": a.nbytes / 2**20}


# ----------------------------------------------------------------------------- cases
def _fmt_pow2(n: int) -> str:
    k = int(round(math.log2(n))) if n > 0 else 0
    return f"2^{k}" if 2**k == n else f"{n}"


def _normal_setup(ctx, dtype=np.float64):
    import lograd_fast as lf

    D = 8
    n = ctx.size(2**24, 2**16) // D
    loc = np.linspace(-1.0, 1.0, D).astype(dtype)
    log_scale = np.linspace(-0.5, 0.5, D).astype(dtype)
    cpu = lf.Normal(loc, log_scale)
    base = lf.Normal(loc, log_scale, backend="numpy")
    return lf, D, n, loc, log_scale, cpu, base


def _normal_out(n, D, dtype):
    return (np.empty((n, D), dtype), np.empty((n, D), dtype),
            {"loc": np.empty((n, D), dtype), "log_scale": np.empty((n, D), dtype)})


def case_normal_out(ctx: Context) -> Row:
    lf, D, n, loc, log_scale, cpu, base = _normal_setup(ctx)
    out = _normal_out(n, D, np.float64)
    out_np = _normal_out(n, D, np.float64)
    rng = np.random.default_rng(0)
    fns = {
        LOGRAD: lambda: cpu.sample_and_score(n, seed=1, out=out),
        BASELINE: lambda: base.sample_and_score(n, seed=1, out=out),
        "numpy Generator": lambda: numpy_normal_sample_and_score(rng, loc, log_scale, n, out_np),
    }
    fns.update(_torch_jax_normal(ctx, loc, log_scale, n))
    times = best_times(fns, ctx.repeats)
    written = out[0].nbytes + out[1].nbytes + sum(v.nbytes for v in out[2].values())
    gbps = written / times[LOGRAD] / 1e9
    bw = ctx.bandwidth
    frac = gbps / bw["fill_GBps"] if bw else float("nan")
    met = times[BASELINE] / times[LOGRAD] >= 6.0
    if "torch (analytic)" in times:
        met = met and times["torch (analytic)"] / times[LOGRAD] >= 3.0
    note = (f"writes {written / (n * D):.0f} B/element: {gbps:.1f} GB/s = {frac:.0%} of "
            f"numpy's one-thread fill bandwidth ({bw.get('fill_GBps', float('nan')):.1f} GB/s)")
    return Row("normal-out", "Normal sample_and_score, out= buffers",
               f"n·D = {_fmt_pow2(n * D)}, D={D}", times,
               "≥ 6× baseline, ≥ 3× torch analytic", met, note=note,
               extra={"GBps_written": gbps, "bandwidth_fraction": frac})


def _torch_jax_normal(ctx, loc, log_scale, n) -> dict:
    fns = {}
    torch = ctx.torch
    if torch is not None:
        tl, ts = torch.from_numpy(loc), torch.from_numpy(log_scale)
        op = "sample_and_score"
        fns["torch (analytic)"] = lambda: torch_normal(torch, op, tl, ts, n)
        fns["torch (autograd)"] = lambda: torch_normal(torch, op, tl, ts, n, autograd=True)
    jax = ctx.jax
    if jax is not None:
        f = jax_normal_fn(jax, "sample_and_score", n)
        key = jax.random.PRNGKey(0)
        jl, js = jax.numpy.asarray(loc), jax.numpy.asarray(log_scale)
        fns["JAX jit"] = lambda: jax_block(f(key, jl, js, None))
    return fns


def case_normal(ctx: Context) -> Row:
    lf, D, n, loc, log_scale, cpu, base = _normal_setup(ctx)
    rng = np.random.default_rng(0)
    fns = {
        LOGRAD: lambda: cpu.sample_and_score(n, seed=1),
        BASELINE: lambda: base.sample_and_score(n, seed=1),
        "numpy Generator": lambda: numpy_normal_sample_and_score(rng, loc, log_scale, n),
    }
    fns.update(_torch_jax_normal(ctx, loc, log_scale, n))
    times = best_times(fns, ctx.repeats)
    return Row("normal", "Normal sample_and_score, new arrays", f"n·D = {_fmt_pow2(n * D)}, D=8",
               times, "≥ 4× baseline", times[BASELINE] / times[LOGRAD] >= 4.0)


def _categorical_logits(rows: int, K: int, dtype=np.float64) -> np.ndarray:
    rng = np.random.default_rng(42)
    return rng.normal(size=(rows, K)).astype(dtype)


def _categorical_contenders(ctx, logits, fused: bool) -> dict:
    import lograd_fast as lf

    rng = np.random.default_rng(0)
    counter = iter(range(10**12))

    def ours(backend):
        def call():
            d = lf.Categorical(logits, backend=backend)
            if fused:
                return d.sample_and_score(None, seed=next(counter))
            x = d.sample(None, seed=next(counter))
            return x, d.log_prob(x), d.score(x)
        return call

    fns = {LOGRAD: ours("cpu"), BASELINE: ours("numpy"),
           "numpy Generator": lambda: numpy_categorical_sample_and_score(rng, logits)}
    torch = ctx.torch
    if torch is not None:
        tl = torch.from_numpy(logits)
        op = "sample_and_score"
        fns["torch (analytic)"] = lambda: torch_categorical(torch, op, tl)
        fns["torch (autograd)"] = lambda: torch_categorical(torch, op, tl, autograd=True)
        if logits.shape[0] > 64:
            try:
                compiled = torch.compile(torch_categorical_fn(torch))
                with torch.no_grad():
                    compiled(tl)
                fns["torch.compile"] = lambda: compiled(tl)
            except Exception as exc:  # no C compiler, unsupported platform
                print(f"  (torch.compile unavailable: {type(exc).__name__}: {exc})",
                      file=sys.stderr)
    jax = ctx.jax
    if jax is not None:
        f = jax_categorical_fn(jax, "sample_and_score")
        key = jax.random.PRNGKey(0)
        jl = jax.numpy.asarray(logits)
        fns["JAX jit"] = lambda: jax_block(f(key, jl, None))
    return fns


def case_categorical(ctx: Context) -> Row:
    rows, K = ctx.size(2**20, 2**12), 16
    logits = _categorical_logits(rows, K)
    fns = _categorical_contenders(ctx, logits, fused=True)
    times = best_times(fns, ctx.repeats)
    met = times[BASELINE] / times[LOGRAD] >= 4.0
    for other in ("torch.compile", "JAX jit"):
        if other in times:
            met = met and times[other] > times[LOGRAD]
    return Row("categorical", "Categorical from logits: build + sample + log_prob + score",
               f"{_fmt_pow2(rows)} rows × K={K}", times,
               "≥ 4× baseline, faster than torch.compile and JAX jit", met,
               note="every contender starts from the logits (lograd_fast: constructor + "
                    "fused sample_and_score)")


def case_small_rl(ctx: Context) -> Row:
    torch = ctx.torch
    logits = _categorical_logits(64, 6)
    fns = _categorical_contenders(ctx, logits, fused=True)
    fns = {LOGRAD: fns.pop(LOGRAD),
           "lograd_fast (3 calls)": _categorical_contenders(ctx, logits, fused=False)[LOGRAD],
           **fns}
    calls = 20 if ctx.quick else 200
    # torch runs this case on one thread, as RL code stepping small policies does: at
    # (64, 6) its OpenMP pool only spins between calls, and on a 2-core machine the
    # spinning slowed every contender of the process (measured 1.5x: numpy's Generator
    # 97 -> 160 us), torch itself included
    torch_threads = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(1)
    try:
        times = best_times(fns, max(ctx.repeats, 5), calls=calls)
    finally:
        if torch is not None:
            torch.set_num_threads(torch_threads)
    torch_best = min((t for k, t in times.items() if k.startswith("torch")), default=math.inf)
    met = times[LOGRAD] <= 20e-6 and times[LOGRAD] < torch_best
    return Row("small-rl", "Small RL step: Categorical(logits) + sample + log_prob + score",
               "logits (64, 6)", times, "≤ 20 µs per call, faster than torch.distributions",
               met, unit="µs",
               note="lograd_fast: constructor + sample_and_score; '(3 calls)': constructor + "
                    "sample + log_prob + score; torch on one thread for this case")


def case_std_normal(ctx: Context) -> Row:
    import lograd_fast as lf

    n = ctx.size(2**24, 2**16)
    d = lf.Normal(0.0, 0.0)
    base = lf.Normal(0.0, 0.0, backend="numpy")
    x = np.empty(n)
    x2 = np.empty(n)
    rng = np.random.Generator(np.random.PCG64(0))
    fns = {LOGRAD: lambda: d.sample(n, seed=3, out=x),
           "numpy Generator": lambda: rng.standard_normal(out=x2),
           "numpy Generator (new array)": lambda: rng.normal(size=n),
           BASELINE: lambda: base.sample(n, seed=3, out=x2)}
    times = best_times(fns, ctx.repeats)
    ns = times[LOGRAD] / n * 1e9
    return Row("std-normal", "Standard normal draws (out=)", _fmt_pow2(n), times,
               "≥ 2× numpy.random.Generator(PCG64)",
               times["numpy Generator"] / times[LOGRAD] >= 2.0,
               note=f"{ns:.2f} ns/draw with {ctx.threads} threads; numpy "
                    f"{times['numpy Generator'] / n * 1e9:.2f} ns/draw (one thread)")


def _reward():
    import numba

    @numba.njit
    def reward(x):
        acc = 0.0
        for v in x:
            acc += (v - 1.0) ** 2
        return acc

    return reward


def case_streaming(ctx: Context) -> Row:
    import lograd_fast as lf

    D = 8
    n = ctx.size(2**22, 2**12)
    n_base = min(n, ctx.size(2**18, 2**12))
    loc, log_scale = np.zeros(D), np.zeros(D)
    cpu = lf.Normal(loc, log_scale)
    base = lf.Normal(loc, log_scale, backend="numpy")
    f = _reward()
    scale = n / n_base
    fns = {LOGRAD: lambda: lf.score_function(cpu, f, n, seed=0, baseline="loo"),
           BASELINE: lambda: lf.score_function(base, f, n_base, seed=0, baseline="loo")}
    times = best_times(fns, ctx.repeats)
    times[BASELINE] *= scale
    note = "streaming, f an njit reward; "
    if scale != 1:
        note += (f"the numpy baseline is timed at n={_fmt_pow2(n_base)} and scaled ×{scale:g} "
                 "(it loops over fixed batches of 2^16 atoms: linear in n)")
    return Row("streaming", "score_function streaming, Normal, baseline='loo'",
               f"n={_fmt_pow2(n)}, D={D}", times, "≥ 10× baseline",
               times[BASELINE] / times[LOGRAD] >= 10.0, note=note)


def numpy_rloo(rewards, scores):
    """Idiomatic numpy RLOO: leave-one-out baseline per replicate, mean and variance.

    ``rewards`` ``(R, N)``, ``scores`` ``(R, N, D)`` -> ``(grad, var)``, each ``(R, D)``."""
    n = rewards.shape[-1]
    adv = rewards - (rewards.sum(axis=-1, keepdims=True) - rewards) / (n - 1)
    terms = adv[..., None] * scores
    return terms.mean(axis=-2), terms.var(axis=-2, ddof=1)


def case_rloo(ctx: Context) -> Row:
    import lograd_fast as lf

    R, N, D = (32, 32, 16) if ctx.quick else (1000, 1000, 16)
    if hasattr(lf, "rloo"):
        # lf.rloo(rewards (R, N), scores (R, N, D)): many replicates at once
        rng = np.random.default_rng(0)
        scores = rng.normal(size=(R, N, D))
        rewards = (scores[..., :4] ** 2).sum(axis=-1)
        fns = {LOGRAD: lambda: lf.rloo(rewards, scores, backend="cpu"),
               BASELINE: lambda: lf.rloo(rewards, scores, backend="numpy"),
               "numpy (by hand)": lambda: numpy_rloo(rewards, scores)}
        title, note = "RLOO: lf.rloo(rewards, scores)", "rewards and scores given"
    else:  # releases without lf.rloo: external rewards through score_function
        loc, log_scale = np.zeros((R, D)), np.zeros((R, D))
        cpu = lf.Normal(loc, log_scale, event_ndims=1)
        base = lf.Normal(loc, log_scale, event_ndims=1, backend="numpy")
        x = cpu.sample(N, seed=0)
        r = -((x - 1.0) ** 2).sum(axis=-1)
        fns = {LOGRAD: lambda: lf.score_function(cpu, rewards=r, x=x, baseline="loo"),
               BASELINE: lambda: lf.score_function(base, rewards=r, x=x, baseline="loo")}
        title = "RLOO from rewards: score_function(rewards=, x=, baseline='loo')"
        note = "x and rewards given; times the estimator call only"
    times = best_times(fns, ctx.repeats)
    return Row("rloo", title, f"R={R} × N={N} × D={D}", times, "≥ 10× baseline",
               times[BASELINE] / times[LOGRAD] >= 10.0, note=note)


def case_float32(ctx: Context) -> Row:
    lf, D, n, loc, log_scale, cpu, _ = _normal_setup(ctx)
    cpu32 = lf.Normal(loc.astype(np.float32), log_scale.astype(np.float32))
    out64 = _normal_out(n, D, np.float64)
    out32 = _normal_out(n, D, np.float32)
    x64, x32 = np.empty((n, D)), np.empty((n, D), np.float32)
    fns = {"float32 sample_and_score": lambda: cpu32.sample_and_score(n, seed=1, out=out32),
           "float64 sample_and_score": lambda: cpu.sample_and_score(n, seed=1, out=out64),
           "float32 sample": lambda: cpu32.sample(n, seed=1, out=x32),
           "float64 sample": lambda: cpu.sample(n, seed=1, out=x64)}
    times = best_times(fns, ctx.repeats)
    gain = times["float64 sample_and_score"] / times["float32 sample_and_score"]
    gain_s = times["float64 sample"] / times["float32 sample"]
    return Row("float32", "float32 vs float64 throughput, Normal, out=",
               f"n·D = {_fmt_pow2(n * D)}", times, "float32 ≥ 1.5× float64", gain >= 1.5,
               primary="float32 sample_and_score", baseline="float64 sample_and_score",
               note=f"sample only: float32 {gain_s:.2f}× float64")


_COMPILE_SCRIPT = textwrap.dedent("""
    import json, sys, time
    t0, c0 = time.perf_counter(), time.process_time()
    import numpy as np
    import lograd_fast as lf
    res = {"import": time.perf_counter() - t0}
    cpu = {"import": time.process_time() - c0}
    n = 8192
    for fam, d in (("Normal", lf.Normal(np.zeros(8), np.zeros(8))),
                   ("Categorical", lf.Categorical(np.zeros((8, 6))))):
        for op in ("sample_and_score", "sample", "log_prob", "score", "entropy"):
            t, c = time.perf_counter(), time.process_time()
            if op == "sample_and_score":
                d.sample_and_score(n, seed=0)
                d.sample_and_score(1, seed=0)
            elif op == "sample":
                x = d.sample(n, seed=0)
                d.sample(1, seed=0)
            elif op == "log_prob":
                d.log_prob(x)
                d.log_prob(x[:1])
            elif op == "score":
                d.score(x)
                d.score(x[:1])
            else:
                d.entropy()
            res[fam + "." + op] = time.perf_counter() - t
            cpu[fam + "." + op] = time.process_time() - c
    print("RESULT" + json.dumps({"wall": res, "cpu": cpu}))
""")


def _run_compile_probe(cache_dir: str, threads: int) -> dict:
    env = dict(os.environ, LOGRAD_FAST_CACHE_DIR=cache_dir, NUMBA_NUM_THREADS=str(threads))
    # a second process of a normal install imports from .pyc files: some machines set
    # PYTHONDONTWRITEBYTECODE, which leaves an editable install recompiling its Python
    # sources in every process (~0.2 s here), a cost no user of a wheel pays
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    proc = subprocess.run([sys.executable, "-c", _COMPILE_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"compile probe failed:\n{proc.stderr[-2000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


def case_compile(ctx: Context) -> Row:
    with tempfile.TemporaryDirectory(prefix="lograd-bench-cache-") as cache:
        cold = _run_compile_probe(cache, ctx.threads)
        warm = _run_compile_probe(cache, ctx.threads)
    wall, cpu = cold["wall"], cold["cpu"]
    ops = [k for k in wall if k != "import"]
    worst = max(ops, key=lambda k: wall[k])
    first = "Normal.sample_and_score"
    warm_total = warm["wall"]["import"] + warm["wall"][first]
    times = {"cold: slowest first call": wall[worst],
             "cold: same, CPU time": cpu[worst],
             "warm: import + first call": warm_total,
             "warm: import": warm["wall"]["import"],
             "cold: all first calls": sum(wall[k] for k in ops)}
    met = wall[worst] <= 2.0 and warm_total <= 0.5
    note = (f"slowest {worst}; first call of each op, wall (CPU) seconds, each compiling the "
            "driver of that op: "
            + ", ".join(f"{k} {wall[k]:.2f} ({cpu[k]:.2f})" for k in ops)
            + f"; warm process (.pyc files allowed): import {warm['wall']['import']:.2f} s, first "
              f"{first} {warm['wall'][first] * 1e3:.0f} ms")
    return Row("compile", "First-call compile time (fresh cache) and second process (cached)",
               "Normal D=8, Categorical K=6", times, "≤ 2 s per kernel; cached ≤ 0.5 s",
               met, primary="cold: slowest first call", baseline=None, note=note,
               extra={"cold": cold, "warm": warm})


CASES: dict[str, Callable[[Context], Row]] = {
    "normal-out": case_normal_out,
    "normal": case_normal,
    "categorical": case_categorical,
    "std-normal": case_std_normal,
    "streaming": case_streaming,
    "rloo": case_rloo,
    "small-rl": case_small_rl,
    "compile": case_compile,
    "float32": case_float32,
}
CASE_IDS = tuple(CASES)


# ----------------------------------------------------------------------------- machine
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(ctx: Context) -> dict:
    import numba

    import lograd_fast as lf

    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": f"{ctx.threads} (Numba, threading layer {_threading_layer()})",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "lograd_fast": lf.__version__,
    }
    if ctx.torch is not None:
        info["torch"] = f"{ctx.torch.__version__} ({ctx.torch.get_num_threads()} threads)"
    if ctx.jax is not None:
        import jaxlib

        info["jax"] = f"{ctx.jax.__version__} (jaxlib {jaxlib.__version__}, CPU, x64)"
    bw = ctx.bandwidth
    if bw:
        info["memory bandwidth"] = (f"numpy one thread on {bw['array_MiB']:.0f} MiB arrays: "
                                    f"copy {bw['copy_GBps']:.1f} GB/s (read + write), "
                                    f"fill {bw['fill_GBps']:.1f} GB/s (write)")
    return info


def _threading_layer() -> str:
    import numba

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        return f"{numba.config.THREADING_LAYER} (configured)"


# ----------------------------------------------------------------------------- output
def _fmt_time(seconds: float, unit: str) -> str:
    if unit == "µs":
        return f"{seconds * 1e6:.1f} µs"
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.1f} µs"


def _verdict(met: bool | None) -> str:
    return "—" if met is None else ("**met**" if met else "**missed**")


def markdown_table(rows: list[Row]) -> str:
    head = ("| case | size | lograd_fast | numpy baseline | speed-up | lograd_fast vs others "
            "| target | |")
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        prim = f"{_fmt_time(row.times[row.primary], row.unit)}"
        if row.primary != LOGRAD:
            prim = f"{row.primary}: {prim}"
        if row.baseline:
            base = _fmt_time(row.times[row.baseline], row.unit)
            if row.baseline != BASELINE:
                base = f"{row.baseline}: {base}"
            ratio = f"**{row.ratio(row.baseline):.1f}×**"
        else:
            base, ratio = "", ""
        others = [k for k in row.times if k not in (row.primary, row.baseline)]
        if row.id == "compile":
            cells = "<br>".join(f"{k}: {_fmt_time(row.times[k], 's')}" for k in others)
        else:
            cells = "<br>".join(f"{k}: {_fmt_time(row.times[k], row.unit)} "
                                f"({row.ratio(k):.1f}×)" for k in others)
        lines.append(f"| {row.title} | {row.size} | {prim} | {base} | {ratio} | {cells} "
                     f"| {row.target} | {_verdict(row.met)} |")
    return "\n".join(lines)


def markdown_report(rows: list[Row], info: dict, ctx: Context, command: str) -> str:
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = "; ".join(f"{k} {v}" for k, v in info.items())
    notes = [f"- *{row.title}*: {row.note}" for row in rows if row.note]
    return "\n".join([
        f"Generated by `{command}` on {when}{' (quick sizes)' if ctx.quick else ''}.",
        "Times are the minimum of "
        f"{ctx.repeats} round-robin repeats in one process; speed-up = other's time / "
        "lograd_fast's time (higher is better for lograd_fast).",
        "",
        f"Machine: {machine}.",
        "",
        markdown_table(rows),
        "",
        *notes,
    ]) + "\n"


def plain_table(rows: list[Row]) -> str:
    lines = []
    for row in rows:
        lines.append(f"{row.id:<12} {row.title} [{row.size}] -> {_verdict(row.met).strip('*')} "
                     f"(target: {row.target})")
        for name, t in row.times.items():
            ratio = "" if name == row.primary or row.id == "compile" else \
                f"  {row.ratio(name):6.2f}x"
            lines.append(f"    {name:<32}{_fmt_time(t, row.unit):>12}{ratio}")
        if row.note:
            lines.append(f"    note: {row.note}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- run
def run_cases(ctx: Context, ids: list[str]) -> list[Row]:
    rows = []
    for cid in ids:
        t0 = time.perf_counter()
        print(f"[bench] {cid} ...", flush=True)
        rows.append(CASES[cid](ctx))
        print(plain_table(rows[-1:]) + f"\n    ({time.perf_counter() - t0:.1f} s)", flush=True)
    return rows


def run(args) -> int:
    import numba

    threads = args.threads or min(2, os.cpu_count() or 1)
    if threads > numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"--threads {threads} exceeds NUMBA_NUM_THREADS="
                         f"{numba.config.NUMBA_NUM_THREADS}")
    numba.set_num_threads(threads)
    repeats = args.repeats or (2 if args.quick else 5)
    if repeats < 1:
        raise ValueError(f"--repeats must be positive, got {repeats}")
    ids = list(CASE_IDS) if not args.cases else [c.strip() for c in args.cases.split(",")]
    unknown = [c for c in ids if c not in CASES]
    if unknown:
        raise ValueError(f"unknown case(s) {unknown}; choose from {', '.join(CASE_IDS)}")
    ctx = Context(quick=args.quick, repeats=repeats, threads=threads,
                  optional=not args.no_optional)
    if ctx.optional:
        ctx.torch = _import_torch(threads)
        ctx.jax = _import_jax()
    ctx.bandwidth = measure_bandwidth(ctx)
    info = machine_info(ctx)
    load0 = os.getloadavg()
    rows = run_cases(ctx, ids)
    load1 = os.getloadavg()
    info["load average"] = f"{load0[0]:.2f} at start, {load1[0]:.2f} at end"
    print()
    for k, v in info.items():
        print(f"{k:>18}: {v}")
    command = "lograd-fast bench" + (" --quick" if args.quick else "") + \
        (f" --threads {args.threads}" if args.threads else "")
    report = markdown_report(rows, info, ctx, command)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(report)
        print(f"wrote {args.out}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"info": info, "rows": [row.__dict__ for row in rows]}, fh, indent=1,
                      default=str)
        print(f"wrote {args.json}")
    missed = [row.id for row in rows if row.met is False]
    print(f"targets met: {sum(r.met is True for r in rows)}/{len(rows)}"
          + (f"; missed: {', '.join(missed)}" if missed else ""))
    return 0
