"""The thread pool of the generic drivers and the split of a call between threads.

Parallelism: every range function is compiled ``nogil=True``, and a call of more
than one chunk is cut into one contiguous part per thread (``numba.get_num_threads()``),
run by a small pool of Python threads while the calling thread runs the first part.
Why not ``parallel=True``/``prange``: a parfor wrapper is a second compiled function
per (family, op, dtype) — measured 1.3-2 s CPU of compile each, more than half of all
compile time on a cold cache — whereas these threads reuse the one serial range
function.  Waiting threads block instead of spinning (OpenMP's pool spins), which
matters when RL environments share the cores.  Parts are fixed by atom index and
every atom has its own Philox counter, so results do not depend on the split.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba.core import compiler_lock as _compiler_lock

CHUNK = 4096  # atoms per block-0 prepass (and the unit of the split between threads)
MIN_CHUNKS = 4  # chunks per thread, at least: smaller calls run in the calling thread

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _forget_pool() -> None:
    """In a forked child the pool's threads do not exist: start a new pool there
    (RL code forks environment workers after lograd_fast has run)."""
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


# Numba compiles under one process-wide re-entrant lock.  A fork while another thread
# holds it (compiling or loading a kernel) gives a child whose lock belongs to a thread
# that does not exist there: its first compile waits forever.  So fork() waits until
# no other thread is inside Numba's compiler (the forking thread then holds the lock
# and releases it on both sides), as glibc does with malloc's locks.
_COMPILER_LOCK = getattr(_compiler_lock.global_compiler_lock, "_lock",
                         _compiler_lock.global_compiler_lock)


def _child_after_fork() -> None:
    _COMPILER_LOCK.release()
    _forget_pool()


os.register_at_fork(before=_COMPILER_LOCK.acquire, after_in_parent=_COMPILER_LOCK.release,
                    after_in_child=_child_after_fork)


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        with _POOL_LOCK:
            if _POOL is None:
                _POOL = ThreadPoolExecutor(max_workers=max(1, numba.config.NUMBA_NUM_THREADS - 1),
                                           thread_name_prefix="lograd_fast")
    return _POOL


# Calls of fewer chunks run in the calling thread whatever the thread count: waking a
# pool thread costs ~50-100 us here (measured: 8192 Normal atoms took 176 us on 2
# threads against 128 us on one), so each part gets >= MIN_CHUNKS chunks.
ONE_PART_CHUNKS = 2 * MIN_CHUNKS


def one_part(n_chunks: int) -> bool:
    """Whether a call of ``n_chunks`` chunks runs in the calling thread
    (:data:`ONE_PART_CHUNKS`)."""
    return n_chunks < ONE_PART_CHUNKS


def n_parts(n_chunks: int) -> int:
    if one_part(n_chunks):  # the common small call: skip get_num_threads (2 us)
        return 1
    return max(1, min(numba.get_num_threads(), n_chunks // MIN_CHUNKS))


def _on_threads(calls: list) -> list:
    """Run ``fn(*args)`` for each ``(fn, args)`` of ``calls``: the first in the calling
    thread, the others on the pool; returns the results in order, re-raises the first
    error."""
    futures = [_pool().submit(fn, *args) for fn, args in calls[1:]]
    try:
        first = calls[0][0](*calls[0][1])
    finally:
        rest = [f.result() for f in futures]
    return [first] + rest


def run_split(fn, args: tuple, n_items: int, per: int, words: np.ndarray | None = None) -> list:
    """``fn(*args, lo, hi[, words[t]])`` over ``[0, n_items)``, split across threads;
    the results of the parts, in order."""
    n_chunks = -(-n_items // per)
    parts = n_parts(n_chunks)
    if parts == 1:  # no pool, no lists (small RL calls, one thread)
        return [fn(*args, 0, n_items) if words is None else fn(*args, 0, n_items, words[0])]
    bounds = [min(n_items, n_chunks * t // parts * per) for t in range(parts)]
    bounds.append(n_items)
    return _on_threads([(fn, args + (bounds[t], bounds[t + 1])
                         + (() if words is None else (words[t],))) for t in range(parts)])


def run_strided(fn, args: tuple, n_units: int) -> None:
    """``fn(*args, t, T)`` for ``t < T = min(threads, n_units)``: thread ``t`` takes the
    units ``t, t + T, ...`` (the streaming estimators' lanes, whose results are
    combined in unit order afterwards, so ``T`` never changes them)."""
    T = max(1, min(numba.get_num_threads(), n_units))
    _on_threads([(fn, args + (t, T)) for t in range(T)])


def per_items(E: int) -> int:
    """Items (groups of ``E`` atoms) per chunk."""
    return max(1, CHUNK // max(E, 1))
