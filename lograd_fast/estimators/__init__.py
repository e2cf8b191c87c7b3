r"""Gradient estimators of ``grad_theta E_{x ~ p_theta}[f(x)]`` and variance reduction.

Every estimator returns an :class:`Estimate`: ``grad``, ``var`` (the variance of
one term, ``ddof=1``), ``stderr = sqrt(var / n)`` and ``n``, each a dict keyed by
the distribution's unconstrained parameters, shaped like them.

One module per estimator, its kernels beside it:

* ``score_function.py``: REINFORCE, ``(r_i - b_i) grad log p(x_i)``, streaming with an
  njit ``f`` or from external ``rewards`` and ``x``;
* ``baselines.py``: ``None``, a constant, ``"mean"``, ``"loo"``, ``"optimal"``,
  :class:`EMA`, and the streaming algebra that applies them;
* ``antithetic.py``: the score function on mirrored pairs ``(x, reflect(x))``;
* ``pathwise.py``: reparameterisation, ``sum_e f'(x_e) dx_e/dtheta``;
* ``measure_valued.py``: weak derivatives of the Normal (estimator and kernels);
* ``batched.py``: :func:`rloo` and :func:`batched_score_function`, many replicates at
  once from rewards ``(R, N)`` and scores ``(R, N, D)`` (numpy and kernel);
* ``by_name.py``: :func:`estimate`, any of the first four by name;
* ``streaming.py``: the fused streaming kernels (lanes of draws, moments per fold);
* ``result.py``: :class:`Estimate`, and parameters <-> flat coordinates;
* ``_common.py``: argument checks, lane buffers, ``f`` as a C function pointer.

The streaming estimators fuse sampling, scores and ``f`` in one parallel kernel:
no ``(n, D)`` array exists, memory is O(lanes x parameters) whatever ``n``, and
the result is bitwise the same for any thread count (see ``streaming.py``).
"""

from .antithetic import antithetic
from .baselines import BASELINES, DEFAULT_FOLDS, EMA
from .batched import batched_score_function, rloo
from .by_name import ESTIMATORS, estimate
from .measure_valued import measure_valued
from .pathwise import pathwise
from .result import Estimate
from .score_function import score_function

__all__ = ["Estimate", "EMA", "score_function", "antithetic", "pathwise", "measure_valued",
           "rloo", "batched_score_function", "estimate", "BASELINES", "DEFAULT_FOLDS",
           "ESTIMATORS"]
