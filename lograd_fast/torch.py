r"""PyTorch adapter: lograd_fast distributions that take part in autograd.

``import lograd_fast.torch as lft`` (needs ``torch``; the core package never imports
it).  The classes drop in where ``torch.distributions`` objects are used in policy
gradient code::

    logits = policy(obs)                                  # (B, K), requires grad
    dist = lft.Categorical(logits=logits)                 # like torch.distributions
    action = dist.sample()                                # (B,) int64, no grad
    loss = -(advantage * dist.log_prob(action)).mean() - 0.01 * dist.entropy().mean()
    loss.backward()                                       # closed-form scores, no autodiff

Parameters are the network's outputs in the unconstrained parametrisation of
lograd_fast: ``Normal(loc, log_scale)``, ``Categorical(logits)`` (or ``probs``),
``TanhNormal(loc, log_scale)``.  ``log_prob`` and ``entropy`` are computed by
lograd_fast's kernels in a :class:`torch.autograd.Function` whose backward is the
closed-form score ``d log p(x) / d param`` (resp. the entropy's closed-form
gradient), reduced over broadcast dims: ``grad_param = sum(grad_out * score)``.
Only first derivatives are available (``once_differentiable``), and ``x`` is a
constant: no gradient flows into the samples (this is the score-function
estimator, not the pathwise one).

Memory: the parameters are copied once into the lograd_fast distribution (its
private record, O(batch)); samples and values passed to ``log_prob`` are used in
place (``np.from_dlpack``-style views), and every returned tensor wraps the array
lograd_fast wrote (``torch.from_numpy``): no further copies.  All parameters must
share one floating dtype (float32 or float64) and one device; CUDA tensors run on
``backend="cuda"`` (outputs wrap the device arrays through
``__cuda_array_interface__``).  Random numbers: ``sample()`` without ``seed``
draws the Philox seed from torch's global generator, so ``torch.manual_seed``
makes a run reproducible.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from . import Categorical as _LfCategorical
from . import Distribution as _LfDistribution
from . import Normal as _LfNormal

__all__ = ["Distribution", "Normal", "Categorical", "TanhNormal", "log_prob"]

_FLOATS = (torch.float32, torch.float64)


# ============================================================================ helpers
def _as_param(value: Any, name: str, like: torch.Tensor | None) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if like is None:
        return torch.as_tensor(np.asarray(value, dtype=np.float64))
    return torch.as_tensor(np.asarray(value), dtype=like.dtype, device=like.device)


def _check_params(params: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Tensors of one float dtype on one device (Python numbers follow the tensors)."""
    like = next((v for v in params.values() if isinstance(v, torch.Tensor)), None)
    out = {k: _as_param(v, k, like) for k, v in params.items()}
    first = next(iter(out))
    for name, t in out.items():
        if t.dtype not in _FLOATS:
            raise TypeError(f"{name} must be a float32 or float64 tensor, got {t.dtype}")
        if t.dtype != out[first].dtype:
            raise TypeError(f"{name} has dtype {t.dtype} but {first} has {out[first].dtype}: "
                            "all parameters need the same dtype")
        if t.device != out[first].device:
            raise ValueError(f"{name} is on {t.device} but {first} is on {out[first].device}: "
                             "all parameters must be on one device")
    return out


def _to_torch(arr: Any, device: torch.device) -> torch.Tensor:
    """Wrap an output of lograd_fast without a copy."""
    if isinstance(arr, np.ndarray):
        return torch.from_numpy(arr)
    return torch.as_tensor(arr, device=device)  # a numba device array (CUDA)


def _to_lf(t: torch.Tensor) -> Any:
    """A detached view of ``t`` that lograd_fast reads in place."""
    t = t.detach()
    return t.numpy() if t.device.type == "cpu" else t


