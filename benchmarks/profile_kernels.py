"""Where the time of the CPU kernels goes: the measurements behind docs/benchmarks.md.

    python benchmarks/profile_kernels.py [--threads 1] [--n 4194304]

1. CPU nanoseconds per element (``time.process_time``, one thread by default, min of
   5: robust to other processes' load; with ``--threads 2`` the wall time too) of a
   ladder that adds one layer of the real
   driver at a time: the Philox words alone (the ``block`` variate pass), the variate
   passes of each kind (Philox + Box-Muller / uniform / ``-log u``), float64 and
   float32; then the public calls (which add the per-atom family maths and the memory
   traffic of their outputs) and numpy's ``Generator`` for scale.
2. The generated machine code (``inspect_asm``) of the variate passes and the drivers:
   packed AVX-512 / AVX2 instructions (``zmm`` / ``ymm`` operands), vectorised Philox
   multiplies (``vpmuludq``), packed ``sqrt`` / ``div`` of Box-Muller, gathers and
   scatters (what Numba's negative-index handling turns loads and stores into when
   LLVM cannot prove an index non-negative), calls left in the code.
3. The cost of a small call (Categorical logits (64, 6), Normal with 8 atoms).

The kernels are compiled fresh in a temporary cache directory (code loaded from the
on-disk cache cannot be inspected).  Uses private modules of lograd_fast on purpose
(it profiles them); imported lazily so that asv, which imports every module of this
directory, never runs it.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time

import numpy as np

PACKED = re.compile(r"%zmm\d+|%ymm\d+")


def cpu_ns(fn, n_elements: int, repeats: int = 5) -> tuple[float, float]:
    """(CPU ns, wall ns) per element, each the minimum of ``repeats`` calls."""
    fn()
    best, wall = float("inf"), float("inf")
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        best = min(best, time.process_time() - c0)
        wall = min(wall, time.perf_counter() - w0)
    return best / n_elements * 1e9, wall / n_elements * 1e9


def ladder(n: int) -> dict[str, tuple[float, float]]:
    import lograd_fast as lf
    from lograd_fast._engine import rng

    key = (np.uint64(1), np.uint64(0), np.uint64(0), np.int64(0))
    rows = {}
    words = np.empty((4, n // 4 + 2 * rng.MAX_LANES), np.uint64)
    rows["Philox4x32 block (4 words), flat pass: per block / 4"] = (
        lambda: rng.fill_variates("block", np.float64, key, 0, n // 4, 1, words), n)
    for kind in ("normal", "uniform", "exponential"):
        for dtype in (np.float64, np.float32):
            buf = np.empty(n + 2 * rng.MAX_LANES, dtype)
            rows[f"{kind} variates, {np.dtype(dtype).name}"] = (
                lambda kind=kind, dtype=dtype, buf=buf:
                rng.fill_variates(kind, dtype, key, 0, n, 1, buf), n)
    D = 8
    for dtype in (np.float64, np.float32):
        name = np.dtype(dtype).name
        d = lf.Normal(np.zeros(D, dtype), np.zeros(D, dtype))
        d1 = lf.Normal(np.zeros((), dtype), np.zeros((), dtype))
        x1 = np.empty(n, dtype)
        xo, lp = np.empty((n // D, D), dtype), np.empty((n // D, D), dtype)
        s = {"loc": np.empty((n // D, D), dtype), "log_scale": np.empty((n // D, D), dtype)}
        rows[f"Normal(0, 0).sample(out=), {name}"] = (lambda d1=d1, x1=x1: d1.sample(n, out=x1), n)
        rows[f"Normal(D=8).sample(out=), {name}"] = (lambda d=d, xo=xo: d.sample(n // D, out=xo), n)
        rows[f"Normal(D=8).sample_and_score(out=), {name}"] = (
            lambda d=d, xo=xo, lp=lp, s=s: d.sample_and_score(n // D, out=(xo, lp, s)), n)
        g = np.random.Generator(np.random.PCG64(0))
        x2 = np.empty(n, dtype)
        rows[f"numpy Generator(PCG64).standard_normal(out=), {name}"] = (
            lambda g=g, x2=x2: g.standard_normal(out=x2, dtype=x2.dtype), n)
    return {name: cpu_ns(fn, count) for name, (fn, count) in rows.items()}


def asm_stats(asm: str) -> str:
    """Counts in one function's assembly."""
    packed = PACKED.findall(asm)
    return (f"{len(asm.splitlines())} lines; zmm operands {sum(p.startswith('%z') for p in packed)}"
            f", ymm {sum(p.startswith('%y') for p in packed)}; vpmuludq {asm.count('vpmuludq')}, "
            f"vsqrtpd/ps {asm.count('vsqrtpd') + asm.count('vsqrtps')}, "
            f"vdivpd/ps {asm.count('vdivpd') + asm.count('vdivps')}, "
            f"gathers {asm.count('vgather')}, scatters {asm.count('vscatter')}, "
            f"callq {asm.count('callq')}")


