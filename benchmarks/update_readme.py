"""Regenerate the README's speed table from ``lograd-fast bench`` (never typed by hand).

    python benchmarks/update_readme.py                    # run the full bench, then splice
    python benchmarks/update_readme.py --from bench.md    # splice an existing --out file
    python benchmarks/update_readme.py -- --threads 2     # extra arguments for the bench

The table replaces whatever lies between ``<!-- bench-table-start -->`` and
``<!-- bench-table-end -->`` in README.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

START = "<!-- bench-table-start -->"
END = "<!-- bench-table-end -->"
ROOT = Path(__file__).resolve().parent.parent


def splice(readme: str, table: str) -> str:
    """``readme`` with the text between the markers replaced by ``table``."""
    if readme.count(START) != 1 or readme.count(END) != 1 or \
            readme.index(START) > readme.index(END):
        raise ValueError(f"README must contain {START} ... {END} exactly once, in that order")
    head, rest = readme.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{table.strip()}\n{END}{tail}"


def run_bench(extra: list[str]) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.md"
        cmd = [sys.executable, "-m", "lograd_fast.cli", "bench", "--out", str(out), *extra]
        print("running:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        return out.read_text(encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", metavar="FILE.md",
                        help="a table written by `lograd-fast bench --out` (default: run it)")
    parser.add_argument("--readme", default=str(ROOT / "README.md"))
    parser.add_argument("bench_args", nargs="*", help="extra `lograd-fast bench` arguments")
    args = parser.parse_args(argv)
    table = Path(args.source).read_text(encoding="utf-8") if args.source \
        else run_bench(args.bench_args)
    readme = Path(args.readme)
    readme.write_text(splice(readme.read_text(encoding="utf-8"), table), encoding="utf-8")
    print(f"updated {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
