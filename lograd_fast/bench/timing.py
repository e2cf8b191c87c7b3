"""Timing side by side: contenders of a case run round-robin in one process, the
minimum of each is kept (a burst of load hits every contender alike)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

BASELINE = "numpy baseline"
LOGRAD = "lograd_fast"


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
    """One line of the table: the contenders' times for one case."""

    id: str
    title: str
    size: str
    times: dict[str, float]
    target: str
    met: bool | None
    primary: str = LOGRAD
    baseline: str | None = BASELINE
    unit: str = "s"
    note: str = ""
    extra: dict = field(default_factory=dict)

    def ratio(self, other: str) -> float:
        return self.times[other] / self.times[self.primary]


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