def _sum_to(grad: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    return grad.sum_to_size(shape) if grad.shape != shape else grad


# ============================================================================ autograd
class _LogProb(torch.autograd.Function):
    """``log_prob(x)`` of a lograd_fast distribution; backward: the closed-form score."""

    @staticmethod
    def forward(ctx, dist: Distribution, x: Any, lead: tuple | None, scores: Any,
                *params: torch.Tensor) -> torch.Tensor:
        # lead: the sample dims flattened into x's first axis (None: x has no sample axis)
        lp = dist._lf.log_prob(x) if scores is None else scores[0]
        ctx.dist, ctx.x, ctx.lead, ctx.scores = dist, x, lead, scores
        out = _to_torch(lp, dist.device)
        return out if lead is None else out.reshape(lead + dist._lf.batch_shape)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        dist = ctx.dist
        needs = ctx.needs_input_grad[4:]
        if not any(needs):
            return (None,) * (4 + len(needs))
        lf_dist = dist._lf
        scores = lf_dist.score(ctx.x) if ctx.scores is None else ctx.scores[1]
        # (m, *batch_shape, 1 per event dim): the event elements share their log-prob's grad
        lead = () if ctx.lead is None else (math.prod(ctx.lead),)
        g = grad_out.reshape(lead + lf_dist.batch_shape + (1,) * lf_dist.event_ndims)
        grads = []
        for (name, p), need in zip(dist._params.items(), needs):
            if not need:
                grads.append(None)
                continue
            s = _to_torch(scores[name], dist.device)  # (*lead, *full_shape, *param tail)
            extra = s.ndim - g.ndim
            gs = (g.reshape(g.shape + (1,) * extra) if extra else g) * s
            grads.append(_sum_to(gs, p.shape))
        return (None, None, None, None, *grads)


class _Entropy(torch.autograd.Function):
    """``entropy()``; backward: the family's closed-form entropy gradient."""

    @staticmethod
    def forward(ctx, dist: Distribution, *params: torch.Tensor) -> torch.Tensor:
        ctx.dist = dist
        ent = np.ascontiguousarray(dist._lf.entropy())
        return torch.from_numpy(ent).to(dist.device)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        dist = ctx.dist
        needs = ctx.needs_input_grad[1:]
        if not any(needs):
            return (None,) * (1 + len(needs))
        d_ent = dist._entropy_grads()
        g = grad_out.reshape(tuple(dist.batch_shape) + (1,) * dist._lf.event_ndims)
        grads = []
        for (name, p), need in zip(dist._params.items(), needs):
            if not need:
                grads.append(None)
                continue
            d = torch.from_numpy(np.asarray(d_ent[name], dtype=dist._lf.dtype)).to(dist.device)
            gs = g.reshape(g.shape + (1,) * (d.ndim - g.ndim)) * d
            grads.append(_sum_to(gs, p.shape))
        return (None, *grads)


# ============================================================================ classes
class Distribution:
    """Base of the torch-facing distributions: a lograd_fast distribution built from
    (detached views of) parameter tensors, with autograd-aware ``log_prob`` and
    ``entropy``.  Subclasses set ``lf_class`` and the properties of their family."""

    lf_class: type[_LfDistribution]
    has_rsample = False

    def __init__(self, params: dict[str, Any], **lf_kwargs: Any) -> None:
        self._params = _check_params(params)
        first = next(iter(self._params.values()))
        self.device = first.device
        self.dtype = first.dtype
        backend = "cuda" if self.device.type == "cuda" else "cpu"
        if self.device.type not in ("cpu", "cuda"):
            raise ValueError(f"parameters on {self.device} are not supported (cpu or cuda)")
        self._lf = self.lf_class(**{k: _to_lf(v) for k, v in self._params.items()},
                                 **lf_kwargs, backend=backend)

    # -- shapes ----------------------------------------------------------------------
    @property
    def batch_shape(self) -> torch.Size:
        return torch.Size(self._lf.batch_shape)

    @property
    def event_shape(self) -> torch.Size:
        return torch.Size(self._lf.event_shape)

    def __repr__(self) -> str:
        return (f"lograd_fast.torch.{type(self).__name__}(batch_shape={tuple(self.batch_shape)}, "
                f"event_shape={tuple(self.event_shape)}, dtype={self.dtype}, "
                f"device={self.device})")

    # -- sampling ----------------------------------------------------------------------
    def _seed(self, seed: int | None) -> int:
        if seed is not None:
            return seed
        # from torch's global generator: torch.manual_seed makes runs reproducible
        return int(torch.randint(0, 2**63 - 1, (), dtype=torch.int64))

    def _sample_shape(self, sample_shape: Any) -> tuple:
        shape = tuple(torch.Size(sample_shape))
        if any(k < 1 for k in shape):
            raise ValueError(f"sample_shape must have positive entries, got {shape}")
        return shape

    def sample(self, sample_shape: Any = (), seed: int | None = None) -> torch.Tensor:
        """Draw ``(*sample_shape, *batch_shape, *event_shape)`` samples (no gradient).

        ``seed``: a Philox seed (default: one drawn from torch's global generator).
        """
        shape = self._sample_shape(sample_shape)
        n = math.prod(shape) if shape else None
        x = self._lf.sample(n, seed=self._seed(seed))
        return _to_torch(x, self.device).reshape(shape + tuple(self._lf._x_shape(None)))

    def sample_and_log_prob(self, sample_shape: Any = (),
                            seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, log_prob(x))`` from one fused pass (samples, log-probs and scores);
        the log-prob backpropagates like :meth:`log_prob`'s."""
        shape = self._sample_shape(sample_shape)
        n = math.prod(shape) if shape else None
        x, lp, s = self._lf.sample_and_score(n, seed=self._seed(seed))
        lp_t = _LogProb.apply(self, x, shape or None, (lp, s), *self._params.values())
        x_t = _to_torch(x, self.device)
        return (x_t.reshape(shape + self._lf._x_shape(None)) if shape else x_t), lp_t

    # -- densities ------------------------------------------------------------------------
    def _value(self, value: Any) -> tuple[Any, tuple | None]:
        """``value`` as lograd_fast input, with its sample dims flattened into one axis,
        and those sample dims (None when there are none: no sample axis)."""
        if not isinstance(value, torch.Tensor):
            value = torch.as_tensor(np.asarray(value), device=self.device)
        if value.requires_grad:
            raise TypeError("value requires grad: lograd_fast.torch differentiates log_prob "
                            "with respect to the distribution's parameters only (score "
                            "function); pass value.detach()")
        if value.device != self.device:
            raise ValueError(f"value is on {value.device} but the distribution's parameters "
                             f"are on {self.device}")
        if self._lf.family.discrete:
            if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
                raise TypeError(f"value must hold integer class indices, got {value.dtype}")
        elif value.dtype != self.dtype:
            raise TypeError(f"value has dtype {value.dtype} but the distribution's parameters "
                            f"are {self.dtype}: convert it explicitly")
        core = tuple(self._lf._x_shape(None))
        k = len(core)
        if value.ndim < k or tuple(value.shape[value.ndim - k:]) != core:
            try:
                target = torch.broadcast_shapes(value.shape, core)
            except RuntimeError:
                raise ValueError(f"value has shape {tuple(value.shape)}; expected "
                                 f"(*sample_shape, *{core})") from None
            value = value.expand(target)
        lead = tuple(value.shape[: value.ndim - k])
        if not lead:
            return _to_lf(value), None
        return _to_lf(value.reshape((math.prod(lead),) + core)), lead

    def log_prob(self, value: Any) -> torch.Tensor:
        """Log density/mass ``(*sample_shape, *batch_shape)``; differentiable w.r.t.
        the parameters (backward: closed-form scores)."""
        x, lead = self._value(value)
        return _LogProb.apply(self, x, lead, None, *self._params.values())

    def score(self, value: Any) -> dict[str, torch.Tensor]:
        """Closed-form ``d log p(value) / d param`` (broadcast), as tensors (no graph)."""
        x, lead = self._value(value)
        return {k: _to_torch(s, self.device) if lead is None else
                _to_torch(s, self.device).reshape(lead + s.shape[1:])
                for k, s in self._lf.score(x).items()}

    def entropy(self) -> torch.Tensor:
        """Entropy ``batch_shape``; differentiable w.r.t. the parameters."""
        return _Entropy.apply(self, *self._params.values())

    def _entropy_grads(self) -> dict[str, np.ndarray]:
        raise NotImplementedError(f"{type(self).__name__}.entropy has no closed-form "
                                  "gradient: use -log_prob of samples")


class Normal(Distribution):
    """``N(loc, exp(log_scale)**2)``: ``torch.distributions.Normal(loc, log_scale.exp())``
    (``event_ndims=1``: ``Independent(Normal(...), 1)``, a diagonal Gaussian policy).

    loc, log_scale : tensors (or numbers) broadcasting to ``batch_shape + event_shape``.
    """

    lf_class = _LfNormal

    def __init__(self, loc: Any, log_scale: Any, event_ndims: int = 0) -> None:
        super().__init__({"loc": loc, "log_scale": log_scale}, event_ndims=event_ndims)

    def _full(self, t: torch.Tensor) -> torch.Tensor:
        return t.expand(self._lf.full_shape)

    @property
    def loc(self) -> torch.Tensor:
        return self._params["loc"]

    @property
    def log_scale(self) -> torch.Tensor:
        return self._params["log_scale"]

    @property
    def mean(self) -> torch.Tensor:
        return self._full(self.loc)

    @property
    def mode(self) -> torch.Tensor:
        return self._full(self.loc)

    @property
    def stddev(self) -> torch.Tensor:
        return self._full(self.log_scale.exp())

    scale = stddev

    @property
    def variance(self) -> torch.Tensor:
        return self._full((2.0 * self.log_scale).exp())

    def _entropy_grads(self) -> dict[str, np.ndarray]:
        # H = sum over event dims of (1/2 + log(2 pi)/2 + log_scale)
        shape = self._lf.full_shape
        return {"loc": np.zeros(shape), "log_scale": np.ones(shape)}


class TanhNormal(Normal):
    """``tanh(u)``, ``u ~ N(loc, exp(log_scale)**2)`` (SAC-style bounded actions);
    ``log_prob`` of actions in ``(-1, 1)`` with scores w.r.t. the pre-squash
    ``loc``/``log_scale``.  ``mode`` is ``tanh(loc)``; ``mean`` is ``E[tanh u]``
    (quadrature, no gradient); the entropy has no closed-form gradient."""

    @property
    def lf_class(self) -> type:  # resolved lazily: the family is optional
        from .families.tanh_normal import TanhNormal as _LfTanhNormal

        return _LfTanhNormal

    @property
    def mode(self) -> torch.Tensor:
        return self._full(torch.tanh(self.loc))

    @property
    def mean(self) -> torch.Tensor:
        return _to_torch(np.ascontiguousarray(self._lf.mean), self.device)

    def _entropy_grads(self) -> dict[str, np.ndarray]:
        return Distribution._entropy_grads(self)


class Categorical(Distribution):
    """Categorical over the last dim: ``torch.distributions.Categorical(logits=...)``.

    logits : tensor ``(..., K)`` (or ``probs``: then ``logits = log(probs)``, the
    gradient flows through the log); mask : bool ``(..., K)``, False = not allowed
    (probability, entropy and score contributions exactly 0).
    """

    lf_class = _LfCategorical

    def __init__(self, logits: Any = None, probs: Any = None, mask: Any = None) -> None:
        if (logits is None) == (probs is None):
            raise ValueError("pass exactly one of logits and probs")
        if logits is None:
            probs = probs if isinstance(probs, torch.Tensor) else torch.as_tensor(probs)
            logits = torch.log(probs)
        if isinstance(mask, torch.Tensor):
            if mask.dtype != torch.bool:
                raise TypeError(f"mask must be a bool tensor, got {mask.dtype}")
            mask = mask.detach().cpu().numpy()
        super().__init__({"logits": logits}, mask=mask)
        self._mask = None if mask is None else torch.from_numpy(np.asarray(mask, bool)).to(
            self.device)

    @property
    def _masked_logits(self) -> torch.Tensor:
        raw = self._params["logits"]
        if self._mask is None:
            return raw
        return raw.masked_fill(~self._mask, -math.inf)

    @property
    def logits(self) -> torch.Tensor:
        """Normalised log-probabilities ``(..., K)`` (``-inf`` where masked)."""
        z = self._masked_logits
        return z - z.logsumexp(dim=-1, keepdim=True)

    @property
    def probs(self) -> torch.Tensor:
        return torch.softmax(self._masked_logits, dim=-1)

    @property
    def mode(self) -> torch.Tensor:
        """Most probable allowed class ``batch_shape`` (int64)."""
        return _to_torch(np.ascontiguousarray(self._lf.mode), torch.device("cpu")).to(
            self.device)

    @property
    def num_classes(self) -> int:
        return self._lf.K

    def _entropy_grads(self) -> dict[str, np.ndarray]:
        # dH/dl_k = -p_k (log p_k + H): exactly 0 where p_k = 0
        rec = self._lf._record
        ent = -np.where(rec.probs > 0, rec.probs * np.where(rec.probs > 0, rec.log_probs, 0.0),
                        0.0).sum(axis=1, keepdims=True)
        grad = -np.where(rec.probs > 0,
                         rec.probs * (np.where(rec.probs > 0, rec.log_probs, 0.0) + ent), 0.0)
        return {"logits": grad.reshape(self._lf.full_shape + (self._lf.K,))}


def log_prob(dist_class: type[_LfDistribution], value: Any, **params: Any) -> torch.Tensor:
    """Functional form for any lograd_fast family: ``log_prob(lf.Normal, x, loc=..,
    log_scale=..)`` differentiable w.r.t. the tensors among ``params`` (other
    constructor arguments, e.g. ``mask`` or ``event_ndims``, pass through)."""
    names = dist_class.family.param_names
    missing = [k for k in names if k not in params]
    if missing:
        raise TypeError(f"{dist_class.__name__} needs the parameters {missing}")
    wrapper = type(f"_{dist_class.__name__}", (Distribution,), {"lf_class": dist_class})
    dist = wrapper({k: params.pop(k) for k in names}, **params)
    return dist.log_prob(value)
