"""Timing side by side: contenders of a case run round-robin in one process, the
minimum of each is kept (a burst of load hits every contender alike)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

LOGRAD = "lograd_fast"
#: the headline comparator: what a numpy user writes (``numpy.random.Generator`` and the
#: vectorised formulas, the fastest plain-numpy way)
NUMPY = "numpy (idiomatic)"
#: ``backend="numpy"``: lograd_fast's own algorithms in numpy, drawing the same numbers;
#: the reproducibility reference, with its own column, never the headline
BASELINE = "numpy baseline"


def best_times(contenders: dict[str, Callable[[], object]], repeats: int,
               budget_s: float = 20.0, calls: int = 1,
               timer: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Seconds per call of each contender: the minimum over ``repeats`` rounds.

    Contenders run round-robin after one untimed warm-up call each (compilation,
    page faults of first use).  A contender whose rounds have cost more than
    ``budget_s`` seconds stops after two rounds.  ``calls`` calls are timed per
    round and averaged (for calls of microseconds).  ``timer``: wall time by default,
    ``time.process_time`` for CPU time.
    """
    for fn in contenders.values():
        fn()
    best = {name: math.inf for name in contenders}
    spent = dict.fromkeys(contenders, 0.0)
    done = dict.fromkeys(contenders, 0)
    for _ in range(repeats):
        for name, fn in contenders.items():
            if done[name] >= 2 and spent[name] > budget_s:
                continue
            t0 = timer()
            for _ in range(calls):
                fn()
            dt = timer() - t0
            spent[name] += dt
            done[name] += 1
            best[name] = min(best[name], dt / calls)
    return best


@dataclass
class Row:
    """One line of the table: the contenders' times for one case.

    ``baseline`` is the contender of the headline speed-up (idiomatic numpy unless
    said); ``elements`` and the bytes per element that the primary contender reads and
    writes (its minimum memory traffic) give its bandwidth and the fraction of the
    machine's measured bandwidth (:mod:`.machine`) it reaches."""

    id: str
    title: str
    size: str
    times: dict[str, float]
    target: str
    met: bool | None
    primary: str = LOGRAD
    baseline: str | None = NUMPY
    unit: str = "s"
    note: str = ""
    extra: dict = field(default_factory=dict)
    elements: int | None = None
    bytes_written: float = 0.0  # per element
    bytes_read: float = 0.0  # per element

    def ratio(self, other: str) -> float:
        return self.times[other] / self.times[self.primary]

    def memory(self, bandwidth: dict) -> dict | None:
        """Bytes per element, GB/s of the primary contender and the fraction of the
        machine's bandwidth for this kind of traffic (write-only: ``fill``, with
        reads: ``copy``, both at the benchmark's thread count), or None."""
        if not self.elements or not (self.bytes_written or self.bytes_read):
            return None
        per = self.bytes_written + self.bytes_read
        gbps = per * self.elements / self.times[self.primary] / 1e9
        kind = "copy" if self.bytes_read else "fill"
        machine = bandwidth.get(f"{kind}_threads_GBps", float("nan"))
        return {"bytes_per_element": per, "GBps": gbps, "kind": kind,
                "machine_GBps": machine, "fraction": gbps / machine}


@dataclass
class Context:
    quick: bool
    repeats: int
    threads: int
    optional: bool
    torch: object = None
    jax: object = None
    bandwidth: dict = field(default_factory=dict)

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full
