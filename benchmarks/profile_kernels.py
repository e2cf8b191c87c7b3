"""Where the time of the CPU kernels goes: the measurements behind docs/benchmarks.md.

    python benchmarks/profile_kernels.py [--threads 1] [--n 4194304]

1. CPU nanoseconds per atom (``time.process_time``, one thread by default, min of 5:
   robust to other processes' load) of a ladder of kernels that add one layer of the
   real driver at a time: Philox + uniform in a flat ``prange``; the ziggurat normal
   with a constant and with a runtime key; chunked ``prange`` + serial range function;
   the same through the family record and the ``sample1`` entry point (what
   ``cpu._sample_par`` does); and the public calls.
2. The generated machine code of each driver (``inspect_asm``): calls left in it
   (``NRT_incref``/``NRT_decref`` are atomic reference-count updates), 64-bit scalar
   multiplies (Philox rounds) and AVX2 ``vpmuludq`` (vectorised Philox).
3. The cost of a small call (Categorical logits (64, 6)): constructor against
   ``sample_and_score`` against the bare kernel dispatch.

Uses private modules of lograd_fast on purpose (it profiles them); imported lazily so
that asv, which imports every module of this directory, never runs it.
"""

from __future__ import annotations

import argparse
import collections
import re
import time

import numpy as np

CALL = re.compile(r"movabsq\s+\$([^,]+),\s*%\w+\s*\n\s*callq")
SCALAR_MUL = re.compile(r"\b(mulq|mulxq|imulq)\b")


