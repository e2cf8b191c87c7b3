"""Categorical's ops from the logits, nanoseconds per row (docs/benchmarks.md, item 1).

    python benchmarks/categorical_rows.py [--rows 262144] [--K 16] [--repeats 12]

One Numba thread, CPU time (``time.process_time``), the minimum over repeats, each on
a fresh distribution (so its first operation reads the logits: the one-pass path),
float64 and float32.  To compare two trees, run it with each on ``PYTHONPATH`` in
alternating processes (old tree: ``git archive <rev> lograd_fast | tar -x -C DIR``).
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

import lograd_fast as lf

OPS = ("sample_and_score", "kl", "log_prob", "entropy", "sample", "score")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2**18)
    ap.add_argument("--K", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=12)
    args = ap.parse_args()
    numba.set_num_threads(1)
    B, K = args.rows, args.K
    rng = np.random.default_rng(42)
    for dt in (np.float64, np.float32):
        L = rng.normal(size=(B, K)).astype(dt)
        Lq = (L + 0.3 * rng.normal(size=(B, K))).astype(dt)
        x = lf.Categorical(L).sample(None, seed=1)
        calls = {"sample_and_score": lambda d, q, r: d.sample_and_score(None, seed=r),
                 "kl": lambda d, q, r: d.kl(q), "log_prob": lambda d, q, r, x=x: d.log_prob(x),
                 "entropy": lambda d, q, r: d.entropy(),
                 "sample": lambda d, q, r: d.sample(None, seed=r),
                 "score": lambda d, q, r, x=x: d.score(x)}
        row = []
        for name in OPS:
            best = np.inf
            for r in range(args.repeats):
                d, q = lf.Categorical(L), lf.Categorical(Lq)
                t0 = time.process_time()
                calls[name](d, q, r)
                best = min(best, time.process_time() - t0)
            row.append(f"{name} {best / B * 1e9:.1f}")
        print(f"{np.dtype(dt).name}: " + " | ".join(row) + " ns per row")


if __name__ == "__main__":
    main()
