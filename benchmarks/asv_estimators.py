"""asv: gradient estimators through the public API, lograd_fast against the numpy baseline.

* streaming ``score_function(d, f, n, baseline=...)`` with an njit reward, for every
  family of the case table (the reward is ``sum((x - 1)^2)`` over the draw);
* ``score_function(d, rewards=r, x=x, baseline="loo")``: RLOO from external rewards
  (``R`` problems x ``N`` draws x ``D`` dims, a diagonal Normal).
"""

from __future__ import annotations

import numba
import numpy as np

import lograd_fast as lf

from ._common import FAMILIES, make_dist, min_times, size

TRACK_REPEATS = 3


@numba.njit
def reward(x):
    acc = 0.0
    for v in x:
        acc += (v - 1.0) ** 2
    return acc


class StreamingScoreFunction:
    params = (list(FAMILIES), [None, "loo"], ["cpu", "numpy"])
    param_names = ("family", "baseline", "backend")

    def setup(self, family, baseline, backend):
        self.dist = make_dist(family, backend)
        self.n = size(2**16, 2**10) if backend == "cpu" else size(2**13, 2**10)
        lf.score_function(self.dist, reward, 64, seed=0, baseline=baseline)

    def time_score_function(self, family, baseline, backend):
        lf.score_function(self.dist, reward, self.n, seed=0, baseline=baseline)


class StreamingSpeedUp:
    params = (list(FAMILIES),)
    param_names = ("family",)

    def setup(self, family):
        n = size(2**14, 2**10)
        cpu, base = make_dist(family, "cpu"), make_dist(family, "numpy")
        self.calls = {
            "cpu": lambda: lf.score_function(cpu, reward, n, seed=0, baseline="loo"),
            "numpy": lambda: lf.score_function(base, reward, n, seed=0, baseline="loo")}

    def track_speedup_vs_numpy(self, family):
        t = min_times(self.calls, TRACK_REPEATS)
        return t["numpy"] / t["cpu"]

    track_speedup_vs_numpy.unit = "speed-up (x)"


class RLOOFromRewards:
    params = ([(size(100, 8), size(100, 8), 16), (size(1000, 16), size(1000, 16), 16)],)
    param_names = ("R_N_D",)

    def setup(self, shape):
        R, N, D = shape
        self.calls = {}
        for backend in ("cpu", "numpy"):
            d = lf.Normal(np.zeros((R, D)), np.zeros((R, D)), event_ndims=1, backend=backend)
            x = d.sample(N, seed=0)
            r = -((x - 1.0) ** 2).sum(axis=-1)
            self.calls[backend] = (lambda d=d, x=x, r=r:
                                   lf.score_function(d, rewards=r, x=x, baseline="loo"))

    def time_rloo(self, shape):
        self.calls["cpu"]()

    def track_speedup_vs_numpy(self, shape):
        t = min_times(self.calls, TRACK_REPEATS)
        return t["numpy"] / t["cpu"]

    track_speedup_vs_numpy.unit = "speed-up (x)"
