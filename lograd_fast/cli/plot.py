"""``lograd-fast plot``: the figures of a sweep's results table."""

from __future__ import annotations

from pathlib import Path

NAME = "plot"
HELP = "plot a sweep's results (results.parquet or results.csv): variance vs parameter and n"


def add_arguments(parser) -> None:
    parser.add_argument("results", help="results.parquet, results.csv or a sweep directory")
    parser.add_argument("--out", default=None,
                        help="directory of the PNG files (default: next to the table)")
    parser.add_argument("--x", default=None,
                        help="parameter on the horizontal axis (default: the first swept one)")


def run(args) -> int:
    from lograd_fast.sweep.plots import plot_results
    from lograd_fast.sweep.results import load_table

    source = Path(args.results)
    table = load_table(source)
    out = Path(args.out) if args.out else (source if source.is_dir() else source.parent)
    figures = plot_results(table, out, x=args.x)
    for name in figures:
        print(out / f"{name}.png")
    return 0
