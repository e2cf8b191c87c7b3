"""lograd_fast: Numba kernels for the score-function (log-derivative) gradient estimator.

    grad_theta E_{x ~ p(x|theta)}[f(x)] = E[f(x) grad_theta log p(x|theta)]

Distributions sample, evaluate log-probabilities and closed-form scores on CPU
threads (Numba), CUDA GPUs (numba-cuda) or pure numpy; estimators turn them into
gradient estimates with variance reduction.
"""

from .distribution import BACKENDS, Distribution
from .errors import CudaUnavailableError
from .estimators import (
    EMA,
    Estimate,
    antithetic,
    batched_score_function,
    estimate,
    measure_valued,
    pathwise,
    rloo,
    score_function,
)
from .families import (
    FAMILIES,
    Bernoulli,
    Beta,
    Categorical,
    Dirichlet,
    Exponential,
    Gamma,
    Laplace,
    LogNormal,
    MultiCategorical,
    MultivariateNormal,
    Normal,
    Poisson,
    StudentT,
    TanhNormal,
)
from .rl import advantages, policy_gradient, returns  # RL helpers (rl.py)
from .sweep import sweep  # the function (submodules: from lograd_fast.sweep import spec)

__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "Bernoulli",
    "Beta",
    "Categorical",
    "CudaUnavailableError",
    "Dirichlet",
    "Distribution",
    "EMA",
    "Estimate",
    "Exponential",
    "FAMILIES",
    "Gamma",
    "Laplace",
    "LogNormal",
    "MultiCategorical",
    "MultivariateNormal",
    "Normal",
    "Poisson",
    "StudentT",
    "TanhNormal",
    "advantages",
    "antithetic",
    "batched_score_function",
    "estimate",
    "measure_valued",
    "pathwise",
    "policy_gradient",
    "rloo",
    "returns",
    "score_function",
    "sweep",
    "__version__",
]
