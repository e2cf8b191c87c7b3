"""The machine a benchmark ran on: CPU, cores, threads, versions, memory bandwidth."""

from __future__ import annotations

import os
import platform
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .timing import Context, best_times


def measure_bandwidth(ctx: Context) -> dict:
    """This machine's memory bandwidth, from numpy on arrays far beyond L3: one thread,
    and ``ctx.threads`` threads each on its share of the array (numpy releases the GIL
    in these loops).  ``copy`` (``np.copyto``) counts the bytes read and written,
    ``fill`` (``ndarray.fill``) the bytes written."""
    n = ctx.size(2**25, 2**21)  # 256 MiB per float64 array (quick: 16 MiB)
    a = np.full(n, 1.5)
    b = np.empty_like(a)
    b.fill(0.0)
    T = max(1, ctx.threads)
    parts = [slice(n * t // T, n * (t + 1) // T) for t in range(T)]
    with ThreadPoolExecutor(T) as pool:
        def on_threads(fn):
            return lambda: list(pool.map(fn, parts))

        t = best_times({"copy": lambda: np.copyto(b, a), "fill": lambda: b.fill(2.5),
                        "copy_threads": on_threads(lambda sl: np.copyto(b[sl], a[sl])),
                        "fill_threads": on_threads(lambda sl: b[sl].fill(2.5))},
                       max(ctx.repeats, 3))
    return {"copy_GBps": 2 * a.nbytes / t["copy"] / 1e9,  # read + write
            "fill_GBps": a.nbytes / t["fill"] / 1e9,
            "copy_threads_GBps": 2 * a.nbytes / t["copy_threads"] / 1e9,
            "fill_threads_GBps": a.nbytes / t["fill_threads"] / 1e9,
            "threads": T, "array_MiB": a.nbytes / 2**20}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(ctx: Context) -> dict:
    import numba

    import lograd_fast as lf

    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": f"{ctx.threads} (Numba, threading layer {_threading_layer()})",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "lograd_fast": lf.__version__,
    }
    if ctx.torch is not None:
        info["torch"] = f"{ctx.torch.__version__} ({ctx.torch.get_num_threads()} threads)"
    if ctx.jax is not None:
        import jaxlib

        info["jax"] = f"{ctx.jax.__version__} (jaxlib {jaxlib.__version__}, CPU, x64)"
    bw = ctx.bandwidth
    if bw:
        info["memory bandwidth"] = (
            f"numpy on {bw['array_MiB']:.0f} MiB arrays, {bw['threads']} threads: "
            f"copy {bw['copy_threads_GBps']:.1f} GB/s (read + write), fill "
            f"{bw['fill_threads_GBps']:.1f} GB/s (write); one thread: copy "
            f"{bw['copy_GBps']:.1f}, fill {bw['fill_GBps']:.1f} GB/s")
    return info


def _threading_layer() -> str:
    import numba

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        return f"{numba.config.THREADING_LAYER} (configured)"
