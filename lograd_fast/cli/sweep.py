"""``lograd-fast sweep``: a variance sweep of gradient estimators (table and plots).

With no SPEC it runs the embedded default sweep (``lograd_fast/sweep/default.py``):
``x ~ N(mu, 1)``, ``f(x) = (x - k)^2`` for ``k`` in {-3, 1} over a grid of ``mu``, every
estimator and baseline, three sample sizes, a few replicates.
"""

from __future__ import annotations

import sys

NAME = "sweep"
HELP = ("run a variance sweep of gradient estimators (the built-in one without SPEC); "
        "writes a table (CSV, Parquet) and plots")


def add_arguments(parser) -> None:
    parser.add_argument("spec", nargs="?", default=None,
                        help="sweep spec (.toml, .yaml or .json); default: the built-in sweep")
    parser.add_argument("--out", default="sweep-results",
                        help="output directory; finished cells there are reused "
                             "(default: ./sweep-results)")
    parser.add_argument("--scheduler", choices=("local", "dask"), default="local",
                        help="local: this process, Numba threads; dask: a Dask cluster "
                             "(a LocalCluster on 127.0.0.1 unless --dask ADDRESS)")
    parser.add_argument("--dask", metavar="ADDRESS", default=None,
                        help="Dask scheduler address (tcp://host:8786); implies "
                             "--scheduler dask")
    parser.add_argument("--workers", type=int, default=None,
                        help="local: Numba threads; Dask LocalCluster: worker processes "
                             "(default: one per core)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--no-plot", action="store_true", help="do not write the plots")
    parser.add_argument("--print-default", action="store_true",
                        help="print the built-in spec as TOML and exit")
    parser.add_argument("--yes", action="store_true",
                        help="run a sweep beyond the size limit (cells or draws; the size is "
                             "printed and checked before anything runs)")


def run(args) -> int:
    from lograd_fast.sweep import DEFAULT_SPEC, load_spec, to_toml
    from lograd_fast.sweep.results import summarize
    from lograd_fast.sweep.runner import sweep

    if args.print_default:
        print(to_toml(DEFAULT_SPEC), end="")
        return 0
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be a positive int, got {args.workers}")
    # user functions (import = "module:name") are looked up in the spec file's own
    # directory only (never the working directory: see lograd_fast/sweep/functions.py)
    spec = load_spec(args.spec if args.spec is not None else DEFAULT_SPEC)
    if not args.quiet:
        for note in dict.fromkeys(spec.skipped()):
            print(f"note: {note}: left out of that part of the grid", file=sys.stderr)
    scheduler = "dask" if args.dask else args.scheduler
    table = sweep(spec, args.out, scheduler=scheduler, dask=args.dask, workers=args.workers,
                  quiet=args.quiet, plot=not args.no_plot, yes=args.yes)
    attrs = table.attrs
    print(f"{spec.work()['cells']} cells x {spec.replicates} replicates: computed "
          f"{attrs['computed']}, reused {attrs['reused']} from {args.out}/cells")
    print(summarize(table))
    for what, path in attrs["paths"].items():
        print(f"{what:>18}: {path}")
    return 0
