"""The generic CUDA drivers (numba-cuda): the same entry points as ``cpu.py``.

Imported only when ``backend="cuda"`` is used.  Each kernel is a grid-stride loop
over atoms calling the family's scalar maths (compiled as device functions), with
the same counter-based streams as the CPU, so samples agree with the CPU backend:
each thread computes its atom's own variates (``rng.normal_variate`` & co. on a
stream tuple without a buffer) where the CPU computes them for a chunk of atoms.

Without a GPU the kernels run in Numba's CUDA simulator when
``NUMBA_ENABLE_CUDASIM=1`` is set before numba is imported (slow: tiny sizes only).
"""

from __future__ import annotations

import numpy as np

# Importing numba.cuda needs numba-cuda but no GPU: the kernels below can be
# compiled to PTX anywhere (the CI test does).
from numba import config as _config  # noqa: E402
from numba import cuda  # noqa: E402

from .cuda_status import require, status  # noqa: F401
from .dispatch import log_prob1, sample1, sample_score1, score1  # noqa: E402
from .rng import make_stream  # noqa: E402

THREADS = 128 if _config.ENABLE_CUDASIM else 256
MAX_BLOCKS = 4 if _config.ENABLE_CUDASIM else 65536


@cuda.jit
def _sample_kernel(p, key, x, B):
    start = cuda.grid(1)
    for a in range(start, x.shape[0], cuda.gridsize(1)):
        sample1(p, a % B, make_stream(key[0], key[1], key[2], key[3] + a), x, a)


@cuda.jit
def _log_prob_kernel(p, x, out, B, E):
    start = cuda.grid(1)
    for g in range(start, out.shape[0], cuda.gridsize(1)):
        acc = 0.0
        for e in range(E):
            a = g * E + e
            acc += log_prob1(p, a % B, x, a)
        out[g] = acc


@cuda.jit
def _score_kernel(p, x, s, B):
    start = cuda.grid(1)
    for a in range(start, x.shape[0], cuda.gridsize(1)):
        score1(p, a % B, x, a, s)


@cuda.jit
def _sample_score_kernel(p, key, x, s, out, B, E):
    start = cuda.grid(1)
    for g in range(start, out.shape[0], cuda.gridsize(1)):
        acc = 0.0
        for e in range(E):
            a = g * E + e
            st = make_stream(key[0], key[1], key[2], key[3] + a)
            acc += sample_score1(p, a % B, st, x, a, s)
        out[g] = acc


KERNELS = {
    "sample": _sample_kernel,
    "log_prob": _log_prob_kernel,
    "score": _score_kernel,
    "sample_score": _sample_score_kernel,
}


def _grid(n: int) -> tuple[int, int]:
    return max(1, min(MAX_BLOCKS, -(-n // THREADS))), THREADS


def to_device_record(record):
    """Copy every field of a parameter record to the GPU (once per distribution)."""
    return type(record)(*(cuda.to_device(np.ascontiguousarray(a)) for a in record))


def empty(shape, dtype):
    return cuda.device_array(shape, dtype=dtype)


def _dev(a):
    return cuda.to_device(np.ascontiguousarray(a)) if isinstance(a, np.ndarray) else a


def check_device_x(dist, x):
    """Validate a device array ``x`` (shape, dtype) without copying it to the host.

    ``x`` is any object with ``__cuda_array_interface__`` (a torch tensor, a CuPy or
    numba array): its numba view gives the numpy dtype (a torch tensor's ``dtype`` is
    torch's own, which numpy cannot read; seen on a GPU)."""
    arr = cuda.as_cuda_array(x)
    core = dist.full_shape + dist.sample_event_shape
    k = len(core)
    shape = tuple(arr.shape)
    if len(shape) < k or shape[len(shape) - k:] != core or len(shape) > k + 1:
        raise ValueError(f"x has shape {shape}; expected (n, *{core}) or {core}")
    if arr.dtype != dist._sample_dtype:
        raise ValueError(f"x on the GPU must have dtype {dist._sample_dtype}, got {arr.dtype}")
    return arr, (shape[0] if len(shape) == k + 1 else None)


def sample(p, key, x, B):
    _sample_kernel[_grid(x.shape[0])](p, key, x, B)


def log_prob(p, x, out, B, E):
    _log_prob_kernel[_grid(out.shape[0])](p, _dev(x), out, B, E)


def score(p, x, s, B):
    _score_kernel[_grid(x.shape[0])](p, _dev(x), s, B)


def sample_score(p, key, x, s, out, B, E):
    _sample_score_kernel[_grid(out.shape[0])](p, key, x, s, out, B, E)
