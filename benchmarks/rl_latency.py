"""Latency of the small RL step, Categorical logits (64, 6), in this process alone.

    python benchmarks/rl_latency.py [--rounds 100] [--calls 50]

Prints the minimum over ``rounds`` of the mean of ``calls`` back-to-back calls, in µs,
for the constructor, ``sample_and_score`` on a built distribution, and both.  To
compare two versions of the package, run it with each on ``PYTHONPATH`` (e.g. an
extracted ``git archive <commit> lograd_fast``), alternating, on the same machine.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    import numpy as np

    import lograd_fast as lf

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    logits = np.random.default_rng(0).normal(size=(64, 6))
    d = lf.Categorical(logits)
    cases = {
        "constructor": lambda: lf.Categorical(logits),
        "sample_and_score": lambda: d.sample_and_score(None, seed=1),
        "both": lambda: lf.Categorical(logits).sample_and_score(None, seed=1),
    }
    result = {}
    for name, fn in cases.items():
        fn()  # compile / load from the cache outside the timing
        best = float("inf")
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            for _ in range(args.calls):
                fn()
            best = min(best, (time.perf_counter() - t0) / args.calls)
        result[name] = round(best * 1e6, 1)
    print(lf.__file__, result)


if __name__ == "__main__":
    main()
