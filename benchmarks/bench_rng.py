"""pytest-benchmark: standard normal draws, lograd_fast against other generators.

lograd_fast: ``Normal(0, 0).sample(n, out=x)`` (Philox4x32-10 counters, Box-Muller in
vectorised passes, parallel); numpy: ``Generator(PCG64)`` and ``Generator(Philox)``
(``standard_normal``, one thread); torch: ``torch.randn``; JAX: ``jax.random.normal``
under jit.
"""

from __future__ import annotations

import numpy as np
import pytest

import lograd_fast as lf

from ._common import SPEEDUPS, min_times, size
from ._competitors import jax_module, torch_module

N = size(2**22, 2**12)
IMPLS = ("lograd_fast", "numpy_baseline", "Generator(PCG64)", "Generator(Philox)", "torch",
         "jax")


def _call(impl, dtype):
    x = np.empty(N, dtype)
    if impl in ("lograd_fast", "numpy_baseline"):
        backend = "cpu" if impl == "lograd_fast" else "numpy"
        d = lf.Normal(np.zeros((), dtype), np.zeros((), dtype), backend=backend)
        return lambda: d.sample(N, seed=1, out=x)
    if impl.startswith("Generator"):
        bitgen = np.random.PCG64(0) if "PCG64" in impl else np.random.Philox(0)
        rng = np.random.Generator(bitgen)
        return lambda: rng.standard_normal(out=x, dtype=x.dtype)
    if impl == "torch":
        torch = torch_module()
        if torch is None:
            return None
        tx = torch.from_numpy(x)
        return lambda: torch.randn(N, out=tx)
    jax = jax_module()
    if jax is None:
        return None
    f = jax.jit(lambda key: jax.random.normal(key, (N,), dtype))
    key = jax.random.PRNGKey(0)
    return lambda: f(key).block_until_ready()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("impl", IMPLS)
def test_standard_normal(benchmark, impl, dtype):
    call = _call(impl, np.dtype(dtype))
    if call is None:
        pytest.skip(f"{impl} is not installed")
    call()
    benchmark.group = f"standard normal {dtype} (n={N})"
    benchmark.extra_info.update(impl=impl, n=N, dtype=dtype)
    benchmark(call)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_speedup_vs_generator(benchmark, dtype):
    """``Normal(0, 0).sample(out=)`` timed, and its speed-up over
    ``Generator(PCG64).standard_normal(out=)`` measured side by side."""
    ours, numpy = _call("lograd_fast", np.dtype(dtype)), _call("Generator(PCG64)", np.dtype(dtype))
    t = min_times({"lograd_fast": ours, "numpy": numpy}, 3)
    ratio = t["numpy"] / t["lograd_fast"]
    SPEEDUPS[f"standard normal {dtype} (n={N})"] = ratio
    benchmark.group = f"speed-up over Generator(PCG64) (n={N})"
    benchmark.extra_info.update(dtype=dtype, speedup_vs_numpy=ratio)
    benchmark(ours)
