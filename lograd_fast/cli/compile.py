"""``lograd-fast compile``: fill the on-disk kernel cache ahead of time.

Compiles every kernel of the chosen families and dtypes (each operation and each
streaming estimator the family supports; ``rloo`` and the RL helpers as the target
``shared``) in parallel processes, with a progress bar (tqdm when installed).  Later
processes on the same cache -- scripts, sweep runs, Dask workers -- load the kernels
instead of compiling them.  The work lives in :mod:`lograd_fast.precompile`.
"""

from __future__ import annotations

import sys
import time

NAME = "compile"
HELP = "compile every kernel into the on-disk cache ahead of time (in parallel processes)"


def add_arguments(parser) -> None:
    parser.add_argument("--families", default=None, metavar="A,B,...",
                        help="comma-separated family names (default: all; "
                             "`lograd-fast info` lists them)")
    parser.add_argument("--dtypes", default=None, metavar="float32,float64",
                        help="comma-separated dtypes (default: float32,float64)")
    parser.add_argument("--jobs", "-j", type=int, default=None,
                        help="parallel compiler processes (default: the cores available)")
    parser.add_argument("--no-shared", action="store_true",
                        help="leave out rloo/batched_score_function and the RL helpers")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def run(args) -> int:
    from .. import precompile
    from .._engine import cache

    t0 = time.perf_counter()
    results = precompile.precompile(args.families, args.dtypes, args.jobs,
                                    shared=not args.no_shared, progress=not args.quiet)
    wall = time.perf_counter() - t0
    failed = [r for r in results if "error" in r]
    compiled = sum(r.get("compiled", 0) for r in results)
    cpu = sum(r.get("cpu_seconds", 0.0) for r in results)
    print(f"compiled {compiled} kernels for {len(results) - len(failed)} of {len(results)} "
          f"targets in {wall:.1f} s ({cpu:.1f} s CPU in the workers); cache: "
          f"{cache.cache_dir()}")
    for r in failed:
        print(f"lograd-fast compile: {r['target']} failed:\n{r['error']}", file=sys.stderr)
    return 1 if failed else 0
