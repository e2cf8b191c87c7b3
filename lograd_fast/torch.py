r"""PyTorch adapter: lograd_fast's kernels as torch operators, behind ``torch.distributions``.

``import lograd_fast.torch as lft`` (needs ``torch``; the core package never imports it).
The classes are :class:`torch.distributions.Distribution` subclasses with torch's
signatures and semantics, so they drop in where ``torch.distributions`` objects are used::

    logits = policy(obs)                                  # (B, K), requires grad
    dist = lft.Categorical(logits=logits)                 # torch.distributions.Categorical
    action = dist.sample()                                # (B,) int64, no grad
    loss = -(advantage * dist.log_prob(action)).mean() - 0.01 * dist.entropy().mean()
    loss.backward()                                       # closed-form scores, no autodiff

    dist = lft.Normal(mean, std)                          # as torch: the scale, positional
    dist = lft.Normal(mean, log_scale=log_std)            # the unconstrained form, a keyword

Operators.  Every computation runs in a registered torch operator of the namespace
``lograd_fast`` (``Library.define`` + ``impl`` for the CPU and CUDA keys: measured lighter
per call than ``torch.library.custom_op``, see docs/rl.md), with a fake (meta)
implementation, an autograd formula (:func:`torch.library.register_autograd`) and a
vmap rule (:func:`torch.library.register_vmap`), so ``torch.compile`` (also
``fullgraph=True``) keeps them as opaque nodes and ``torch.func.grad``, ``vmap``,
``jacrev`` and ``vmap(grad(...))`` compose with them.  The operators take the family
(and its static options) as a string, the parameters as a tensor list and an optional
mask:

``log_prob``, ``log_prob_score``  log-density (and the closed-form scores, for the backward)
``sample``, ``sample_score``       draws (the seed is a tensor drawn from torch's generator);
                                   ``sample_score`` returns ``(log_prob, x, scores)``
``entropy``, ``kl``                closed-form entropy and KL

Derivatives are closed form, never autodiff through the kernels: the backward of
``log_prob`` is ``sum(grad_out * score)`` over broadcast dims, with the scores
computed in the same pass as the log-probabilities; second derivatives (the scores'
derivatives: ``-(diag p - p p^T)`` for Categorical, ``d/d(loc, log_scale)`` of the
Normal and TanhNormal scores) are closed-form torch expressions, differentiable again;
a family without them raises a clear error when a second derivative is asked for,
never a silent zero.  Gradients w.r.t. the *value* (``log_prob(rsample())`` as in SAC)
are closed form for Normal and TanhNormal.

Validation.  The kernels check every call (NaN logits or scales, classes outside the
support, masked actions for the score) whatever ``validate_args`` says; the error is
raised at the first call that reads the parameters rather than at construction (the
constructor runs no kernel, so that ``torch.compile`` can trace it).

CUDA tensors.  Outputs are CUDA tensors.  Calls that make many draws (at least
:data:`CUDA_MIN_ELEMENTS` elements) run on the GPU kernels; the others on the CPU kernels
(the same numbers), since numba-cuda's per-call overhead (~2 ms) exceeds the host round
trip of an RL batch.  Either way the parameters are validated on the host.

Memory: the parameters are copied once per operator call into the lograd_fast
distribution's private record (O(batch)); returned tensors wrap the arrays the kernels
wrote (``torch.from_numpy``).  ``sample()`` without ``seed`` draws the Philox seed
from torch's global generator, so ``torch.manual_seed`` makes a run reproducible.
"""

from __future__ import annotations

import math
import threading
import warnings
from typing import Any

import numpy as np
import torch
import torch.distributions as _td
from torch.distributions import constraints

from ._engine import cpu
from .distribution import _ONE_CALL_ATOMS, lean_eligible, log_prob_and_score_flat
from .families import FAMILY_CLASSES
from .families.categorical import entropy_and_grad as _categorical_entropy_and_grad
from .families.categorical import update_terms as _categorical_update_terms

if not hasattr(torch.library, "register_vmap"):  # register_fake/register_vmap: torch 2.4
    raise ImportError(f"lograd_fast.torch needs torch >= 2.4 (its operators register fake "
                      f"and vmap rules), found torch {torch.__version__}")

__all__ = ["Distribution", "Normal", "TanhNormal", "Categorical", "log_prob"]

_FLOATS = (torch.float32, torch.float64)
_NUMPY_FLOAT = {torch.float32: np.dtype(np.float32), torch.float64: np.dtype(np.float64)}
_SEED_MAX = 2**62
_NO_SHAPE = torch.Size()


# ============================================================================ specs
_SPECS: dict = {}


_SPEC_STR: dict = {}


def _parse(spec: str) -> tuple[type, dict]:
    """``"Normal;event_ndims=1"`` -> ``(lf.Normal, {"event_ndims": 1})``; ``nvec=2,3``."""
    got = _SPECS.get(spec)
    if got is None:
        got = _parse_spec(spec)
        if not torch.compiler.is_compiling():  # no global state mutated while tracing
            _SPECS[spec] = got
    return got


def _parse_spec(spec: str) -> tuple[type, dict]:
    name, *opts = spec.split(";")
    cls = FAMILY_CLASSES.get(name)
    if cls is None:
        raise ValueError(f"unknown lograd_fast family {name!r}")
    kw: dict = {}
    for opt in opts:
        if "=" not in opt:  # a flag of the adapter (from_scale: names scale in errors)
            continue
        key, value = opt.split("=")
        kw[key] = tuple(int(v) for v in value.split(",")) if key == "nvec" else int(value)
    return cls, kw


def _spec(cls: type, event_ndims: int = 0, **kw: Any) -> str:
    if not kw and type(event_ndims) is int:  # the classes' calls: one lookup
        got = _SPEC_STR.get((cls, event_ndims))
        if got is None:
            got = _make_spec(cls, event_ndims, {})
            if not torch.compiler.is_compiling():  # no global state mutated while tracing
                _SPEC_STR[(cls, event_ndims)] = got
        return got
    return _make_spec(cls, event_ndims, kw)


def _make_spec(cls: type, event_ndims: int, kw: dict) -> str:
    parts = [cls.__name__]
    if event_ndims:
        parts.append(f"event_ndims={int(event_ndims)}")
    for key, value in kw.items():
        if value is not None:
            parts.append(f"{key}={','.join(str(int(v)) for v in value)}")
    return ";".join(parts)


def _broadcast(*shapes) -> tuple:
    """``torch.broadcast_shapes`` (which costs ~30 us through its symbolic-shape checks)
    for plain int shapes; symbolic shapes (fake tensors) take torch's."""
    first = shapes[0]
    if len(shapes) == 2 and first == shapes[1]:  # the common call (two equal shapes)
        return tuple(first)
    shapes = [tuple(s) for s in shapes]
    first = shapes[0]
    if all(s == first for s in shapes):
        return first
    if not all(type(k) is int for s in shapes for k in s):
        return tuple(torch.broadcast_shapes(*shapes))
    ndim = max(len(s) for s in shapes)
    out = [1] * ndim
    for s in shapes:
        for i, k in enumerate(s, ndim - len(s)):
            if k != 1:
                if out[i] not in (1, k):
                    raise RuntimeError(f"shapes {shapes} do not broadcast")
                out[i] = k
    return tuple(out)


def _shapes(spec: str, params: list, mask: torch.Tensor | None):
    """``(full_shape, batch_shape, sample_event_shape, tails)`` from the parameters'
    shapes alone (symbolic sizes allowed: the fake implementations use it)."""
    cls, kw = _parse(spec)
    fam = cls.family
    leads, tails = [], []
    for p, t in zip(params, fam.param_event_ndims):
        leads.append(tuple(p.shape[: p.dim() - t]))
        tails.append(tuple(p.shape[p.dim() - t:]))
    if mask is not None:
        leads.append(tuple(mask.shape[:-1]))
    full = tuple(_broadcast(*leads))
    batch = full[: len(full) - kw.get("event_ndims", 0)]
    if "nvec" in kw:
        event = (len(kw["nvec"]),)
    elif fam.name in ("Dirichlet", "MultivariateNormal"):  # samples are rows
        event = tails[0]
    else:
        event = ()
    return full, batch, event, tails


# ============================================================================ kernels
# CUDA parameters run on the GPU kernels for calls of several draws (a sample_shape, or
# a value with sample dims) of at least this many elements in all (draws x the largest
# parameter's elements); other calls run on the CPU kernels (the same streams and
# results) and their outputs are copied to the device.  Both ways the parameters make
# a round trip through the host (validation and ``prepare`` run there) and numba-cuda's
# Python layer costs ~2 ms a call.  Measured on an H200 (docs/gpu.md): an RL step of
# 128 rows of 6 takes 0.14 ms (rollout) on the CPU kernels against 1.9 ms; with one
# draw per row the CPU kernels were ahead or level (within 12 %) up to the largest
# batch measured (524288 x 6); draws of a Normal (128, 6): 0.76 against 2.2 ms at 64
# draws, 3.9 against 2.0 ms at 1024.  0 puts every call on the GPU kernels.
CUDA_MIN_ELEMENTS = 1 << 18


def _host(t: torch.Tensor, device_ok: bool = False) -> Any:
    """``t`` for the kernels: a numpy view of a CPU tensor; a CUDA tensor as is for the
    GPU kernels (``device_ok``), else copied to the host."""
    if not t.is_cpu:
        return t.detach() if device_ok else t.detach().cpu().numpy()
    return t.detach().numpy() if t.requires_grad else t.numpy()  # numpy(): no detach needed


def _out(arr: Any, shape: tuple, device: torch.device) -> torch.Tensor:
    # the host arrays: reshaped (a view) before wrapping (from_numpy of the reshaped
    # array ~0.7 us; Tensor.view of a torch.Size ~2.7)
    if type(arr) is np.ndarray:
        t = torch.from_numpy(arr if arr.shape == shape else arr.reshape(shape))
        # entropy and KL are computed on the host for every backend: their values go
        # to the parameters' device (a CPU tensor there broke the backward on a GPU)
        return t if device.type == "cpu" else t.to(device)
    t = torch.as_tensor(arr, device=device)
    return t.reshape(shape) if tuple(t.shape) != tuple(shape) else t


