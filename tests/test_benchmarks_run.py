"""The benchmark suites still run (tiny sizes): a broken benchmark fails CI.

``python -m pytest benchmarks`` with ``LOGRAD_BENCH_QUICK=1`` runs every pytest-benchmark
file once as a test (pyproject.toml passes ``--benchmark-disable``); the asv classes
and ``lograd-fast bench --quick`` are exercised on a few cases.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _env():
    return dict(os.environ, LOGRAD_BENCH_QUICK="1")


@pytest.mark.skipif(importlib.util.find_spec("pytest_benchmark") is None,
                    reason="pytest-benchmark is not installed (the `bench` extra)")
def test_pytest_benchmark_suite_runs():
    proc = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "-q",
                           "-p", "no:cacheprovider"], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout


ASV_SNIPPET = """
import inspect, sys
sys.path.insert(0, {root!r})
import itertools, importlib, pkgutil
import benchmarks
ran = 0
for info in pkgutil.iter_modules(benchmarks.__path__):
    if not info.name.startswith("asv_"):
        continue
    module = importlib.import_module("benchmarks." + info.name)
    for cls in [v for v in vars(module).values() if inspect.isclass(v)
                and v.__module__ == module.__name__]:
        methods = [m for m in dir(cls) if m.startswith(("time_", "peakmem_", "track_"))]
        if not methods:
            continue
        grid = list(itertools.product(*cls.params))  # ours are all tuples of lists
        for args in grid[:2] + grid[-1:]:
            obj = cls()
            try:
                obj.setup(*args)
            except NotImplementedError:  # asv's "skip"; asv still calls teardown
                todo = []
            else:
                todo = methods
            for m in todo:
                getattr(obj, m)(*args)
                ran += 1
            if hasattr(obj, "teardown"):
                obj.teardown(*args)
print("RAN", ran)
"""


def test_asv_benchmarks_run():
    """A few parameter sets of every asv class (asv itself need not be installed;
    the ``timeraw_*`` compile benchmarks are covered by bench_compile.py)."""
    proc = subprocess.run([sys.executable, "-c", ASV_SNIPPET.format(root=str(ROOT))], cwd=ROOT,
                          env=_env(), capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert int(proc.stdout.split("RAN")[-1]) > 10


# asv runs a ``timeraw_*`` benchmark's code in a fresh interpreter, pasted into this
# template (asv_runner.benchmarks.timeraw._SeparateProcessTimer): a non-raw triple-quoted
# string, so escapes in the code are interpreted once before it runs.
ASV_TIMERAW_TEMPLATE = '''
from timeit import timeit, default_timer as timer
print(repr(timeit(stmt="""{stmt}""", setup="""{setup}""", number=1, timer=timer)))
'''


def test_asv_timeraw_code_runs_as_asv_runs_it(tmp_path):
    """The compile benchmarks' code, executed the way asv executes it (one family/op)."""
    import textwrap

    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks import asv_compile
    finally:
        sys.path.remove(str(ROOT))
    cache = asv_compile.fill_cache(str(tmp_path / "kernels"), [("Normal", "log_prob")])
    assert any(p.suffix == ".nbc" for p in (tmp_path / "kernels").rglob("*"))
    codes = [asv_compile.FirstCallCold().timeraw_first_call_cold("Normal", "log_prob"),
             asv_compile.FirstCallCached().timeraw_first_call_cached(cache, "Normal", "log_prob"),
             asv_compile.timeraw_import()]
    for code in codes:
        stmt = textwrap.dedent(code).replace('"""', r'\"\"\"')
        proc = subprocess.run([sys.executable, "-c",
                               ASV_TIMERAW_TEMPLATE.format(stmt=stmt, setup="")],
                              cwd=ROOT, env=_env(), capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, code + proc.stderr[-3000:]
        assert float(proc.stdout.strip()) > 0.0


def test_cli_bench_quick(tmp_path):
    out = tmp_path / "bench.md"
    proc = subprocess.run([sys.executable, "-m", "lograd_fast.cli", "bench", "--quick",
                           "--no-optional", "--cases", "std-normal,small-rl", "--out", str(out)],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = out.read_text(encoding="utf-8")
    assert "| case |" in text and "numpy baseline" in text and "Machine:" in text


def test_update_readme_splices_between_markers(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import update_readme
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Speed\n{update_readme.START}\nold\n{update_readme.END}\ntail\n")
    table = tmp_path / "t.md"
    table.write_text("| a |\n|---|\n| 1 |\n")
    assert update_readme.main(["--from", str(table), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "old" not in text and "| 1 |" in text and text.endswith("tail\n")
    with pytest.raises(ValueError):
        update_readme.splice("no markers", "t")
