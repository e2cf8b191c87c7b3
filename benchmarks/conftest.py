"""pytest configuration of the benchmark suite.

``bench_*.py`` files are collected here only (the test run collects ``tests/``);
pyproject.toml passes ``--benchmark-disable``, so a plain ``python -m pytest
benchmarks`` runs every benchmark once as a test.  Time them with
``python -m pytest benchmarks --benchmark-enable`` (``--benchmark-only`` skips
non-benchmark tests, ``--benchmark-group-by=group`` shows the side-by-side tables).
``LOGRAD_BENCH_QUICK=1`` shrinks every size.  The ``test_speedup_*`` benchmarks also
time idiomatic numpy side by side and print the speed-ups after the run (and store each
in the benchmark's ``extra_info``, so ``--benchmark-json`` keeps them).
"""

from __future__ import annotations

import pytest


def pytest_collect_file(file_path, parent):
    if parent.session.isinitpath(file_path):
        return None  # named on the command line: pytest collects it itself
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_report_header(config):
    import numba

    from benchmarks._common import QUICK

    return (f"lograd_fast benchmarks: {'quick' if QUICK else 'full'} sizes, "
            f"{numba.get_num_threads()} Numba threads")


def pytest_terminal_summary(terminalreporter):
    from benchmarks._common import SPEEDUPS

    if SPEEDUPS:
        terminalreporter.section("lograd_fast speed-up over idiomatic numpy (side by side)")
        for name, ratio in sorted(SPEEDUPS.items()):
            terminalreporter.write_line(f"{name:<48} {ratio:7.2f}x")