# RL code calls several operators on one distribution (sample, then log_prob;
# log_prob and entropy): the lograd_fast distribution (validation, private copy of the
# parameters) is built once per torch distribution object -- a snapshot, as torch's
# own distributions derive their tensors at construction.  The class names itself (the
# owner, ``Distribution._call``) around its operator calls; the cache is used only while
# the operator got the owner's very parameter tensors at the versions it saw.
_LOCAL = threading.local()


def _lf(spec: str, params: list, mask: torch.Tensor | None):
    owner = getattr(_LOCAL, "owner", None)
    if owner is not None and spec == owner._spec and mask is owner._mask and len(
            params) == len(owner._params) and all(a is b for a, b in zip(params, owner._params)):
        return owner._lf_dist()
    return _build(spec, params, mask)


_SCRATCH = threading.local()


def _scratch(n: int) -> int:
    """The address of ``n`` float64 of this thread's scratch (a raw-pointer call's
    derived fields and buffers: written and read within the call; 64-byte aligned)."""
    got = getattr(_SCRATCH, "got", None)  # (size, address, the array that owns it)
    if got is None or got[0] < n:
        buf = np.empty(max(n, 4096) + 8)
        address = -(-buf.ctypes.data // 64) * 64
        got = _SCRATCH.got = (buf.shape[0] - 8, address, buf)
    return got[1]


_RAW_STEPS: dict = {}


def _raw_step(name: str, dtype: torch.dtype, n: int, E: int):
    """``(run, nv, nl, direct, v_off, l_off, words)``: the family's raw-pointer RL step
    (``cpu.checked_sample_score_raw``) for ``n`` atoms in items of ``E``, its variate
    and log-prob scratch lengths (``cpu.step_sizes``), and where they lie in this
    thread's scratch (byte offsets after the 2 n float64 fields, 64-byte aligned; its
    size in float64 words), or None."""
    key = (name, dtype, n, E)
    got = _RAW_STEPS.get(key, _UNSET)
    if got is _UNSET:
        if len(_RAW_STEPS) >= 1024:  # many batch sizes: start over
            _RAW_STEPS.clear()
        fam = FAMILY_CLASSES[name].family
        np_dtype = _NUMPY_FLOAT[dtype]
        run = cpu.checked_sample_score_raw(fam.params_cls, fam.scores_cls, np_dtype)
        sizes = None if run is None else cpu.step_sizes(fam.params_cls, np_dtype, n, E)
        got = None
        if sizes is not None:
            nv, v_dtype, nl, direct = sizes
            v_off = -(-(2 * n * 8) // 64) * 64  # the fields, the variates, the log-probs
            l_off = v_off + -(-(nv * v_dtype.itemsize) // 64) * 64
            got = (run, nv, nl, direct, v_off, l_off, (l_off + 8 * nl) // 8 + 1)
        _RAW_STEPS[key] = got
    return got


_RAW_RUNNERS: dict = {}
_UNSET = object()


def _raw_runner(name: str, dtype: torch.dtype):
    """The family's update call on raw pointers (``cpu.checked_log_prob_score_raw``) for
    ``dtype``, or None (no such call for the family)."""
    got = _RAW_RUNNERS.get((name, dtype), _UNSET)
    if got is _UNSET:
        fam = FAMILY_CLASSES[name].family
        got = _RAW_RUNNERS[(name, dtype)] = cpu.checked_log_prob_score_raw(
            fam.params_cls, fam.scores_cls, _NUMPY_FLOAT[dtype])
    return got


def _versions(params: list, mask: torch.Tensor | None) -> tuple:
    return tuple(p._version for p in params) + (() if mask is None else (mask._version,))


def _gpu_sized(params: list, draws: int = 1) -> bool:
    """Is a call of ``draws`` draws per parameter element on CUDA parameters for the GPU
    kernels?  (:data:`CUDA_MIN_ELEMENTS`; 0 forces them, available or not: the error
    then says why not.)"""
    if params[0].device.type != "cuda":
        return False
    if CUDA_MIN_ELEMENTS <= 0:
        return True
    return draws > 1 and draws * max(p.numel() for p in params) >= CUDA_MIN_ELEMENTS \
        and _gpu_kernels_usable()


_GPU_USABLE: bool | None = None


def _gpu_kernels_usable() -> bool:
    """Can numba-cuda run the GPU kernels here?  Asked once, at the first GPU-sized call;
    where it cannot (no ``cuda`` extra, numba-cuda broken, the simulator), every call
    stays on the CPU kernels, with one warning saying why."""
    global _GPU_USABLE
    if _GPU_USABLE is None:
        from ._engine.cuda_status import HOW, status

        target, detail = status()
        _GPU_USABLE = target == "cuda"
        if not _GPU_USABLE:
            warnings.warn(f"lograd_fast.torch: calls on CUDA tensors run on the CPU kernels "
                          f"(correct, but the large ones slower): the GPU kernels are "
                          f"unavailable: {detail}. To use them, {HOW}.", RuntimeWarning,
                          stacklevel=2)
    return _GPU_USABLE


def _build(spec: str, params: list, mask: torch.Tensor | None, draws: int = 1):
    cls, kw = _parse(spec)
    gpu = _gpu_sized(params, draws)
    args = {name: _host(p, gpu) for name, p in zip(cls.family.param_names, params)}
    if mask is not None:
        args["mask"] = _host(mask, gpu)
    backend = "cuda" if gpu else "cpu"
    try:
        return cls(**args, **kw, backend=backend)
    except ValueError as exc:
        raise _param_error(spec, exc) from None


def _param_error(spec: str, exc: ValueError) -> ValueError:
    """A parameter check's error, naming ``scale`` where the user gave it."""
    if "log_scale" in str(exc) and ";from_scale" in spec:
        return ValueError(f"scale must be positive and finite: {exc}")
    return exc


def _flat_x(d, x: torch.Tensor) -> tuple[Any, tuple]:
    """``x`` ``(*lead, *core)`` as the kernels' ``(n, *core)`` (or ``core``), and lead."""
    k = len(d.full_shape) + len(d.sample_event_shape)
    lead = tuple(x.shape[: x.dim() - k])
    xh = _host(x, d.backend == "cuda")
    if d.backend == "cuda":  # numba cannot reshape a strided device view (a broadcast
        xh = xh.contiguous()  # value): a dense copy where the layout needs one
    if not lead:
        return xh, lead
    return xh.reshape((math.prod(lead),) + tuple(xh.shape[len(lead):])), lead


def _lf_sized(spec: str, params: list, mask: torch.Tensor | None, draws: int | None = None,
              x: torch.Tensor | None = None, d=None):
    """:func:`_lf` (or ``d``, the distribution built for one draw), on the GPU kernels
    where ``draws`` draws (or the sample dims of the value ``x``) make a call on CUDA
    parameters GPU-sized (:func:`_gpu_sized`)."""
    d = _lf(spec, params, mask) if d is None else d
    if d.backend != "cpu" or params[0].device.type != "cuda":
        return d
    if x is not None:
        draws = math.prod(x.shape[: x.dim() - len(d.full_shape) - len(d.sample_event_shape)])
    return _build(spec, params, mask, draws) if _gpu_sized(params, draws) else d


def _log_prob_impl(spec, x, params, mask):
    return _dist_log_prob(_lf_sized(spec, params, mask, x=x), x)


def _dist_log_prob(d, x: torch.Tensor) -> torch.Tensor:
    """``log_prob(x)`` of the lograd_fast distribution ``d``, as a tensor."""
    xs, lead = _flat_x(d, x)
    return _out(d.log_prob(xs), lead + d.batch_shape, x.device)


def _scores_out(d, s: dict, lead: tuple, device) -> list:
    return [_out(s[name], lead + d.full_shape + d._param_tail[name], device)
            for name in d.family.param_names]


def _log_prob_score_impl(spec, x, params, mask):
    return _dist_log_prob_score(_lf_sized(spec, params, mask, x=x), x)


def _dist_log_prob_score(d, x: torch.Tensor) -> tuple:
    """``(log_prob(x), [scores])`` of the lograd_fast distribution ``d``, as tensors."""
    xs, lead = _flat_x(d, x)
    lp, s = d._log_prob_and_score(xs)
    return _out(lp, lead + d.batch_shape, x.device), _scores_out(d, s, lead, x.device)


def _n(sample_shape: list) -> int | None:
    return math.prod(sample_shape) if len(sample_shape) else None


def _sample_impl(spec, params, mask, sample_shape, seed):
    d = _lf_sized(spec, params, mask, math.prod(sample_shape))
    x = d.sample(_n(sample_shape), seed=int(seed))
    return _out(x, tuple(sample_shape) + d._x_shape(None), params[0].device)


def _sample_score_impl(spec, params, mask, sample_shape, seed):
    d = _lf_sized(spec, params, mask, math.prod(sample_shape))
    lead = tuple(sample_shape)
    x, lp, s = d.sample_and_score(_n(sample_shape), seed=int(seed))
    dev = params[0].device
    # log_prob first: a float output ahead of integer draws (opcheck's autograd check
    # sums the outputs in order)
    return (_out(lp, lead + d.batch_shape, dev), _out(x, lead + d._x_shape(None), dev),
            _scores_out(d, s, lead, dev))


def _entropy_impl(spec, params, mask):
    return _dist_entropy(_lf(spec, params, mask), params[0].device)


def _dist_entropy(d, device: torch.device) -> torch.Tensor:
    return _out(np.ascontiguousarray(d.entropy()), d.batch_shape, device)


def _kl_impl(spec, p, q, mask_p, mask_q):
    dp, dq = _lf(spec, p, mask_p), _lf(spec, q, mask_q)
    return _out(np.ascontiguousarray(dp.kl(dq)), dp.batch_shape, p[0].device)


# ============================================================================ fakes
def _empty(like: torch.Tensor, shape: tuple, dtype=None) -> torch.Tensor:
    return like.new_empty(shape, dtype=like.dtype if dtype is None else dtype)


def _fake_scores(spec, params, mask, lead):
    full, _, _, tails = _shapes(spec, params, mask)
    return [_empty(params[0], lead + full + t) for t in tails]


def _x_lead(spec, x, params, mask):
    full, batch, event, _ = _shapes(spec, params, mask)
    return tuple(x.shape[: x.dim() - len(full) - len(event)]), batch


def _log_prob_fake(spec, x, params, mask):
    lead, batch = _x_lead(spec, x, params, mask)
    return _empty(params[0], lead + batch)


def _log_prob_score_fake(spec, x, params, mask):
    lead, batch = _x_lead(spec, x, params, mask)
    return _empty(params[0], lead + batch), _fake_scores(spec, params, mask, lead)


def _sample_dtype(spec, params):
    return torch.int64 if _parse(spec)[0].family.discrete else params[0].dtype


def _sample_fake(spec, params, mask, sample_shape, seed):
    full, _, event, _ = _shapes(spec, params, mask)
    return _empty(params[0], tuple(sample_shape) + full + event, _sample_dtype(spec, params))


def _sample_score_fake(spec, params, mask, sample_shape, seed):
    lead = tuple(sample_shape)
    _, batch, _, _ = _shapes(spec, params, mask)
    return (_empty(params[0], lead + batch), _sample_fake(spec, params, mask, sample_shape, seed),
            _fake_scores(spec, params, mask, lead))


def _entropy_fake(spec, params, mask):
    return _empty(params[0], _shapes(spec, params, mask)[1])


def _kl_fake(spec, p, q, mask_p, mask_q):
    return _empty(p[0], _shapes(spec, p, mask_p)[1])


# ============================================================================ closed forms
# Derivatives in torch expressions (so that they are differentiable again), per family.
def _sum_to(t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    return t.sum_to_size(shape) if t.shape != shape else t


def _bcast(g: torch.Tensor, ndim: int) -> torch.Tensor:
    """``g`` with trailing unit dims up to ``ndim`` (a per-batch value over event dims).
    (``unsqueeze``: 0.9 us; ``reshape`` of a ``torch.Size`` 2.9 us, every backward.)"""
    while g.dim() < ndim:
        g = g.unsqueeze(-1)
    return g


def _masked_logits(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return logits if mask is None else logits.masked_fill(~mask, -math.inf)


class _NormalRules:
    """``loc``, ``log_scale``; TanhNormal the same in ``u = atanh(x)``."""

    tanh = False

    @classmethod
    def _z(cls, x, loc, log_scale):
        u = torch.atanh(x) if cls.tanh else x
        inv = torch.exp(-log_scale)
        return u, (u - loc) * inv, inv

    @classmethod
    def second(cls, x, params, mask, cot):
        """``sum_i cot_i d score_i / d param`` (the scores' derivatives, closed form)."""
        loc, log_scale = params
        _, z, inv = cls._z(x, loc, log_scale)
        s_loc = z * inv
        g_loc, g_ls = cot
        d_loc = d_ls = 0.0
        if g_loc is not None:
            d_loc = d_loc - g_loc * inv * inv
            d_ls = d_ls - 2.0 * g_loc * s_loc
        if g_ls is not None:
            d_loc = d_loc - 2.0 * g_ls * s_loc
            d_ls = d_ls - 2.0 * g_ls * z * z
        return [d_loc, d_ls]

    @classmethod
    def d_value(cls, x, params, mask, scores):
        """``d log p(x) / dx`` from the scores: ``-(x - loc)/scale^2`` (TanhNormal:
        ``(2x - score_loc) / (1 - x^2)``)."""
        s_loc = scores[0]
        if cls.tanh:
            return (2.0 * x - s_loc) / (1.0 - x * x)
        return -s_loc

    @staticmethod
    def d_entropy(params, mask, g, event_ndims):
        loc, log_scale = params
        shape = _broadcast(loc.shape, log_scale.shape)
        return [None, _bcast(g, len(shape)).expand(shape)]

    @staticmethod
    def d_kl(p, q, mask_p, mask_q, g, event_ndims):
        (loc_p, ls_p), (loc_q, ls_q) = p, q
        d = ls_p - ls_q
        m = (loc_p - loc_q) * torch.exp(-ls_q)
        shape = _broadcast(loc_p.shape, ls_p.shape, loc_q.shape, ls_q.shape)
        g = _bcast(g, len(shape))
        dm = g * m * torch.exp(-ls_q)
        e2 = torch.expm1(2.0 * d)
        return [dm, g * e2], [-dm, -g * (e2 + m * m)]


class _TanhNormalRules(_NormalRules):
    tanh = True


class _CategoricalRules:
    @staticmethod
    def second(x, params, mask, cot):
        (g,) = cot
        p = torch.softmax(_masked_logits(params[0], mask), dim=-1)
        return [-p * (g - (g * p).sum(-1, keepdim=True))]

    @staticmethod
    def _log_p(logits, mask):
        z = _masked_logits(logits, mask)
        log_p = torch.log_softmax(z, dim=-1)
        allowed = log_p > -math.inf
        return log_p.exp(), torch.where(allowed, log_p, torch.zeros_like(log_p)), allowed

    @classmethod
    def d_entropy(cls, params, mask, g, event_ndims):
        p, log_p, _ = cls._log_p(params[0], mask)
        ent = -(p * log_p).sum(-1, keepdim=True)
        return [-g.unsqueeze(-1) * p * (log_p + ent)]

    @staticmethod
    def entropy_and_grad(d) -> tuple:
        """``(H, [dH/dlogits])`` (no graph) from the lograd_fast distribution's tables,
        one compiled pass (instead of a dozen torch operations in the backward)."""
        ent, grad = _categorical_entropy_and_grad(d.tables, d.dtype)
        return (torch.from_numpy(ent.reshape(d.batch_shape)),
                [torch.from_numpy(grad.reshape(d.full_shape + (d.K,)))])

    @classmethod
    def d_kl(cls, p, q, mask_p, mask_q, g, event_ndims):
        pp, log_pp, allowed_p = cls._log_p(p[0], mask_p)
        pq, log_pq, _ = cls._log_p(q[0], mask_q)
        diff = torch.where(allowed_p, log_pp - log_pq, torch.zeros_like(log_pp))
        kl = (pp * diff).sum(-1, keepdim=True)
        g = g.unsqueeze(-1)
        return [g * pp * (diff - kl)], [g * (pq - pp)]


_RULES = {"Normal": _NormalRules, "TanhNormal": _TanhNormalRules,
          "Categorical": _CategoricalRules}


_RULES_OF: dict = {}


def _rules(spec: str, what: str):
    """The rules class of ``spec``'s family if it has ``what``, else None (one lookup
    after the first call: the eager entropy asks twice per call)."""
    key = (spec, what)
    if key in _RULES_OF:
        return _RULES_OF[key]
    rules = _RULES.get(_parse(spec)[0].__name__)
    got = rules if rules is not None and hasattr(rules, what) else None
    if not torch.compiler.is_compiling():  # no global state mutated while tracing
        _RULES_OF[key] = got
    return got


def _no_closed_form(spec: str, what: str) -> NotImplementedError:
    return NotImplementedError(
        f"{what} of lograd_fast.{_parse(spec)[0].__name__} is not available in closed form "
        "(lograd_fast.torch never differentiates its kernels by autodiff): closed forms "
        f"exist for {', '.join(sorted(_RULES))}")


# ============================================================================ autograd
# One backward per operation, shared by the operators' registered autograd (for
# ``torch.ops.lograd_fast.*`` used directly) and the ``autograd.Function`` wrappers the
# classes call: in this torch, ``torch.func`` transforms accept an ``autograd.Function``
# with ``setup_context`` but not a registered autograd kernel (measured: torch.func.grad
# of a ``custom_op`` with ``register_autograd`` raises), and the Function's call costs less.
def _save(ctx, spec: str, tensors: list, n: int, masks: tuple) -> None:
    ctx.set_materialize_grads(False)
    ctx.spec, ctx.n, ctx.masks = spec, n, tuple(m is not None for m in masks)
    ctx.save_for_backward(*tensors, *[m for m in masks if m is not None])


def _masks(ctx, saved: list) -> list:
    rest = list(saved)
    return [rest.pop(0) if has else None for has in ctx.masks]


def _log_prob_grads(spec, x, params, scores, mask, g_lp, g_scores, need_x):
    """``(d/dx, [d/dparam])`` of ``log_prob`` given the cotangents of ``lp`` and of the
    scores (the latter: second derivatives, closed form)."""
    grads: list = [None] * len(params)
    if g_lp is not None:
        for i, sc in enumerate(scores):
            grads[i] = _bcast(g_lp, sc.dim()) * sc
    if g_scores is not None and any(c is not None for c in g_scores):
        rules = _rules(spec, "second")
        if rules is None:
            raise _no_closed_form(spec, "the second derivative of log_prob")
        if need_x:
            raise NotImplementedError("second derivatives of log_prob involving the value "
                                      "are not available in lograd_fast.torch (closed forms "
                                      "cover the parameters)")
        for i, extra in enumerate(rules.second(x, params, mask, list(g_scores))):
            if not isinstance(extra, float):
                grads[i] = extra if grads[i] is None else grads[i] + extra
    grad_x = None
    if need_x and g_lp is not None:
        rules = _rules(spec, "d_value")
        if rules is None:
            raise _no_closed_form(spec, "d log_prob / d value")
        grad_x = _sum_to(_bcast(g_lp, x.dim()) * rules.d_value(x, params, mask, scores),
                         x.shape)
    return grad_x, [None if g is None else _sum_to(g, p.shape) for g, p in zip(grads, params)]


def _entropy_grads(spec, params, mask, g):
    rules = _rules(spec, "d_entropy")
    if rules is None:
        raise _no_closed_form(spec, "the gradient of the entropy")
    grads = rules.d_entropy(params, mask, g, _event_ndims(spec))
    return [None if d is None else _sum_to(d, p.shape) for d, p in zip(grads, params)]


def _kl_grads(spec, p, q, mask_p, mask_q, g):
    rules = _rules(spec, "d_kl")
    if rules is None:
        raise _no_closed_form(spec, "the gradient of the KL divergence")
    d_p, d_q = rules.d_kl(p, q, mask_p, mask_q, g, _event_ndims(spec))
    return ([_sum_to(d, t.shape) for d, t in zip(d_p, p)],
            [_sum_to(d, t.shape) for d, t in zip(d_q, q)])


def _event_ndims(spec: str) -> int:
    return _parse(spec)[1].get("event_ndims", 0)


def _unpack_log_prob(ctx):
    saved, n = ctx.saved_tensors, ctx.n
    x, params, scores = saved[0], list(saved[1:1 + n]), list(saved[1 + n:1 + 2 * n])
    (mask,) = _masks(ctx, saved[1 + 2 * n:])
    return x, params, scores, mask


# -- registered autograd of the operators ---------------------------------------------
def _op_setup_plain_log_prob(ctx, inputs, output):
    spec, x, params, mask = inputs
    _save(ctx, spec, [x, *params], len(params), (mask,))


def _op_plain_log_prob_backward(ctx, g):
    """``log_prob`` used directly with tensors that require grad: the scores come from
    ``log_prob_score`` (whose own autograd carries second derivatives)."""
    saved, n = ctx.saved_tensors, ctx.n
    x, params = saved[0], list(saved[1:1 + n])
    (mask,) = _masks(ctx, saved[1 + n:])
    _, scores = ops.log_prob_score.default(ctx.spec, x, params, mask)
    gx, grads = _log_prob_grads(ctx.spec, x, params, scores, mask, g, None, x.requires_grad)
    return None, gx, grads, None


def _op_setup_log_prob(ctx, inputs, output):
    spec, x, params, mask = inputs
    _save(ctx, spec, [x, *params, *output[1]], len(params), (mask,))


def _op_log_prob_backward(ctx, g_lp, g_scores):
    x, params, scores, mask = _unpack_log_prob(ctx)
    gx, grads = _log_prob_grads(ctx.spec, x, params, scores, mask, g_lp, g_scores,
                                x.requires_grad)
    return None, gx, grads, None


def _op_setup_sample_score(ctx, inputs, output):
    spec, params, mask, sample_shape, _ = inputs
    ctx.n_shape = len(sample_shape)
    _save(ctx, spec, [output[1], *params, *output[2]], len(params), (mask,))


def _op_sample_score_backward(ctx, g_lp, g_x, g_scores):
    x, params, scores, mask = _unpack_log_prob(ctx)
    _, grads = _log_prob_grads(ctx.spec, x, params, scores, mask, g_lp, g_scores, False)
    # an int list is one leaf of the inputs' structure, an empty one a list (pytree)
    return None, grads, None, (None if ctx.n_shape else []), None


def _op_setup_entropy(ctx, inputs, output):
    spec, params, mask = inputs
    _save(ctx, spec, list(params), len(params), (mask,))


def _op_entropy_backward(ctx, g):
    saved = ctx.saved_tensors
    (mask,) = _masks(ctx, saved[ctx.n:])
    return None, _entropy_grads(ctx.spec, list(saved[: ctx.n]), mask, g), None


def _op_setup_kl(ctx, inputs, output):
    spec, p, q, mask_p, mask_q = inputs
    _save(ctx, spec, [*p, *q], len(p), (mask_p, mask_q))


def _op_kl_backward(ctx, g):
    saved, n = ctx.saved_tensors, ctx.n
    mask_p, mask_q = _masks(ctx, saved[2 * n:])
    d_p, d_q = _kl_grads(ctx.spec, list(saved[:n]), list(saved[n:2 * n]), mask_p, mask_q, g)
    return None, d_p, d_q, None, None


# ============================================================================ vmap
def _select(arg: Any, dim: int | None, i: int) -> Any:
    if dim is None:
        return arg
    if isinstance(arg, (list, tuple)):
        return [a if d is None else a.select(d, i) for a, d in zip(arg, dim)]
    return arg.select(dim, i)


def _stack(outs: list) -> tuple:
    first = outs[0]
    if isinstance(first, torch.Tensor):
        return torch.stack(outs), 0
    if isinstance(first, list):
        return [torch.stack(col) for col in zip(*outs)], [0] * len(first)
    cols = [_stack([o[j] for o in outs]) for j in range(len(first))]
    return tuple(c[0] for c in cols), tuple(c[1] for c in cols)


def _vmap_rule(op):
    """Batched calls one slice at a time: the kernels' batch is the distribution's own,
    so a vmapped dimension is run slice by slice (correct for every family)."""

    def rule(info, in_dims, *args):
        outs = [op(*(_select(a, d, i) for a, d in zip(args, in_dims)))
                for i in range(info.batch_size)]
        return _stack(outs)

    return rule


# ============================================================================ registration
_LIB = torch.library.Library("lograd_fast", "DEF")
_SCHEMAS = {
    "log_prob": ("(str spec, Tensor x, Tensor[] params, Tensor? mask) -> Tensor",
                 _log_prob_impl, _log_prob_fake,
                 (_op_plain_log_prob_backward, _op_setup_plain_log_prob)),
    "log_prob_score": ("(str spec, Tensor x, Tensor[] params, Tensor? mask) "
                       "-> (Tensor, Tensor[])", _log_prob_score_impl, _log_prob_score_fake,
                       (_op_log_prob_backward, _op_setup_log_prob)),
    "sample": ("(str spec, Tensor[] params, Tensor? mask, int[] sample_shape, Tensor seed) "
               "-> Tensor", _sample_impl, _sample_fake, None),
    "sample_score": ("(str spec, Tensor[] params, Tensor? mask, int[] sample_shape, "
                     "Tensor seed) -> (Tensor, Tensor, Tensor[])", _sample_score_impl,
                     _sample_score_fake, (_op_sample_score_backward, _op_setup_sample_score)),
    "entropy": ("(str spec, Tensor[] params, Tensor? mask) -> Tensor", _entropy_impl,
                _entropy_fake, (_op_entropy_backward, _op_setup_entropy)),
    "kl": ("(str spec, Tensor[] p, Tensor[] q, Tensor? mask_p, Tensor? mask_q) -> Tensor",
           _kl_impl, _kl_fake, (_op_kl_backward, _op_setup_kl)),
}
for _name, (_schema, _impl, _fake, _grad) in _SCHEMAS.items():
    _LIB.define(_name + _schema)
    for _dispatch_key in ("CPU", "CUDA"):
        _LIB.impl(_name, _impl, _dispatch_key)
    torch.library.register_fake(f"lograd_fast::{_name}", _fake, lib=_LIB)
    if _grad is not None:
        torch.library.register_autograd(f"lograd_fast::{_name}", _grad[0],
                                        setup_context=_grad[1], lib=_LIB)
    else:  # draws are not differentiable (as torch's sample): no graph through them
        _LIB.impl(_name, torch.library.fallthrough_kernel, "Autograd")
    _op = getattr(torch.ops.lograd_fast, _name).default
    torch.library.register_vmap(_op, _vmap_rule(_op), lib=_LIB)
ops = torch.ops.lograd_fast


def _plain(args: tuple) -> bool:
    """Only plain tensors (no fake, meta or other subclass) among ``args``."""
    for a in args:
        if isinstance(a, torch.Tensor):
            if type(a) is not torch.Tensor or a.device.type == "meta":
                return False
        elif isinstance(a, list) and a and isinstance(a[0], torch.Tensor):
            if not _plain(tuple(a)):
                return False
    return True


def _eager_op(op, impl):
    """``op`` as the classes call it.  Their gradients come from the Functions below
    (or none is needed): in eager mode with plain tensors the call runs the operator's
    implementation directly -- what the dispatcher would run, without its boxing and
    the registered autograd layer (measured ~7 + ~10 us per call); traced
    (``torch.compile``), under ``torch.func`` transforms or with fake tensors it is the
    operator."""

    def call(*args):
        if torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active() \
                or not _plain(args):
            return op(*args)
        return impl(*args)

    return call


_log_prob_op = _eager_op(ops.log_prob.default, _log_prob_impl)
_log_prob_score_op = _eager_op(ops.log_prob_score.default, _log_prob_score_impl)
_sample_op = _eager_op(ops.sample.default, _sample_impl)
_sample_score_op = _eager_op(ops.sample_score.default, _sample_score_impl)
_entropy_op = _eager_op(ops.entropy.default, _entropy_impl)
_kl_op = _eager_op(ops.kl.default, _kl_impl)


# -- the autograd.Functions the classes call (torch.func-ready) --------------------------
class _LogProbFn(torch.autograd.Function):
    """``log_prob`` and the scores of ``x`` (outputs ``lp, *scores``)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(spec, x, mask, *params):
        lp, scores = _log_prob_score_op(spec, x, list(params), mask)
        return (lp, *scores)

    @staticmethod
    def setup_context(ctx, inputs, output):
        spec, x, mask, *params = inputs
        _save(ctx, spec, [x, *params, *output[1:]], len(params), (mask,))

    @staticmethod
    def backward(ctx, g_lp, *g_scores):
        x, params, scores, mask = _unpack_log_prob(ctx)
        gx, grads = _log_prob_grads(ctx.spec, x, params, scores, mask, g_lp, g_scores,
                                    ctx.needs_input_grad[1])
        return (None, gx, None, *grads)


class _SampleScoreFn(torch.autograd.Function):
    """Fused draws: ``lp, x, *scores``; ``lp`` backpropagates as ``log_prob``'s."""

    generate_vmap_rule = True

    @staticmethod
    def forward(spec, mask, sample_shape, seed, *params):
        lp, x, scores = _sample_score_op(spec, list(params), mask, sample_shape, seed)
        return (lp, x, *scores)

    @staticmethod
    def setup_context(ctx, inputs, output):
        spec, mask, _, _, *params = inputs
        ctx.mark_non_differentiable(output[1])
        _save(ctx, spec, [output[1], *params, *output[2:]], len(params), (mask,))

    @staticmethod
    def backward(ctx, g_lp, g_x, *g_scores):
        x, params, scores, mask = _unpack_log_prob(ctx)
        _, grads = _log_prob_grads(ctx.spec, x, params, scores, mask, g_lp, g_scores, False)
        return (None, None, None, None, *grads)


class _EntropyFn(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(spec, mask, *params):
        return _entropy_op(spec, list(params), mask)

    @staticmethod
    def setup_context(ctx, inputs, output):
        spec, mask, *params = inputs
        _save(ctx, spec, list(params), len(params), (mask,))

    @staticmethod
    def backward(ctx, g):
        saved = ctx.saved_tensors
        (mask,) = _masks(ctx, saved[ctx.n:])
        return (None, None, *_entropy_grads(ctx.spec, list(saved[: ctx.n]), mask, g))


class _KLFn(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(spec, n, mask_p, mask_q, *pq):
        return _kl_op(spec, list(pq[:n]), list(pq[n:]), mask_p, mask_q)

    @staticmethod
    def setup_context(ctx, inputs, output):
        spec, n, mask_p, mask_q, *pq = inputs
        _save(ctx, spec, list(pq), n, (mask_p, mask_q))

    @staticmethod
    def backward(ctx, g):
        saved, n = ctx.saved_tensors, ctx.n
        mask_p, mask_q = _masks(ctx, saved[2 * n:])
        d_p, d_q = _kl_grads(ctx.spec, list(saved[:n]), list(saved[n:2 * n]), mask_p,
                             mask_q, g)
        return (None, None, None, None, *d_p, *d_q)


def _eager_twin(fn: type) -> type:
    """The same Function in the old style (``ctx`` in ``forward``): measured 8 against
    21 us per call for the ``setup_context`` style, which the torch.func transforms
    (and torch.compile) get instead (:func:`_apply`)."""

    def forward(ctx, *args):
        out = fn.forward(*args)
        fn.setup_context(ctx, args, out)
        return out

    return type(f"_Eager{fn.__name__}", (torch.autograd.Function,),
                {"forward": staticmethod(forward), "backward": staticmethod(fn.backward)})


class _LogProbFirst(torch.autograd.Function):
    """Eager ``log_prob`` whose output is the log-probability alone: the scores stay
    intermediates of the call (no outputs to track, one multiplication in the
    backward).  When the backward itself is differentiated (``create_graph``), it
    recomputes through :class:`_LogProbFn`, whose scores carry the closed-form second
    derivatives."""

    @staticmethod
    def forward(ctx, spec, dist, x, mask, *params):
        # dist: the owner's lograd_fast distribution (the classes' lean path), or its
        # (log_prob, scores) computed already (Distribution._flat_log_prob_score), or None
        if dist is None:
            lp, scores = _log_prob_score_op(spec, x, list(params), mask)
        elif type(dist) is tuple:
            lp, scores = dist
        else:
            lp, scores = _dist_log_prob_score(dist, x)
        ctx.spec, ctx.scores, ctx.has_mask = spec, scores, mask is not None
        # the flat path's scores have the parameters' (and the value's) shape: without
        # event dims the backward is g * score alone (no broadcast, no reduction)
        ctx.plain = type(dist) is tuple and lp.dim() == x.dim() == scores[0].dim() \
            and not x.requires_grad
        if not ctx.plain:
            ctx.param_shapes = [p.shape for p in params]
        ctx.save_for_backward(x, *params, *([mask] if mask is not None else []))
        return lp

    @staticmethod
    def backward(ctx, g):
        if ctx.plain and not torch.is_grad_enabled():
            return (None, None, None, None, *[g * sc for sc in ctx.scores])
        need_x = ctx.needs_input_grad[2]
        if torch.is_grad_enabled() or need_x:
            saved = ctx.saved_tensors
            x = saved[0]
            params = list(saved[1:len(saved) - ctx.has_mask])
            mask = saved[-1] if ctx.has_mask else None
            if torch.is_grad_enabled():
                out = _LogProbFn.apply(ctx.spec, x, mask, *params)
                gx, grads = _log_prob_grads(ctx.spec, x, params, list(out[1:]), mask, g,
                                            None, need_x)
            else:
                gx, grads = _log_prob_grads(ctx.spec, x, params, ctx.scores, mask, g, None,
                                            need_x)
            return (None, None, gx, None, *grads)
        grads = [_bcast(g, sc.dim()) * sc for sc in ctx.scores]
        shapes = ctx.param_shapes
        return (None, None, None, None, *[_sum_to(gr, sh) for gr, sh in zip(grads, shapes)])


class _EntropyFirst(torch.autograd.Function):
    """Eager ``entropy`` of a family with a first-order fast path (``entropy_and_grad``
    of its rules): the gradient comes with the value, the backward is one multiplication;
    a differentiated backward recomputes through :class:`_EntropyFn`."""

    @staticmethod
    def forward(ctx, spec, dist, mask, *params):
        # dist: the lograd_fast distribution, None (built here), or (entropy, [gradient])
        # computed already (Categorical's update path, with its log_prob)
        if type(dist) is tuple:
            ent, grads = dist
        else:
            d = _lf(spec, list(params), mask) if dist is None else dist
            ent, grads = _rules(spec, "entropy_and_grad").entropy_and_grad(d)
        dev = params[0].device
        if dev.type != "cpu":  # computed on the host (every backend): two copies, not
            # the backward's dozen small device operations (measured on an H200)
            ent, grads = ent.to(dev), [gr.to(dev) for gr in grads]
        ctx.grads = grads
        ctx.spec, ctx.has_mask = spec, mask is not None
        ctx.param_shapes = [p.shape for p in params]
        ctx.save_for_backward(*params, *([mask] if mask is not None else []))
        return ent

    @staticmethod
    def backward(ctx, g):
        if torch.is_grad_enabled():
            saved = ctx.saved_tensors
            params = list(saved[:len(saved) - ctx.has_mask])
            mask = saved[-1] if ctx.has_mask else None
            return (None, None, None, *_entropy_grads(ctx.spec, params, mask, g))
        return (None, None, None, *[_sum_to(_bcast(g, gr.dim()) * gr, sh)
                              for gr, sh in zip(ctx.grads, ctx.param_shapes)])


def _c_apply(fn: type):
    """``fn.apply`` without ``Function.apply``'s Python layer (its argument binding and
    functorch checks, ~2.5 us per call measured): for the eager paths only, where no
    functorch transform is active."""
    return super(torch.autograd.Function, fn).apply


_EAGER = {fn: _c_apply(_eager_twin(fn)) for fn in (_SampleScoreFn, _EntropyFn, _KLFn)}
_LOG_PROB_FIRST = _c_apply(_LogProbFirst)
_ENTROPY_FIRST = _c_apply(_EntropyFirst)


def _apply(fn: type, *args: Any):
    if torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active():
        return fn.apply(*args)
    return _EAGER[fn](*args)


def _log_prob_graph(spec: str, x: torch.Tensor, mask, params: list) -> torch.Tensor:
    """``log_prob`` with a graph to the parameters (and the value)."""
    if torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active():
        return _LogProbFn.apply(spec, x, mask, *params)[0]
    return _LOG_PROB_FIRST(spec, None, x, mask, *params)


# ============================================================================ classes
_SEED_BUFFER = threading.local()


def _eager() -> bool:
    """Neither compiling nor inside a torch.func transform."""
    return not (torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active())


def _global_seed() -> int:
    """A Philox seed from torch's global generator: the number ``torch.randint(0,
    _SEED_MAX, ())`` draws (the same ``random_`` underneath), into one reused tensor per
    thread (1.1 against 2.1 us with ``int()``, measured)."""
    buf = getattr(_SEED_BUFFER, "tensor", None)
    if buf is None:
        buf = _SEED_BUFFER.tensor = torch.empty((), dtype=torch.int64)
    return buf.random_(0, _SEED_MAX).item()


def _log(t: torch.Tensor) -> torch.Tensor:
    """``torch.log(t)``; for a large expanded CPU tensor (``std.expand(B, A)``, as RL
    code passes the scale) outside autograd (a rollout), the log of its distinct
    values, expanded: torch's log of a stride-0 view runs ~6x slower per element than
    of a contiguous one (measured 42 against 7 us for (1024, 6), and 3 us for the log
    of (6,) then expanded; this path costs ~7.5 us, torch's log 10.7 us at 1536
    elements, 5.9 at 768).  Not where a gradient flows: the gradient of ``t`` itself
    would then gather in the first row of each expanded dim."""
    if t.numel() < 2048 or type(t) is not torch.Tensor or t.device.type != "cpu" \
            or (t.requires_grad and torch.is_grad_enabled()) \
            or torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active() \
            or 0 not in t.stride():
        return torch.log(t)
    small = t
    for dim, (size, stride) in enumerate(zip(t.shape, t.stride())):
        if stride == 0 and size > 1:
            small = small.narrow(dim, 0, 1)
    return torch.log(small).expand(t.shape)


def _tensor(value: Any, like: torch.Tensor | None) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if like is None:
        return torch.as_tensor(value, dtype=torch.get_default_dtype())
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def _params(**given: Any) -> list[torch.Tensor]:
    """Tensors of one float dtype on one device; numbers follow the tensors (as torch
    broadcasts Python scalars)."""
    out = list(given.values())
    first = out[0]
    # the common call, checked first (``is_cpu``: 0.05 us, ``device.type``: 0.25)
    if type(first) is torch.Tensor and first.dtype in _FLOATS and first.is_cpu \
            and all(type(t) is torch.Tensor and t.dtype is first.dtype and t.is_cpu
                    for t in out):
        return out
    like = next((v for v in given.values() if isinstance(v, torch.Tensor)), None)
    out = [_tensor(v, like) for v in given.values()]
    names = list(given)
    for name, t in zip(names, out):
        if t.dtype not in _FLOATS:
            raise TypeError(f"{name} must be a float32 or float64 tensor, got {t.dtype}")
        if t.dtype != out[0].dtype:
            raise TypeError(f"{name} has dtype {t.dtype} but {names[0]} has {out[0].dtype}: "
                            "all parameters need the same dtype")
        if t.device != out[0].device:
            raise ValueError(f"{name} is on {t.device} but {names[0]} is on {out[0].device}: "
                             "all parameters must be on one device")
    if out[0].device.type not in ("cpu", "cuda"):
        raise ValueError(f"parameters on {out[0].device} are not supported (cpu or cuda)")
    return out


class Distribution(_td.Distribution):
    """Base of the torch-facing distributions: the parameters (unconstrained, as the
    kernels take them), a family spec and the operators above.  Subclasses set
    ``_lf_name`` and build ``self._params`` (a list of tensors) and ``self._mask``."""

    _lf_name: str
    _discrete = False  # integer class indices as values
    _mask: torch.Tensor | None = None
    _drawn: tuple | None = None  # (x, log_prob(x), parameter and mask versions) of a draw
    _lf_cache: tuple | None = None  # (versions, lograd_fast distribution)
    # (versions, entropy, [gradient]) computed with a log_prob, for the next entropy()
    _kept_entropy: tuple | None = None
    _eager_ok = False  # plain CPU tensors: eager calls may skip the operator layers
    # a flat update path (_flat_log_prob_score): the family takes
    # log_prob_and_score_flat, or the class has a path of its own (set per class below)
    _flat_ok = False
    _param_event_ndims: tuple = ()  # the family's, per class (set below)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("_lf_name")
        if name is not None:
            cls._flat_ok = lean_eligible(FAMILY_CLASSES[name]) or \
                "_flat_log_prob_score" in cls.__dict__
            cls._param_event_ndims = FAMILY_CLASSES[name].family.param_event_ndims

    def _init(self, params: list, spec: str, event_ndims: int, validate_args,
              extra_lead: tuple = ()) -> None:
        self._params = params
        self._device = params[0].device
        self._eager_ok = params[0].is_cpu and all(
            type(t) is torch.Tensor for t in params) and (
            self._mask is None or type(self._mask) is torch.Tensor)
        self._spec = spec
        self._event_ndims = int(event_ndims)
        ndims = self._param_event_ndims
        leads = [p.shape for p in params] if not any(ndims) else [
            p.shape[: p.dim() - t] for p, t in zip(params, ndims)]
        if extra_lead:
            leads.append(extra_lead)
        full = _broadcast(*leads)
        k = len(full) - self._event_ndims
        if k < 0:
            raise ValueError(f"event_ndims={event_ndims} exceeds the parameters' "
                             f"{len(full)} batch dims {tuple(full)}")
        self._full_shape = torch.Size(full)
        self._core = tuple(full)  # the trailing dims of a value (the classes' draws are scalars)
        # validation runs in the kernels of every call (see the module docstring)
        if self._event_ndims:
            super().__init__(torch.Size(full[:k]), torch.Size(full[k:]), validate_args=False)
        else:
            super().__init__(self._full_shape, _NO_SHAPE, validate_args=False)
        self._validate_args = _td.Distribution._validate_args if validate_args is None \
            else bool(validate_args)

    # -- helpers ---------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        return self._params[0].dtype

    @property
    def device(self) -> torch.device:
        return self._device

    def _seed(self, seed: int | None) -> torch.Tensor:
        if seed is None:  # torch's global generator: torch.manual_seed makes runs repeat
            return torch.randint(0, _SEED_MAX, (), dtype=torch.int64)
        if not 0 <= int(seed) < _SEED_MAX:
            raise ValueError(f"seed must be in [0, 2**62), got {seed}")
        return torch.tensor(int(seed), dtype=torch.int64)

    @staticmethod
    def _shape(sample_shape: Any) -> list:
        if sample_shape is _NO_SHAPE:  # the default: one draw
            return []
        shape = list(torch.Size(sample_shape))
        if any(k < 1 for k in shape):
            raise ValueError(f"sample_shape must have positive entries, got {tuple(shape)}")
        return shape

    def _needs_grad(self, *tensors: torch.Tensor) -> bool:
        return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)

    def _value(self, value: Any) -> torch.Tensor:
        """``value`` cast as torch casts it and broadcast to ``(*lead, *batch, *event)``."""
        if not isinstance(value, torch.Tensor):
            value = torch.as_tensor(value, device=self.device)
        if value.device != self.device:
            raise ValueError(f"value is on {value.device} but the distribution's parameters "
                             f"are on {self.device}")
        if self._discrete:
            if value.is_floating_point():
                if self._validate_args and not torch._is_all_true(value == value.floor()):
                    raise ValueError("value must hold integer class indices")
                value = value.long()
            elif value.dtype == torch.bool or value.is_complex():
                raise TypeError(f"value must hold integer class indices, got {value.dtype}")
        elif value.dtype != self.dtype:
            value = value.to(torch.promote_types(value.dtype, self.dtype)
                             if value.is_floating_point() else self.dtype)
        core = self._core
        if value.shape == core:  # the common case: the full shape, no sample dims
            return value
        k = len(core)
        if value.dim() < k or tuple(value.shape[value.dim() - k:]) != core:
            try:
                value = value.expand(_broadcast(value.shape, core))
            except RuntimeError:
                raise ValueError(f"value has shape {tuple(value.shape)}; expected "
                                 f"(*sample_shape, *{core})") from None
        return value

    def _lf_dist(self):
        """The lograd_fast distribution of this object's parameters, built once and used
        while they keep the tensor versions it saw (an in-place write rebuilds it)."""
        versions = _versions(self._params, self._mask)
        cached = self._lf_cache
        if cached is not None and cached[0] == versions:
            return cached[1]
        d = _build(self._spec, self._params, self._mask)
        self._lf_cache = (versions, d)
        return d

    def _lean(self) -> bool:
        """Eager mode with plain CPU tensors: the classes call the lograd_fast distribution
        directly (what the operators' implementations would do, without their layers)."""
        return self._eager_ok and _eager()

    def _flat_log_prob_score(self, x: torch.Tensor, params: list) -> tuple | None:
        """``(log_prob, [scores])`` of a value of the parameters' own shape and dtype,
        every tensor dense (an update's stored actions): computed on their memory
        without building the lograd_fast distribution (a private copy of the
        parameters, checked layouts: ~8 us of an update) -- on their raw pointers where
        the family has that call (:func:`lograd_fast._engine.cpu.checked_log_prob_score_raw`),
        else through numpy (:func:`lograd_fast.distribution.log_prob_and_score_flat`,
        which also raises the errors of bad values); None where the call needs the
        general path."""
        shape = x.shape
        if x.dtype != params[0].dtype or not x.is_contiguous():
            return None
        E = self._dense_items(shape, params)
        if E is None:
            return None
        k = self._event_ndims
        n = x.numel()
        run = _raw_runner(self._lf_name, x.dtype) if 0 < n < _ONE_CALL_ATOMS else None
        if run is not None:  # the compiled call on the tensors' memory (see
            # cpu.checked_log_prob_score_raw; layouts, dtypes and lengths checked above)
            lp = torch.empty(shape[:len(shape) - k] if k else shape, dtype=x.dtype)
            scores = torch.empty((2,) + tuple(shape), dtype=x.dtype)
            first, row = scores.data_ptr(), n * x.element_size()
            if not run(params[0].data_ptr(), params[1].data_ptr(), x.data_ptr(),
                       lp.data_ptr(), first, first + row, _scratch(2 * n), n, E):
                return lp, list(scores.unbind())
            # a bad value: the numpy route below raises its error
        try:
            block = log_prob_and_score_flat(
                FAMILY_CLASSES[self._lf_name].family, [_host(p).reshape(-1) for p in params],
                _host(x).reshape(-1), E)
        except ValueError as exc:
            raise _param_error(self._spec, exc) from None
        if E == 1:  # the scores as one tensor cut in rows (1 + 1 us, against 2 x 1.3);
            # not the log-prob, which is returned: a view made inside a Function's
            # forward cannot be modified in place, torch's log_prob can
            shape = tuple(shape)
            return torch.from_numpy(block[0].reshape(shape)), list(
                torch.from_numpy(block[1:].reshape((len(block) - 1,) + shape)).unbind())
        return _out(block[0, :x.numel() // E], shape[:len(shape) - k], x.device), [
            _out(row, shape, x.device) for row in block[1:]]

    def _dense_items(self, shape: torch.Size, params: list | None = None) -> int | None:
        """Atoms per item (the event's size) where every parameter (``params``, else
        the distribution's) is a dense tensor of ``shape`` and there is no mask: what
        the calls on the tensors' own memory take; else None."""
        if self._mask is not None:
            return None
        for p in self._params if params is None else params:
            if p.shape != shape or not p.is_contiguous():
                return None
        k = self._event_ndims
        return math.prod(shape[len(shape) - k:]) if k else 1

    def _call(self, fn, *args):
        """``fn(*args)`` with this distribution named as the owner of the operator calls
        (eager mode: they share one lograd_fast distribution, see ``_lf``)."""
        if torch.compiler.is_compiling():
            return fn(*args)
        before = getattr(_LOCAL, "owner", None)
        _LOCAL.owner = self
        try:
            return fn(*args)
        finally:
            _LOCAL.owner = before

    def _cast(self, dtype: torch.dtype) -> list:
        return self._params if dtype == self.dtype else [p.to(dtype) for p in self._params]

    # -- torch.distributions API -------------------------------------------------------
    def sample(self, sample_shape: Any = _NO_SHAPE, seed: int | None = None) -> torch.Tensor:
        """Draws ``(*sample_shape, *batch_shape, *event_shape)`` (no gradient).

        ``seed``: a Philox seed (default: one drawn from torch's global generator)."""
        # RL code asks for the log-prob of the action it just drew: the fused pass
        # computes it now, and log_prob(x) of this very x returns it (once)
        if self._lean():  # no torch operation here records a graph: no no_grad needed
            shape = self._shape(sample_shape)
            seed_i = _global_seed() if seed is None else int(self._seed(seed))
            got = None if shape else self._raw_sample(seed_i)
            if got is not None:
                self._drawn = (got[0], got[1], _versions(self._params, self._mask))
                return got[0]
            x, lp, _ = self._lf_dist().sample_and_score(_n(shape), seed=seed_i)
            x, lp = torch.from_numpy(x), torch.from_numpy(lp)
            if len(shape) > 1:
                x = x.reshape(tuple(shape) + tuple(x.shape[1:]))
                lp = lp.reshape(tuple(shape) + tuple(lp.shape[1:]))
            self._drawn = (x, lp, self._lf_cache[0])  # the versions it was drawn at
            return x
        if self._device.type == "cuda" and _eager():  # the same, outputs to the device:
            # x and log_prob only (the operator would also copy the unused scores)
            shape = self._shape(sample_shape)
            seed_i = _global_seed() if seed is None else int(self._seed(seed))
            d = _lf_sized(self._spec, self._params, self._mask, math.prod(shape),
                          d=self._lf_dist())
            x, lp, _ = d.sample_and_score(_n(shape), seed=seed_i)
            x = _out(x, tuple(shape) + d._x_shape(None), self._device)
            self._drawn = (x, _out(lp, tuple(shape) + d.batch_shape, self._device),
                           self._lf_cache[0])
            return x
        with torch.no_grad():
            shape, seed_t = self._shape(sample_shape), self._seed(seed)
            if torch.compiler.is_compiling():
                return _sample_op(self._spec, self._params, self._mask, shape, seed_t)
            lp, x, _ = self._call(_sample_score_op, self._spec, self._params, self._mask,
                                  shape, seed_t)
            self._drawn = (x, lp, _versions(self._params, self._mask))
            return x

    def _raw_sample(self, seed: int) -> tuple | None:
        """``(x, log_prob(x))`` of one draw from the family's raw-pointer RL step on the
        parameters' memory (dense, of one shape; no lograd_fast distribution built),
        or None where the call needs the general path (which also raises the errors of
        bad parameters: the raw step draws nothing then)."""
        params, shape = self._params, self._full_shape
        E = self._dense_items(shape) if len(params) == 2 else None
        n = params[0].numel()
        step = _raw_step(self._lf_name, params[0].dtype, n, E) if E and n else None
        if step is None:
            return None
        run, nv, nl, direct, v_off, l_off, words = step
        dtype, k = params[0].dtype, self._event_ndims
        x = torch.empty(shape, dtype=dtype)
        lp = torch.empty(shape[:len(shape) - k] if k else shape, dtype=dtype)
        scores = torch.empty((2,) + tuple(shape), dtype=dtype)  # written, not kept
        first, row = scores.data_ptr(), n * x.element_size()
        base = _scratch(words)
        lo, hi = seed & 0xFFFFFFFF, seed >> 32  # check_seed's halves (stream 0)
        if run(params[0].data_ptr(), params[1].data_ptr(), lo, hi, 0, x.data_ptr(),
               lp.data_ptr(), first, first + row, base, base + v_off, nv,
               lp.data_ptr() if direct else base + l_off, n if direct else nl, n, E,
               direct):
            return None
        return x, lp

    def sample_and_log_prob(self, sample_shape: Any = _NO_SHAPE,
                            seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, log_prob(x))`` from one fused pass (samples, log-probs and scores); the
        log-prob backpropagates like :meth:`log_prob`'s."""
        lp, x, *_ = self._call(_apply, _SampleScoreFn, self._spec, self._mask,
                               self._shape(sample_shape),
                            self._seed(seed), *self._params)
        return x, lp

    def log_prob(self, value: Any) -> torch.Tensor:
        """Log density/mass ``(*sample_shape, *batch_shape)``; differentiable w.r.t. the
        parameters (and the value, for Normal and TanhNormal), closed form."""
        drawn = self._drawn
        if drawn is not None:
            self._drawn = None
            if value is drawn[0] and value._version == 0 and not self._needs_grad(
                    *self._params) and drawn[2] == _versions(self._params, self._mask):
                return drawn[1]
        x = self._value(value)
        params = self._params if not x.is_floating_point() else self._cast(x.dtype)
        lean = params is self._params and self._lean()
        if self._needs_grad(x, *params):
            if lean:
                got = self._flat_log_prob_score(x, params) if self._flat_ok else None
                return _LOG_PROB_FIRST(self._spec, self._lf_dist() if got is None else got,
                                       x, self._mask, *params)
            return self._call(_log_prob_graph, self._spec, x, self._mask, params)
        if lean:
            return _dist_log_prob(self._lf_dist(), x)
        return self._call(_log_prob_op, self._spec, x, params, self._mask)

    def score(self, value: Any) -> dict[str, torch.Tensor]:
        """Closed-form ``d log p(value) / d param`` of the unconstrained parameters
        (broadcast ``(*sample_shape, *full_shape, *param_event_shape)``; no graph)."""
        with torch.no_grad():
            x = self._value(value)
            _, s = self._call(_log_prob_score_op, self._spec, x, self._params, self._mask)
        names = FAMILY_CLASSES[self._lf_name].family.param_names
        return dict(zip(names, s))

    def entropy(self) -> torch.Tensor:
        """Entropy ``batch_shape``; differentiable w.r.t. the parameters (closed form)."""
        if self._needs_grad(*self._params):
            kept = self._kept_entropy
            if kept is not None:  # from the log_prob before: used once (a fresh tensor)
                self._kept_entropy = None
                if kept[0] == _versions(self._params, self._mask) and self._lean():
                    return _ENTROPY_FIRST(self._spec, kept[1:], self._mask, *self._params)
            if _rules(self._spec, "entropy_and_grad") is not None and (
                    self._lean() or self._device.type == "cuda" and _eager()):
                return _ENTROPY_FIRST(self._spec, self._lf_dist(), self._mask, *self._params)
            return self._call(_apply, _EntropyFn, self._spec, self._mask, *self._params)
        if self._lean():
            return _dist_entropy(self._lf_dist(), self._device)
        return self._call(_entropy_op, self._spec, self._params, self._mask)

    def expand(self, batch_shape: Any, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self._new_instance(_instance)
        tail = tuple(self._full_shape[len(self.batch_shape):])
        full = batch_shape + tail
        new.__dict__.update(self.__dict__)
        new._lf_cache = new._drawn = new._kept_entropy = None  # of the old shape
        new._params = [p.expand(full + tuple(p.shape[p.dim() - t:])) for p, t in zip(
            self._params, FAMILY_CLASSES[self._lf_name].family.param_event_ndims)]
        if self._mask is not None:
            new._mask = self._mask.expand(full + self._mask.shape[-1:])
        new._full_shape = torch.Size(full)
        new._core = tuple(full) + tuple(self._core[len(self._full_shape):])
        _td.Distribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _new_instance(self, _instance):
        return _instance if _instance is not None else type(self).__new__(type(self))

    def __repr__(self) -> str:
        return (f"lograd_fast.torch.{type(self).__name__}(batch_shape="
                f"{tuple(self.batch_shape)}, event_shape={tuple(self.event_shape)}, "
                f"dtype={self.dtype}, device={self.device})")


class Normal(Distribution):
    """``N(loc, scale**2)`` exactly as :class:`torch.distributions.Normal` (``loc``,
    ``scale``, ``validate_args``), or with ``log_scale=`` (the unconstrained form; the
    scores and gradients then go to ``log_scale``).  ``event_ndims=k`` makes the last
    ``k`` batch dims one event, as ``Independent(Normal(...), k)``.
    """

    _lf_name = "Normal"
    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc: Any, scale: Any = None, validate_args: bool | None = None, *,
                 log_scale: Any = None, event_ndims: int = 0) -> None:
        if (scale is None) == (log_scale is None):
            raise TypeError(f"{type(self).__name__} needs exactly one of scale (the standard "
                            "deviation, positional as in torch) and log_scale= (its log)")
        if log_scale is None:
            loc, scale = _params(loc=loc, scale=scale)
            self._scale = scale
            log_scale = _log(scale)  # the gradient flows to scale through the log
        else:
            loc, log_scale = _params(loc=loc, log_scale=log_scale)
            self._scale = None
        self._init([loc, log_scale], _spec(_lf_class(self._lf_name), event_ndims)
                   + (";from_scale" if self._scale is not None else ""),
                   event_ndims, validate_args)

    # the ";from_scale" flag only names the parameter in error messages
    @property
    def loc(self) -> torch.Tensor:
        return self._params[0]

    @property
    def log_scale(self) -> torch.Tensor:
        return self._params[1]

    @property
    def scale(self) -> torch.Tensor:
        return self._scale if self._scale is not None else self._params[1].exp()

    def _full(self, t: torch.Tensor) -> torch.Tensor:
        # as torch's (broadcast at construction): the tensor itself where it has the
        # full shape (an expand is ~3 us of an update's entropy)
        return t if t.shape == self._full_shape else t.expand(self._full_shape)

    @property
    def mean(self) -> torch.Tensor:
        return self._full(self.loc)

    @property
    def mode(self) -> torch.Tensor:
        return self._full(self.loc)

    @property
    def stddev(self) -> torch.Tensor:
        return self._full(self.scale)

    @property
    def variance(self) -> torch.Tensor:
        return self._full(self.scale) ** 2

    def entropy(self) -> torch.Tensor:
        """``1/2 + log(2 pi)/2 + log_scale`` summed over the event dims: a closed form
        of two torch operations (a kernel call would only add its overhead)."""
        ent = self._full(self.log_scale) + (0.5 + 0.5 * math.log(2 * math.pi))
        return self._sum_event(ent)

    def _eps(self, sample_shape: Any, seed: int | None) -> torch.Tensor:
        """Standard normals ``(*sample_shape, *full_shape)`` from lograd_fast's sampler."""
        zeros = self.loc.new_zeros(())
        spec = _spec(_lf_class("Normal"))
        with torch.no_grad():
            eps = _sample_op(spec, [zeros, zeros], None,
                             self._shape(sample_shape) + list(self._full_shape),
                             self._seed(seed))
        return eps

    def rsample(self, sample_shape: Any = _NO_SHAPE, seed: int | None = None) -> torch.Tensor:
        """Pathwise draws ``loc + scale * eps`` (gradients flow to the parameters)."""
        return self.loc + self.scale * self._eps(sample_shape, seed)

    def cdf(self, value: Any) -> torch.Tensor:
        z = (self._value(value) - self.loc) / self.scale
        return self._sum_event(0.5 * torch.erfc(-z * math.sqrt(0.5)), prod=True)

    def icdf(self, value: Any) -> torch.Tensor:
        if self._event_ndims:
            raise NotImplementedError("icdf of a multivariate (event_ndims > 0) Normal")
        return self.loc + self.scale * torch.erfinv(2 * _tensor(value, self.loc) - 1) \
            * math.sqrt(2)

    def _sum_event(self, t: torch.Tensor, prod: bool = False) -> torch.Tensor:
        if not self._event_ndims:
            return t
        dims = tuple(range(-self._event_ndims, 0))
        if prod:  # the CDF of independent coordinates: the product over the event
            return t.log().sum(dims).exp()
        return t.sum(dims)


class TanhNormal(Normal):
    """``tanh(u)``, ``u ~ N(loc, scale**2)`` (SAC-style bounded actions), with torch's
    ``Normal`` signature; ``log_prob`` of actions in ``(-1, 1)`` with scores w.r.t.
    ``loc`` and ``scale`` (or ``log_scale``) of the pre-squash Gaussian.  ``mode`` is
    ``tanh(loc)``; ``mean`` is ``E[tanh u]`` (quadrature, no gradient); the entropy has
    no closed form and raises.
    """

    _lf_name = "TanhNormal"
    support = constraints.interval(-1.0, 1.0)

    @property
    def mode(self) -> torch.Tensor:
        return self._full(torch.tanh(self.loc))

    @property
    def mean(self) -> torch.Tensor:
        d = _lf(self._spec, self._params, None)
        return torch.from_numpy(np.ascontiguousarray(d.mean)).to(self.device)

    @property
    def variance(self) -> torch.Tensor:
        raise NotImplementedError("TanhNormal.variance has no closed form")

    stddev = variance

    def rsample(self, sample_shape: Any = _NO_SHAPE, seed: int | None = None) -> torch.Tensor:
        """Pathwise draws ``tanh(loc + scale * eps)``."""
        return torch.tanh(super().rsample(sample_shape, seed))

    def entropy(self) -> torch.Tensor:
        raise NotImplementedError("TanhNormal.entropy has no closed form (as "
                                  "torch.distributions.TransformedDistribution): estimate it "
                                  "by -log_prob of samples")

    def cdf(self, value: Any) -> torch.Tensor:
        return super().cdf(torch.atanh(self._value(value)))

    def icdf(self, value: Any) -> torch.Tensor:
        return torch.tanh(super().icdf(value))


class Categorical(Distribution):
    """Categorical over the last dim, as :class:`torch.distributions.Categorical`
    (``probs=`` or ``logits=``, ``validate_args``), plus an optional boolean ``mask``
    ``(..., K)`` (False = not allowed: probability, entropy and score contributions
    exactly 0).  ``probs`` are normalised and their log taken (the gradient flows
    through the log, as torch)."""

    _lf_name = "Categorical"
    _discrete = True
    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}
    has_enumerate_support = True

    def __init__(self, probs: Any = None, logits: Any = None, validate_args: bool | None = None,
                 *, mask: Any = None) -> None:
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        if logits is None:
            (probs,) = _params(probs=probs)
            logits = torch.log(probs / probs.sum(-1, keepdim=True))
        else:
            (logits,) = _params(logits=logits)
        if logits.dim() < 1:
            raise ValueError("logits must have at least one dimension (the classes)")
        if mask is not None:
            mask = torch.as_tensor(mask, device=logits.device)
            if mask.dtype != torch.bool:
                raise TypeError(f"mask must be a bool tensor, got {mask.dtype}")
            if mask.dim() < 1 or mask.shape[-1] != logits.shape[-1]:
                raise ValueError(f"mask has shape {tuple(mask.shape)}; its last dim must be "
                                 f"K={logits.shape[-1]} like logits")
        self._mask = mask
        self._init([logits], _spec(_lf_class("Categorical")), 0, validate_args,
                   () if mask is None else tuple(mask.shape[:-1]))

    @property
    def _num_events(self) -> int:
        return self._params[0].shape[-1]

    def _flat_log_prob_score(self, x: torch.Tensor, params: list) -> tuple | None:
        """An update's ``log_prob`` of stored actions (int64, one per row, dense; a mask
        of the logits' shape, or none): log-probs and scores from one compiled call on
        the tensors' memory (``categorical.update_terms``, no lograd_fast distribution
        built), which also gives the entropy and its gradient, kept for the
        ``entropy()`` that follows.  None where the call needs the general path."""
        (logits,) = params
        K = logits.shape[-1]
        mask = self._mask
        if x.dtype != torch.int64 or K == 0 or x.shape != logits.shape[:-1] \
                or not (x.is_contiguous() and logits.is_contiguous()) or mask is not None \
                and not (mask.shape == logits.shape and mask.is_contiguous()):
            return None
        try:
            lp, score, ent, grad = _categorical_update_terms(
                _host(logits).reshape(-1, K), _host(x).reshape(-1),
                None if mask is None else _host(mask).reshape(-1, K))
        except ValueError as exc:
            raise _param_error(self._spec, exc) from None
        shape, dev = tuple(x.shape), x.device
        self._kept_entropy = (_versions(params, mask), _out(ent, shape, dev),
                              [_out(grad, shape + (K,), dev)])
        return _out(lp, shape, dev), [_out(score, shape + (K,), dev)]

    @property
    def param_shape(self) -> torch.Size:
        return self._full_shape + (self._num_events,)

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self):
        return constraints.integer_interval(0, self._num_events - 1)

    @property
    def _masked(self) -> torch.Tensor:
        return _masked_logits(self._params[0], self._mask).expand(self.param_shape)

    @property
    def logits(self) -> torch.Tensor:
        """Normalised log-probabilities ``(..., K)`` (``-inf`` where masked), as torch."""
        z = self._masked
        return z - z.logsumexp(dim=-1, keepdim=True)

    @property
    def probs(self) -> torch.Tensor:
        return torch.softmax(self._masked, dim=-1)

    @property
    def mean(self) -> torch.Tensor:
        return torch.full(self.batch_shape, math.nan, dtype=self.dtype, device=self.device)

    @property
    def mode(self) -> torch.Tensor:
        return self.probs.argmax(dim=-1)

    @property
    def variance(self) -> torch.Tensor:
        return self.mean

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        values = torch.arange(self._num_events, device=self.device)
        values = values.view((-1,) + (1,) * len(self.batch_shape))
        return values.expand((-1,) + tuple(self.batch_shape)) if expand else values


def _lf_class(name: str) -> type:
    return FAMILY_CLASSES[name]


# ============================================================================ KL
def _kl(p: Distribution, q: Distribution) -> torch.Tensor:
    if p._spec.split(";from_scale")[0] != q._spec.split(";from_scale")[0]:
        raise ValueError(f"kl_divergence: {p!r} and {q!r} differ in family or event_ndims")
    shape = _broadcast(p._full_shape, q._full_shape)
    p, q = (d if d._full_shape == shape else d.expand(shape[: len(shape) - d._event_ndims])
            for d in (p, q))
    dtype = torch.promote_types(p.dtype, q.dtype)
    spec = p._spec.split(";from_scale")[0]
    pp, qq = p._cast(dtype), q._cast(dtype)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (*pp, *qq)):
        return _apply(_KLFn, spec, len(pp), p._mask, q._mask, *pp, *qq)
    return _kl_op(spec, pp, qq, p._mask, q._mask)


def _as_ours(d: _td.Distribution) -> Distribution:
    if isinstance(d, _td.Normal):
        return Normal(d.loc, d.scale)
    if isinstance(d, _td.Categorical):
        return Categorical(logits=d.logits)
    # unreachable through the pairs registered below; said plainly if a pair is added
    raise NotImplementedError(f"KL with torch.distributions.{type(d).__name__}: no "
                              "lograd_fast.torch counterpart is registered")


for _a, _b in ((Normal, Normal), (TanhNormal, TanhNormal), (Categorical, Categorical)):
    _td.kl.register_kl(_a, _b)(_kl)
for _ours, _theirs in ((Normal, _td.Normal), (Categorical, _td.Categorical)):
    _td.kl.register_kl(_ours, _theirs)(lambda p, q: _kl(p, _as_ours(q)))
    _td.kl.register_kl(_theirs, _ours)(lambda p, q: _kl(_as_ours(p), q))


# ============================================================================ functional
def log_prob(dist_class: type, value: Any, **params: Any) -> torch.Tensor:
    """Any lograd_fast family: ``log_prob(lf.Gamma, x, log_concentration=.., log_rate=..)``,
    differentiable w.r.t. the tensors among ``params`` (first derivatives, closed-form
    scores; second derivatives where :data:`_RULES` has them, else a clear error).
    Other constructor arguments (``mask``, ``event_ndims``, ``nvec``) pass through."""
    fam = getattr(dist_class, "family", None)
    if fam is None or FAMILY_CLASSES.get(dist_class.__name__) is not dist_class:
        raise TypeError(f"dist_class must be a lograd_fast family class, got {dist_class!r}")
    names = fam.param_names
    missing = [k for k in names if k not in params]
    if missing:
        raise TypeError(f"{dist_class.__name__} needs the parameters {missing}")
    tensors = _params(**{k: params.pop(k) for k in names})
    mask = params.pop("mask", None)
    mask = None if mask is None else torch.as_tensor(mask, device=tensors[0].device)
    event_ndims = params.pop("event_ndims", 0)
    nvec = params.pop("nvec", None)
    if params:
        raise TypeError(f"unexpected arguments {sorted(params)}")
    spec = _spec(dist_class, event_ndims, nvec=nvec)
    full, _, event, _ = _shapes(spec, tensors, mask)
    x = torch.as_tensor(value, device=tensors[0].device)
    x = x.long() if fam.discrete else x.to(tensors[0].dtype)
    core = tuple(full) + tuple(event)
    if x.dim() < len(core) or tuple(x.shape[x.dim() - len(core):]) != core:
        x = x.expand(_broadcast(x.shape, core))
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, *tensors)):
        return _log_prob_graph(spec, x, mask, tensors)
    return _log_prob_op(spec, x, tensors, mask)
