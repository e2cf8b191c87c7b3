"""lograd_fast: Numba kernels for the score-function (log-derivative) gradient estimator.

    grad_theta E_{x ~ p(x|theta)}[f(x)] = E[f(x) grad_theta log p(x|theta)]

Distributions sample, evaluate log-probabilities and closed-form scores on CPU
threads (Numba), CUDA GPUs (numba-cuda) or pure numpy; estimators turn them into
gradient estimates with variance reduction.
"""

from ._base import BACKENDS, Distribution
from ._base_errors import CudaUnavailableError
from .estimators import Estimate, score_function
from .families import FAMILIES, Categorical, Normal

__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "Categorical",
    "CudaUnavailableError",
    "Distribution",
    "Estimate",
    "FAMILIES",
    "Normal",
    "score_function",
    "__version__",
]