def asm_report() -> list[str]:
    import lograd_fast as lf
    from lograd_fast._engine import cpu, rng

    lines = []
    for kind in ("block", "normal", "uniform", "exponential"):
        for f32 in (False, True):
            fill = rng.fill_function(kind, f32)
            for sig in fill.signatures:
                lines.append(f"fill {kind} {'float32' if f32 else 'float64'}: "
                             + asm_stats(fill.inspect_asm(sig)))
    dists = {"Normal": lf.Normal(np.zeros(8), np.zeros(8)),
             "Categorical": lf.Categorical(np.zeros((8, 16)))}
    for fam, d in dists.items():
        x = d.sample(2 * cpu.CHUNK)
        d.sample_and_score(2 * cpu.CHUNK)
        d.log_prob(x)
        d.score(x)
        for name in ("_sample_range", "_sample_score_range", "_log_prob_range", "_score_range"):
            disp = cpu._for(getattr(cpu, name), d._record)  # the driver compiled for fam
            for sig in disp.signatures[:1]:
                lines.append(f"{fam}.{name}: " + asm_stats(disp.inspect_asm(sig)))
    return lines


def small_call() -> dict[str, float]:
    import lograd_fast as lf

    logits = np.random.default_rng(0).normal(size=(64, 6))
    d = lf.Categorical(logits)
    normal = lf.Normal(np.zeros(8), np.zeros(8))
    reps = 2000

    def per_call(fn):
        fn(0)
        c0 = time.process_time()
        for i in range(reps):
            fn(i)
        return (time.process_time() - c0) / reps * 1e6

    return {
        "Categorical(logits) constructor": per_call(lambda i: lf.Categorical(logits)),
        "Categorical sample_and_score(None) on a built distribution":
            per_call(lambda i: d.sample_and_score(None, seed=i)),
        "Categorical constructor + sample_and_score":
            per_call(lambda i: lf.Categorical(logits).sample_and_score(None, seed=i)),
        "Normal(8 atoms).sample_and_score(None)":
            per_call(lambda i: normal.sample_and_score(None, seed=i)),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n", type=int, default=2**22)
    args = parser.parse_args(argv)
    # compiled here, not loaded from the cache: cached code cannot be inspected
    os.environ["LOGRAD_FAST_CACHE_DIR"] = tempfile.mkdtemp(prefix="lograd-profile-")
    import numba

    numba.set_num_threads(args.threads)
    print(f"1. CPU ns per element ({args.threads} thread(s), n={args.n}, min of 5; wall ns)")
    for name, (cpu, wall) in ladder(args.n).items():
        print(f"   {name:<60} {cpu:8.2f}  ({wall:.2f})")
    print("2. machine code")
    for line in asm_report():
        print("   " + line)
    print("3. small calls: CPU µs per call")
    for name, value in small_call().items():
        print(f"   {name:<60} {value:8.1f}")
    print(f"   (load average {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
