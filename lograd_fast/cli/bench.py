"""``lograd-fast bench``: the headline speed table, every ratio measured side by side.

The cases, the competitors (idiomatic numpy, torch, JAX), the machine probe and the
report live in :mod:`lograd_fast.bench`; this module only parses the command line.
Ratios are ``time(other) / time(lograd_fast)``: above 1 means lograd_fast is faster.
``--out FILE.md`` writes the table as Markdown; ``benchmarks/update_readme.py`` puts it
in the README.
"""

from __future__ import annotations

import json
import os

from ..bench.cases import CASE_IDS, CASES, run_cases
from ..bench.competitors import import_jax, import_torch
from ..bench.machine import machine_info, measure_bandwidth
from ..bench.report import markdown_report
from ..bench.timing import Context

NAME = "bench"
HELP = "time the headline cases against idiomatic numpy, torch and JAX (and the numpy baseline)"


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
        ctx.torch = import_torch(threads)
        ctx.jax = import_jax()
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
