"""The headline cases of ``lograd-fast bench``: each times a few *contenders* doing the
same job (lograd_fast's CPU kernels; idiomatic numpy with ``numpy.random.Generator``,
the headline comparator; torch and JAX when installed; and the numpy baseline
``backend="numpy"``, lograd_fast's algorithms in numpy, the reproducibility reference)
and returns a :class:`~.timing.Row` with the ratios, the memory traffic and the target.
Only the public API of lograd_fast is used here."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable

import numpy as np

from .competitors import (
    jax_block,
    jax_categorical_fn,
    jax_normal_fn,
    numpy_categorical_sample_and_score,
    numpy_normal_sample_and_score,
    numpy_normal_score_function_loo,
    numpy_rloo,
    torch_categorical,
    torch_categorical_fn,
    torch_normal,
)
from .compile_time import case_compile
from .report import plain_table
from .rl import RL_CASES
from .timing import BASELINE, LOGRAD, NUMPY, Context, Row, best_times


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
        NUMPY: lambda: numpy_normal_sample_and_score(rng, loc, log_scale, n, out_np),
        BASELINE: lambda: base.sample_and_score(n, seed=1, out=out),
    }
    fns.update(_torch_jax_normal(ctx, loc, log_scale, n))
    times = best_times(fns, ctx.repeats)
    written = (out[0].nbytes + out[1].nbytes + sum(v.nbytes for v in out[2].values())) / (n * D)
    row = Row("normal-out", "Normal sample_and_score, out= buffers",
              f"n·D = {_fmt_pow2(n * D)}, D={D}", times,
              "≥ 5× idiomatic numpy, ≥ 40% of the write bandwidth", None,
              elements=n * D, bytes_written=written,
              note="x, log_prob and the two scores written (32 B per float64 element); "
                   "numpy: `standard_normal(out=)` and in-place ufuncs")
    mem = row.memory(ctx.bandwidth)
    row.met = row.ratio(NUMPY) >= 5.0 and (mem is not None and mem["fraction"] >= 0.4)
    row.extra = {"GBps_written": mem and mem["GBps"], "bandwidth_fraction": mem and mem["fraction"]}
    return row


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
        NUMPY: lambda: numpy_normal_sample_and_score(rng, loc, log_scale, n),
        BASELINE: lambda: base.sample_and_score(n, seed=1),
    }
    fns.update(_torch_jax_normal(ctx, loc, log_scale, n))
    times = best_times(fns, ctx.repeats)
    return Row("normal", "Normal sample_and_score, new arrays", f"n·D = {_fmt_pow2(n * D)}, D=8",
               times, "≥ 3× idiomatic numpy", times[NUMPY] / times[LOGRAD] >= 3.0,
               elements=n * D, bytes_written=32.0,
               note="every contender allocates its outputs (page faults included)")


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

    fns = {LOGRAD: ours("cpu"),
           NUMPY: lambda: numpy_categorical_sample_and_score(rng, logits),
           BASELINE: ours("numpy")}
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
    met = times[NUMPY] / times[LOGRAD] >= 4.0
    if "torch.compile" in times:
        met = met and times["torch.compile"] / times[LOGRAD] >= 1.5
    return Row("categorical", "Categorical from logits: build + sample + log_prob + score",
               f"{_fmt_pow2(rows)} rows × K={K}", times,
               "≥ 4× idiomatic numpy, ≥ 1.5× torch.compile", met,
               elements=rows, bytes_read=8.0 * K, bytes_written=8.0 * (K + 2),
               note="every contender starts from the logits (lograd_fast: constructor + "
                    "fused sample_and_score); memory per row: the logits read, x, log_prob "
                    "and the K scores written")


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
           NUMPY: lambda: rng.standard_normal(out=x2),
           "numpy (new array)": lambda: rng.normal(size=n),
           BASELINE: lambda: base.sample(n, seed=3, out=x2)}
    times = best_times(fns, ctx.repeats)
    ns = times[LOGRAD] / n * 1e9
    return Row("std-normal", "Standard normal draws (out=)", _fmt_pow2(n), times,
               "≥ 4× numpy.random.Generator(PCG64)",
               times[NUMPY] / times[LOGRAD] >= 4.0, elements=n, bytes_written=8.0,
               note=f"{ns:.2f} ns/draw with {ctx.threads} threads; numpy "
                    f"`Generator(PCG64).standard_normal(out=)` {times[NUMPY] / n * 1e9:.2f} "
                    "ns/draw (one thread)")


def quadratic_reward():
    """``f(x) = sum((x - 1)**2)``, jitted: the reward of the streaming cases (here, in
    asv and in pytest-benchmark)."""
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
    f = quadratic_reward()
    rng = np.random.default_rng(0)
    scale = n / n_base
    fns = {LOGRAD: lambda: lf.score_function(cpu, f, n, seed=0, baseline="loo"),
           NUMPY: lambda: numpy_normal_score_function_loo(
               rng, loc, log_scale, lambda x: ((x - 1.0) ** 2).sum(axis=-1), n),
           BASELINE: lambda: lf.score_function(base, f, n_base, seed=0, baseline="loo")}
    times = best_times(fns, ctx.repeats)
    times[BASELINE] *= scale
    note = ("lograd_fast streams (f an njit reward of one draw, no (n, D) array); numpy: "
            "every draw, reward (vectorised) and score as arrays, then the leave-one-out "
            "baseline, mean and variance")
    if scale != 1:
        note += (f"; the numpy baseline is timed at n={_fmt_pow2(n_base)} and scaled "
                 f"×{scale:g} (it loops over fixed batches of 2^16 atoms: linear in n)")
    return Row("streaming", "score_function streaming, Normal, baseline='loo'",
               f"n={_fmt_pow2(n)}, D={D}", times, "≥ 6× idiomatic numpy",
               times[NUMPY] / times[LOGRAD] >= 6.0, note=note)


def case_rloo(ctx: Context) -> Row:
    import lograd_fast as lf

    R, N, D = (32, 32, 16) if ctx.quick else (1000, 1000, 16)
    if hasattr(lf, "rloo"):
        # lf.rloo(rewards (R, N), scores (R, N, D)): many replicates at once
        rng = np.random.default_rng(0)
        scores = rng.normal(size=(R, N, D))
        rewards = (scores[..., :4] ** 2).sum(axis=-1)
        fns = {LOGRAD: lambda: lf.rloo(rewards, scores, backend="cpu"),
               NUMPY: lambda: numpy_rloo(rewards, scores),
               BASELINE: lambda: lf.rloo(rewards, scores, backend="numpy")}
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
    return Row("rloo", title, f"R={R} × N={N} × D={D}", times, "≥ 10× numpy baseline",
               times[BASELINE] / times[LOGRAD] >= 10.0, note=note,
               baseline=NUMPY if NUMPY in times else BASELINE, elements=R * N,
               bytes_read=8.0 * (D + 1))


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
               f"n·D = {_fmt_pow2(n * D)}", times, "float32 ≥ 1.6× float64", gain >= 1.6,
               primary="float32 sample_and_score", baseline="float64 sample_and_score",
               elements=n * D, bytes_written=16.0,
               note=f"sample only: float32 {gain_s:.2f}× float64")


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
CASES.update(RL_CASES)  # the torch adapter inside RL calls, and PPO (bench/rl.py)
CASE_IDS = tuple(CASES)


def run_cases(ctx: Context, ids: list[str]) -> list[Row]:
    rows = []
    for cid in ids:
        t0 = time.perf_counter()
        print(f"[bench] {cid} ...", flush=True)
        rows.append(CASES[cid](ctx))
        print(plain_table(rows[-1:], ctx.bandwidth) + f"\n    ({time.perf_counter() - t0:.1f} s)",
              flush=True)
    return rows
