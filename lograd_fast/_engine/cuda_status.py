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
        if not cuda.is_available():
            return "", "no CUDA GPU/driver found"
        name = cuda.get_current_device().name
    except Exception as exc:
        return "", f"no usable CUDA driver ({exc})"
    try:  # numba-cuda's numpy overloads, loaded at the first kernel compilation anyway
        import numba.cuda.np.arrayobj  # noqa: F401
    except ImportError:  # older numba-cuda: laid out differently
        pass
    except AttributeError as exc:  # numba-cuda 0.30.4 with numpy 2.5 (np.row_stack is gone)
        import numpy as np

        return "", (f"numba-cuda cannot compile kernels with numpy {np.__version__} ({exc}; "
                    "seen on a GPU with numba-cuda 0.30.4 and numpy 2.5.2): install "
                    "numpy<2.5, as the cuda extra does")
    return "cuda", name.decode() if isinstance(name, bytes) else str(name)


def require() -> None:
    """Raise :class:`CudaUnavailableError` (saying how to fix it) without a CUDA target."""
    target, detail = status()
    if not target:
        raise CudaUnavailableError(f"backend='cuda' is not available: {detail}. To use it, {HOW}.")