def cpu_ns(fn, n_atoms: int, repeats: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        c0 = time.process_time()
        fn()
        best = min(best, time.process_time() - c0)
    return best / n_atoms * 1e9


def ladder(n: int) -> dict[str, float]:
    import numba
    from numba import njit, prange

    import lograd_fast as lf
    from lograd_fast._engine import cpu
    from lograd_fast._engine.dispatch import sample1
    from lograd_fast._engine.rng import make_stream, philox_block, std_normal, u01_f64

    U = np.uint64
    opts = dict(error_model="numpy", nogil=True)

    @njit(parallel=True, **opts)
    def philox_uniform(x):
        for a in prange(x.shape[0]):
            w = philox_block(make_stream(U(1), U(0), U(0), a), 0)
            x[a] = u01_f64(w[0], w[1])

    @njit(parallel=True, **opts)
    def normal_const_key(x):
        for a in prange(x.shape[0]):
            z, _ = std_normal(x, make_stream(U(1), U(0), U(0), a), 0)
            x[a] = z

    @njit(parallel=True, **opts)
    def normal_runtime_key(key, x):
        for a in prange(x.shape[0]):
            z, _ = std_normal(x, make_stream(key[0], key[1], key[2], key[3] + a), 0)
            x[a] = z

    @njit(**opts)
    def normal_range(key, x, lo, hi):
        for a in range(lo, hi):
            z, _ = std_normal(x, make_stream(key[0], key[1], key[2], key[3] + a), 0)
            x[a] = z

    @njit(parallel=True, **opts)
    def normal_chunks(key, x):
        n = x.shape[0]
        for c in prange((n + 4095) // 4096):
            normal_range(key, x, c * 4096, min(n, (c + 1) * 4096))

    @njit(**opts)
    def record_range(p, key, x, B, lo, hi):
        b = lo % B
        for a in range(lo, hi):
            sample1(p, b, make_stream(key[0], key[1], key[2], key[3] + a), x, a)
            b += 1
            if b == B:
                b = 0

    @njit(parallel=True, **opts)
    def record_chunks(p, key, x, B):
        n = x.shape[0]
        for c in prange((n + 4095) // 4096):
            record_range(p, key, x, B, c * 4096, min(n, (c + 1) * 4096))

    x = np.empty(n)
    key = (U(1), U(0), U(0), np.int64(0))
    D = 8
    d = lf.Normal(np.zeros(D), np.zeros(D))
    p = d._record
    xo, lp = np.empty((n // D, D)), np.empty((n // D, D))
    s = {"loc": np.empty((n // D, D)), "log_scale": np.empty((n // D, D))}
    g = np.random.Generator(np.random.PCG64(0))
    rows = {
        "Philox4x32 + uniform, flat prange": lambda: philox_uniform(x),
        "ziggurat normal, flat prange, constant key": lambda: normal_const_key(x),
        "ziggurat normal, flat prange, runtime key": lambda: normal_runtime_key(key, x),
        "  + chunked prange and a serial range function": lambda: normal_chunks(key, x),
        "  + family record and sample1 entry point": lambda: record_chunks(p, key, x, D),
        "cpu._sample_par (the driver)": lambda: cpu._sample_par(p, key, x, D, n),
        "Normal.sample(out=)": lambda: d.sample(n // D, out=xo),
        "Normal.sample_and_score(out=)": lambda: d.sample_and_score(n // D, out=(xo, lp, s)),
        "Normal.log_prob(out=)": lambda: d.log_prob(xo, out=lp),
        "Normal.score(out=)": lambda: d.score(xo, out=s),
        "numpy Generator(PCG64).standard_normal": lambda: g.standard_normal(out=x),
    }
    res = {name: cpu_ns(fn, n) for name, fn in rows.items()}
    res["(threads)"] = numba.get_num_threads()
    for label, fn in (("serial range fn, runtime key", normal_range),
                      ("same + record + sample1", record_range)):
        res["asm: " + label] = asm_stats(fn.inspect_asm(fn.signatures[0]))
    return res


def asm_report() -> list[str]:
    import lograd_fast as lf
    from lograd_fast._engine import cpu

    lines = []
    dists = {"Normal": lf.Normal(np.zeros(8), np.zeros(8)),
             "Categorical": lf.Categorical(np.zeros((8, 16)))}
    for fam, d in dists.items():
        x = d.sample(2 * cpu.CHUNK)
        d.sample_and_score(2 * cpu.CHUNK)
        d.log_prob(x)
        d.score(x)
        for name in ("_sample_range", "_sample_score_range", "_log_prob_range", "_score_range"):
            disp = getattr(cpu, name)
            sigs = [sig for sig in disp.signatures if fam in str(sig[0])]
            if not sigs:
                continue
            asm = disp.inspect_asm(sigs[0])
            lines.append(f"{fam}.{name}: " + asm_stats(asm))
    return lines


def asm_stats(asm: str) -> str:
    """Counts in one function's assembly: NRT reference-count loads (each an atomic
    update when called), callq instructions, Philox multiplies (scalar or AVX2)."""
    calls = collections.Counter(c.split("B3v")[0].split("B2v")[0][-40:]
                                for c in CALL.findall(asm) if "Py" not in c and "NRT" not in c)
    return (f"{len(asm.splitlines())} lines, NRT_incref {asm.count('NRT_incref')}, "
            f"NRT_decref {asm.count('NRT_decref')}, callq {asm.count('callq')}, "
            f"scalar 64-bit mul {len(SCALAR_MUL.findall(asm))}, vpmuludq "
            f"{asm.count('vpmuludq')}, direct calls {dict(calls)}")


def small_call() -> dict[str, float]:
    import lograd_fast as lf

    logits = np.random.default_rng(0).normal(size=(64, 6))
    d = lf.Categorical(logits)
    reps = 2000

    def per_call(fn):
        fn()
        c0 = time.process_time()
        for i in range(reps):
            fn(i)
        return (time.process_time() - c0) / reps * 1e6

    return {
        "Categorical(logits) constructor": per_call(lambda i=0: lf.Categorical(logits)),
        "sample_and_score(None) on a built distribution":
            per_call(lambda i=0: d.sample_and_score(None, seed=i)),
        "constructor + sample_and_score":
            per_call(lambda i=0: lf.Categorical(logits).sample_and_score(None, seed=i)),
    }


def main(argv=None) -> int:
    import numba

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n", type=int, default=2**22)
    args = parser.parse_args(argv)
    numba.set_num_threads(args.threads)
    print(f"1. CPU ns per atom ({args.threads} thread(s), n={args.n}, float64, min of 5)")
    for name, value in ladder(args.n).items():
        print(f"   {name:<50} {value:8.2f}" if not isinstance(value, str) else
              f"   {name}: {value}")
    print("2. machine code of the drivers")
    for line in asm_report():
        print("   " + line)
    print("3. small call, Categorical logits (64, 6): CPU µs per call")
    for name, value in small_call().items():
        print(f"   {name:<50} {value:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
