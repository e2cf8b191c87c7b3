"""asv: gradient estimators through the public API, lograd_fast against idiomatic numpy
(the same estimate written with ``numpy.random.Generator`` and arrays) and against the
numpy baseline (``backend="numpy"``).

* streaming ``score_function(d, f, n, baseline=...)`` with an njit reward, for every
  family of the case table (the reward is ``sum((x - 1)^2)`` over the draw);
* ``score_function(d, rewards=r, x=x, baseline="loo")``: RLOO from external rewards
  (``R`` problems x ``N`` draws x ``D`` dims, a diagonal Normal).
"""

from __future__ import annotations

import numpy as np

import lograd_fast as lf
from lograd_fast.bench.cases import quadratic_reward

from ._common import FAMILIES, make_dist, min_times, size

TRACK_REPEATS = 3


reward = quadratic_reward()


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
    """Streaming ``score_function(baseline="loo")`` over the numpy baseline, every family."""

    params = (list(FAMILIES),)
    param_names = ("family",)

    def setup(self, family):
        n = size(2**14, 2**10)
        cpu, base = make_dist(family, "cpu"), make_dist(family, "numpy")
        self.calls = {
            "cpu": lambda: lf.score_function(cpu, reward, n, seed=0, baseline="loo"),
            "numpy": lambda: lf.score_function(base, reward, n, seed=0, baseline="loo")}

    def track_speedup_vs_numpy_baseline(self, family):
        t = min_times(self.calls, TRACK_REPEATS)
        return t["numpy"] / t["cpu"]

    track_speedup_vs_numpy_baseline.unit = "speed-up (x)"


class StreamingSpeedUpNumpy:
    """Streaming ``score_function(baseline="loo")`` of a Normal (D = 8) over the same
    estimate in idiomatic numpy (every draw, reward and score as arrays)."""

    params = ([size(2**16, 2**10), size(2**22, 2**12)],)
    param_names = ("n",)

    def setup(self, n):
        from lograd_fast.bench.competitors import numpy_normal_score_function_loo

        loc, log_scale = np.zeros(8), np.zeros(8)
        cpu = lf.Normal(loc, log_scale)
        rng = np.random.default_rng(0)
        self.calls = {
            "cpu": lambda: lf.score_function(cpu, reward, n, seed=0, baseline="loo"),
            "numpy": lambda: numpy_normal_score_function_loo(
                rng, loc, log_scale, lambda x: ((x - 1.0) ** 2).sum(axis=-1), n)}

    def track_speedup_vs_numpy(self, n):
        t = min_times(self.calls, TRACK_REPEATS)
        return t["numpy"] / t["cpu"]

    track_speedup_vs_numpy.unit = "speed-up (x)"


def _numpy_rloo_from_rewards(loc, log_scale, x, r):
    """Idiomatic numpy: the Normal's scores from ``x``, then leave-one-out RLOO."""
    from lograd_fast.bench.competitors import numpy_normal_score, numpy_rloo

    s = numpy_normal_score(loc, log_scale, x)  # each (N, R, D)
    scores = np.concatenate([s["loc"], s["log_scale"]], axis=-1).swapaxes(0, 1)
    return numpy_rloo(r.T, scores)


class RLOOFromRewards:
    params = ([(size(100, 8), size(100, 8), 16), (size(1000, 16), size(1000, 16), 16)],)
    param_names = ("R_N_D",)

    def setup(self, shape):
        R, N, D = shape
        self.calls = {}
        loc, log_scale = np.zeros((R, D)), np.zeros((R, D))
        for backend in ("cpu", "numpy"):
            d = lf.Normal(loc, log_scale, event_ndims=1, backend=backend)
            x = d.sample(N, seed=0)
            r = -((x - 1.0) ** 2).sum(axis=-1)
            self.calls[backend] = (lambda d=d, x=x, r=r:
                                   lf.score_function(d, rewards=r, x=x, baseline="loo"))
        self.calls["numpy idiomatic"] = lambda: _numpy_rloo_from_rewards(loc, log_scale, x, r)

    def time_rloo(self, shape):
        self.calls["cpu"]()

    def track_speedup_vs_numpy(self, shape):
        t = min_times({k: self.calls[k] for k in ("cpu", "numpy idiomatic")}, TRACK_REPEATS)
        return t["numpy idiomatic"] / t["cpu"]

    track_speedup_vs_numpy.unit = "speed-up (x)"

    def track_speedup_vs_numpy_baseline(self, shape):
        t = min_times({k: self.calls[k] for k in ("cpu", "numpy")}, TRACK_REPEATS)
        return t["numpy"] / t["cpu"]

    track_speedup_vs_numpy_baseline.unit = "speed-up (x)"
