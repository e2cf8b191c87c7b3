"""Is a CUDA target available?  (No numba.cuda import unless it is installed.)"""

from __future__ import annotations

from ..errors import CudaUnavailableError

HOW = ("install the CUDA extra (pip install 'lograd_fast[cuda]') on a machine with an "
       "NVIDIA GPU and driver, or set NUMBA_ENABLE_CUDASIM=1 before importing numba to "
       "run the CUDA kernels in the (slow) simulator")


def status() -> tuple[str, str]:
    """``(target, detail)``: target is "cuda", "cuda-simulator" or "" (unavailable).

    Under the simulator ``numba.cuda.is_available()`` is True, so the simulator is
    recognised from ``numba.config.ENABLE_CUDASIM`` first.
    """
    import numba

    if numba.config.ENABLE_CUDASIM:
        return "cuda-simulator", "NUMBA_ENABLE_CUDASIM=1"
    try:
        from numba import cuda
    except Exception as exc:  # numba-cuda missing or broken
        return "", f"numba.cuda cannot be imported ({exc})"
    try:
        if cuda.is_available():
            name = cuda.get_current_device().name
            return "cuda", name.decode() if isinstance(name, bytes) else str(name)
    except Exception as exc:
        return "", f"no usable CUDA driver ({exc})"
    return "", "no CUDA GPU/driver found"


def require() -> None:
    """Raise :class:`CudaUnavailableError` (saying how to fix it) without a CUDA target."""
    target, detail = status()
    if not target:
        raise CudaUnavailableError(f"backend='cuda' is not available: {detail}. To use it, {HOW}.")
