"""asv: every family of the case table, every operation, both backends.

Sizes are atoms per call (``n`` draws x 8 atoms; a categorical atom is a row of
K=16 classes).  ``track_*`` benchmarks time lograd_fast and a competitor side by side
inside one call (min of a few round-robin repeats) and record the ratio, so the
speed-up is comparable across machines and commits even when the absolute times are
not: against idiomatic numpy (``SpeedUp``, the headline, for the families with a
hand-written numpy version) and against the numpy baseline (``SpeedUpBaseline``,
lograd_fast's own algorithms in numpy, every family).
"""

from __future__ import annotations

import numba

from ._common import (
    DTYPES,
    FAMILIES,
    OPS,
    draws_for,
    make_dist,
    make_inputs,
    min_times,
    op_call,
    out_buffers,
    size,
)

SIZES = (2**12, size(2**20, 2**14))
TRACK_REPEATS = 3


def _max_threads() -> int:
    return numba.config.NUMBA_NUM_THREADS


class Ops:
    """Time of one operation on a benchmark-sized batch."""

    params = (list(FAMILIES), list(OPS), ["cpu", "numpy"], list(SIZES), list(DTYPES))
    param_names = ("family", "op", "backend", "atoms", "dtype")

    def setup(self, family, op, backend, atoms, dtype):
        self.dist = make_dist(family, backend, dtype)
        self.n = draws_for(self.dist, atoms)
        self.call = op_call(self.dist, op, self.n)
        self.call()  # compile outside the timing

    def time_op(self, family, op, backend, atoms, dtype):
        self.call()


# Each parameter set is one benchmark process, so the grids below leave out the axes
# that Ops already covers (a full family x op x backend x size x dtype product for
# every kind of benchmark made `asv run --quick` take over an hour on 2 cores).
class PeakMemory:
    """Peak memory of the fused sample_and_score at the large size (new arrays)."""

    params = (list(FAMILIES), ["cpu", "numpy"])
    param_names = ("family", "backend")

    def setup(self, family, backend):
        dist = make_dist(family, backend)
        self.call = op_call(dist, "sample_and_score", draws_for(dist, SIZES[-1]))

    def peakmem_sample_and_score(self, family, backend):
        self.call()


class OutBuffers:
    """``out=`` against fresh arrays (allocation and first-touch page faults)."""

    params = (list(FAMILIES), [False, True], list(DTYPES))
    param_names = ("family", "out", "dtype")

    def setup(self, family, out, dtype):
        self.dist = make_dist(family, "cpu", dtype)
        n = draws_for(self.dist, SIZES[-1])
        op = "sample_and_score"
        self.call = op_call(self.dist, op, n, out=out_buffers(self.dist, op, n) if out else None)
        self.call()

    def time_sample_and_score(self, family, out, dtype):
        self.call()


class Threads:
    """Thread scaling of the fused sample_and_score (``numba.set_num_threads``)."""

    params = (list(FAMILIES), [1, 2, 4])
    param_names = ("family", "threads")

    def setup(self, family, threads):
        self.saved = numba.get_num_threads()  # asv calls teardown after a skip too
        if threads > _max_threads():
            raise NotImplementedError(f"only {_max_threads()} Numba threads here")
        numba.set_num_threads(threads)
        self.dist = make_dist(family)
        n = draws_for(self.dist, SIZES[-1])
        self.call = op_call(self.dist, "sample_and_score", n,
                            out=out_buffers(self.dist, "sample_and_score", n))
        self.call()

    def teardown(self, family, threads):
        numba.set_num_threads(self.saved)

    def time_sample_and_score(self, family, threads):
        self.call()


class SpeedUp:
    """lograd_fast (cpu) over idiomatic numpy (``numpy.random.Generator`` and vectorised
    formulas, ``lograd_fast.bench.competitors``), side by side at the large size; the
    families without a hand-written numpy version are skipped."""

    params = (list(FAMILIES), list(OPS), list(DTYPES))
    param_names = ("family", "op", "dtype")

    def setup(self, family, op, dtype):
        from ._competitors import WRITTEN_FOR, competitor

        if family not in WRITTEN_FOR:
            raise NotImplementedError(f"no idiomatic numpy version of {family}")
        dist = make_dist(family, "cpu", dtype)
        n = draws_for(dist, SIZES[-1])
        x = dist.sample(n, seed=0)
        params, kwargs = make_inputs(family, dtype)
        self.calls = {"cpu": op_call(dist, op, n, x=x),
                      "numpy": competitor(family, "numpy", op, params, kwargs, n, x)}

    def track_speedup_vs_numpy(self, family, op, dtype):
        t = min_times(self.calls, TRACK_REPEATS)
        return t["numpy"] / t["cpu"]

    track_speedup_vs_numpy.unit = "speed-up (x)"


class SpeedUpBaseline:
    """lograd_fast (cpu) over the numpy baseline (``backend="numpy"``, the same
    algorithms and random numbers), side by side at the large size."""

    params = (list(FAMILIES), list(OPS), list(DTYPES))
    param_names = ("family", "op", "dtype")

    def setup(self, family, op, dtype):
        self.calls = {}
        for backend in ("cpu", "numpy"):
            dist = make_dist(family, backend, dtype)
            self.calls[backend] = op_call(dist, op, draws_for(dist, SIZES[-1]))

    def track_speedup_vs_numpy_baseline(self, family, op, dtype):
        t = min_times(self.calls, TRACK_REPEATS)
        return t["numpy"] / t["cpu"]

    track_speedup_vs_numpy_baseline.unit = "speed-up (x)"


class Float32Gain:
    """float64 time / float32 time of the cpu kernels (bandwidth-bound ops gain most)."""

    params = (list(FAMILIES), list(OPS))
    param_names = ("family", "op")

    def setup(self, family, op):
        self.calls = {}
        for dtype in DTYPES:
            dist = make_dist(family, "cpu", dtype)
            n = draws_for(dist, SIZES[-1])
            self.calls[dtype] = op_call(dist, op, n, out=out_buffers(dist, op, n))

    def track_float32_gain(self, family, op):
        t = min_times(self.calls, TRACK_REPEATS)
        return t["float64"] / t["float32"]

    track_float32_gain.unit = "speed-up (x)"


class Entropy:
    """Entropy of a 2^16-row batch (no sampling; some families integrate numerically)."""

    params = (list(FAMILIES), ["cpu", "numpy"])
    param_names = ("family", "backend")

    def setup(self, family, backend):
        self.dist = make_dist(family, backend, batch=size(2**16, 2**10))
        self.dist.entropy()

    def time_entropy(self, family, backend):
        self.dist.entropy()
