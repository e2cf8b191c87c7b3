"""``lograd-fast info``: versions, threads, targets, cache directory, families."""

from __future__ import annotations

import os
import platform

NAME = "info"
HELP = "print versions, thread count, available targets, cache directory and families"


def add_arguments(parser) -> None:
    pass


def collect() -> dict:
    import numba
    import numpy as np

    import lograd_fast as lf
    from lograd_fast._engine import cache as _cache
    from lograd_fast._engine import cuda_status as _cuda_status

    target, detail = _cuda_status.status()
    targets = ["cpu", "numpy"]
    if target:
        targets.append(target)
    return {
        "lograd_fast": lf.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "numba threads": f"{numba.get_num_threads()} (NUMBA_NUM_THREADS="
                         f"{os.environ.get('NUMBA_NUM_THREADS', 'unset')}, "
                         f"threading layer: {numba.config.THREADING_LAYER})",
        "cpu cores": os.cpu_count(),
        "targets": ", ".join(targets),
        "cuda": detail if target else f"unavailable: {detail}",
        "cache dir": str(_cache.cache_dir()),
        "families": ", ".join(f"{name}({', '.join(params)})"
                              for name, params in lf.FAMILIES.items()),
    }


def run(args) -> int:
    for key, value in collect().items():
        print(f"{key:>14}: {value}")
    return 0
