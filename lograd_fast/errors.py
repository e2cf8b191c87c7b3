"""Exceptions of lograd_fast (a leaf module: imports nothing of the package)."""


class CudaUnavailableError(ValueError):
    """``backend="cuda"`` was asked for on a machine without a usable CUDA target."""
