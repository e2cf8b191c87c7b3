"""asv: the random numbers themselves: standard normal draws against numpy's generators.

lograd_fast computes its normals from Philox4x32-10 counters in vectorised passes
(Box-Muller, two float64 or four float32 normals per block); numpy's ``Generator`` is
sequential (PCG64, or Philox for a counter-based peer).
"""

from __future__ import annotations

import numpy as np

import lograd_fast as lf

from ._common import min_times, size

SIZES = (2**12, size(2**22, 2**14))
TRACK_REPEATS = 3


class StandardNormal:
    """``Normal(0, 0).sample(n, out=x)`` and numpy's ``standard_normal(out=x)``."""

    params = (["lograd_fast", "numpy baseline", "Generator(PCG64)", "Generator(Philox)"],
              list(SIZES), ["float64", "float32"])
    param_names = ("impl", "n", "dtype")

    def setup(self, impl, n, dtype):
        x = np.empty(n, dtype)
        if impl in ("lograd_fast", "numpy baseline"):
            backend = "cpu" if impl == "lograd_fast" else "numpy"
            d = lf.Normal(np.zeros((), dtype), np.zeros((), dtype), backend=backend)
            self.call = lambda: d.sample(n, seed=1, out=x)
        else:
            bitgen = np.random.PCG64(0) if "PCG64" in impl else np.random.Philox(0)
            rng = np.random.Generator(bitgen)
            self.call = lambda: rng.standard_normal(out=x, dtype=x.dtype)
        self.call()

    def time_standard_normal(self, impl, n, dtype):
        self.call()


class StandardNormalSpeedUp:
    """lograd_fast's normal draws over ``Generator(PCG64).standard_normal``, side by side."""

    params = (list(SIZES), ["float64", "float32"])
    param_names = ("n", "dtype")

    def setup(self, n, dtype):
        x, y = np.empty(n, dtype), np.empty(n, dtype)
        d = lf.Normal(np.zeros((), dtype), np.zeros((), dtype))
        rng = np.random.Generator(np.random.PCG64(0))
        self.calls = {"lograd_fast": lambda: d.sample(n, seed=1, out=x),
                      "numpy": lambda: rng.standard_normal(out=y, dtype=y.dtype)}

    def track_speedup_vs_generator(self, n, dtype):
        t = min_times(self.calls, TRACK_REPEATS)
        return t["numpy"] / t["lograd_fast"]

    track_speedup_vs_generator.unit = "speed-up (x)"
