"""The embedded default sweep (``lograd-fast sweep`` with no spec file).

``x ~ N(mu, 1)``, ``f(x) = (x - k)^2`` for ``k`` in {-3, 1} over a grid of ``mu``: the
setting of Mohamed et al. (2020, JMLR, Fig. 2), where every estimator's variance is
known in closed form (e.g. at ``mu = k = 1`` the single-draw variances of d/dmu are
15 (score function), 6 (optimal baseline) and 4 (pathwise); at ``mu = 1, k = -3``
the score function's is 495).  Every estimator and baseline lograd_fast provides,
three sample sizes, a few replicates: under a minute on two cores once the kernels
are compiled (the first run after an install compiles them, once).
"""

from __future__ import annotations

__all__ = ["DEFAULT_SPEC"]

DEFAULT_SPEC: dict = {
    "seed": 2020,
    "replicates": 6,
    "n": [1_000, 10_000, 100_000],
    "estimators": "all",
    "baselines": "all",
    "backend": "cpu",
    "dtype": "float64",
    "distribution": {"family": "normal",
                     "loc": {"start": -3.0, "stop": 3.0, "num": 7},
                     "scale": 1.0},
    "f": {"name": "(x-k)^2", "k": [-3.0, 1.0]},
}
