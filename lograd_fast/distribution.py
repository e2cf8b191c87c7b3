"""Distribution base class: validation, broadcasting, allocation, backend choice.

A family subclass provides only its description (:class:`Family`) and its maths;
everything shape- and backend-related happens once, here.

Shapes
------
Each parameter has ``event_ndims`` trailing *atom* dims (0 for ``loc``, 1 for
``logits``).  The leading dims of all parameters broadcast to the *atom batch*
``full_shape``; ``B = prod(full_shape)`` atoms are drawn per sample.  A
distribution with ``event_ndims=k`` reinterprets the last ``k`` dims of
``full_shape`` as its event: ``batch_shape = full_shape[:-k]``, log-probs and
entropies are summed over those dims.

* ``sample(n)``           -> ``(n, *full_shape, *sample_event_shape)``
* ``log_prob(x)``         -> ``(n, *batch_shape)``
* ``score(x)[name]``      -> ``(n, *full_shape, *param_event_shape)``
* ``entropy()``           -> ``batch_shape``
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ._engine import cpu
from ._engine.threads import CHUNK, ONE_PART_CHUNKS

BACKENDS = ("cpu", "cuda", "numpy")
_MAX_SEED = 2**64 - 1
_MAX_STREAM = 2**32 - 1
_MAX_ATOMS = 2**62
_U64_ZERO = np.uint64(0)


def _no_event_dims(record: Any) -> tuple:
    """The default ``Family.sample_event_shape``: scalar atoms."""
    return ()


@dataclass(frozen=True)
class Family:
    """What the generic machinery needs to know about a family.

    ``params_cls``   NamedTuple of the kernel record: user parameters first (in
                     ``param_names`` order), then derived/constant fields.
    ``scores_cls``   NamedTuple with one field per user parameter.
    ``param_event_ndims``  per user parameter, its trailing atom dims.
    ``prepare``      ``(dict of broadcast, flattened arrays) -> dict`` of the extra
                     record fields (derived quantities, in float64); validates the
                     parameter domain and raises ``ValueError`` naming the argument.
    ``numpy_ops``    the vectorised maths (an object with ``sample``, ``log_prob``,
                     ``score``, ``sample_score``, ``entropy``, ``kl``).
    ``sample_event_shape``  ``(record) -> tuple``: trailing dims of one atom's sample.
    ``discrete``     samples are int64 category/count values.
    ``prepare_checks_finite``  ``prepare`` itself rejects NaN (and +inf) parameters
                     with the same ``ValueError`` as :func:`check_finite` (which is
                     then not run: one pass over the parameters less).
    ``prepare_copies``  parameters whose private copy ``prepare`` makes itself, in the
                     pass that checks them (it returns them among its fields); it
                     gets the caller's array, as a read-only view where the shape
                     allows, instead of a copy.
    ``reflect_odd``  families with a ``reflect1`` entry point: the parameters whose
                     score is odd under the reflection, ``s(reflect(x)) = -s(x)``
                     (``loc`` of a symmetric family); the others' scores are even.
                     The antithetic estimator uses it (the pair average of an odd
                     score is identically 0).
    """

    name: str
    params_cls: type
    scores_cls: type
    param_names: tuple[str, ...]
    param_event_ndims: tuple[int, ...]
    prepare: Callable[[dict], dict]
    numpy_ops: Any
    sample_event_shape: Callable[[Any], tuple] = _no_event_dims
    discrete: bool = False
    prepare_checks_finite: bool = False
    prepare_copies: tuple[str, ...] = ()
    reflect_odd: tuple[str, ...] = ()


# ----------------------------------------------------------------------------- helpers
def cuda_backend():
    """The CUDA driver module, or :class:`CudaUnavailableError` saying how to get one."""
    from ._engine.cuda_status import require

    require()
    from ._engine import cuda as _cuda

    return _cuda


def _requires_grad_error(name: str) -> TypeError:
    return TypeError(f"{name} is a tensor that requires grad: lograd_fast's numpy paths do not "
                     f"track gradients; pass {name}.detach() (a view, no copy) or use the "
                     "autograd adapter lograd_fast.torch")


def as_array(value: Any, name: str) -> np.ndarray:
    """``value`` as a host numpy array, without a copy wherever the input allows.

    numpy arrays pass through untouched.  Objects with ``__array__`` (CPU torch
    tensors, JAX arrays) and then ``__dlpack__`` (``np.from_dlpack``) are wrapped
    zero-copy, keeping their strides; nested sequences and scalars go through
    ``np.asarray``.  A tensor that ``requires_grad`` is a TypeError naming ``name``
    (detaching is the caller's decision); so is a GPU array
    (``__cuda_array_interface__``: moving it to the host is never implicit here)
    and anything numpy cannot view (e.g. bfloat16, another device).
    """
    if isinstance(value, np.ndarray):
        return value
    if getattr(value, "requires_grad", False) is True:
        raise _requires_grad_error(name)
    if hasattr(value, "__cuda_array_interface__"):
        raise TypeError(f"{name} is a GPU array ({type(value).__name__}) but this call needs "
                        "host memory: move it to the CPU or use backend='cuda'")
    try:
        if hasattr(value, "__array__") or not hasattr(value, "__dlpack__"):
            return np.asarray(value)
        return np.from_dlpack(value)
    except Exception as exc:  # ragged lists, unsupported dtypes or devices
        raise TypeError(f"{name} must be array-like with a numpy dtype on the CPU, got "
                        f"{type(value).__name__} ({exc})") from exc


def as_float_param(value: Any, name: str) -> np.ndarray:
    """``value`` as a float32/float64 array (ints promote to float64); TypeError otherwise.

    Accepts what :func:`as_array` accepts; GPU arrays (numba, CuPy, torch) are copied
    to the host, since parameters are copied into the distribution's record anyway.
    """
    if hasattr(value, "__cuda_array_interface__") and not isinstance(value, np.ndarray):
        if getattr(value, "requires_grad", False) is True:
            raise _requires_grad_error(name)
        if not hasattr(value, "copy_to_host"):
            value = cuda_backend().cuda.as_cuda_array(value)
        value = value.copy_to_host()
    arr = as_array(value, name)
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must have a real numeric dtype, got {arr.dtype}")
    if arr.dtype.kind in "iu":
        arr = arr.astype(np.float64)
    elif arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    elif arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)  # long double
    return arr


def common_dtype(arrays: list[np.ndarray], scalars: list[bool]) -> np.dtype:
    """float32 if every *array* parameter is float32 (Python scalars don't upcast).

    ``scalars[i]`` marks a *Python* ``int``/``float``: weakly typed, as in numpy's
    NEP 50.  A numpy scalar (``np.float32(0.5)``) carries its dtype and counts as an
    array of that dtype."""
    kinds = [a.dtype for a, s in zip(arrays, scalars) if not s]
    if kinds and all(k == np.float32 for k in kinds):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def check_finite(arr: np.ndarray, name: str, allow_neg_inf: bool = False) -> None:
    if np.isfinite(arr).all():  # the common case, one pass
        return
    if allow_neg_inf:
        bad = np.isnan(arr) | (arr == np.inf)
    else:
        bad = ~np.isfinite(arr)
    if bad.any():
        what = "NaN or +inf" if allow_neg_inf else "NaN or inf"
        where = tuple(int(i) for i in np.unravel_index(np.argmax(bad), arr.shape))
        raise ValueError(f"{name} contains {what} values (first at index {where})")


def check_n(n: Any) -> int | None:
    if n is None:
        return None
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be a positive int or None, got {n!r}")
    n = int(n)
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    return n


def _has_nan(flat: np.ndarray) -> bool:
    """Whether the 1-D float array holds a NaN: its ``min`` (NaN propagates), one pass
    without a temporary (1.16 against 1.35 us for ``np.isnan(x).any()`` on 24 values,
    99 against 146 us for 2**20; not a BLAS ``x . x``: it warns on overflow and its
    threads spin after a large call)."""
    return flat.shape[0] > 0 and math.isnan(flat.min())


def check_seed(seed: Any, stream: Any) -> tuple:
    """``(seed_lo, seed_hi, stream)`` as uint64, after checking both are valid ints."""
    if type(seed) is not int or type(stream) is not int:  # fast path: plain ints
        for name, value in (("seed", seed), ("stream", stream)):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{name} must be a non-negative int, got {value!r}")
        seed, stream = int(seed), int(stream)
    if not 0 <= seed <= _MAX_SEED:
        raise ValueError(f"seed must be in [0, {_MAX_SEED}], got {seed}")
    if not 0 <= stream <= _MAX_STREAM:
        raise ValueError(f"stream must be in [0, {_MAX_STREAM}], got {stream}")
    if seed <= 0xFFFFFFFF and stream == 0:  # the common call: two shared zeros
        return (np.uint64(seed), _U64_ZERO, _U64_ZERO)
    return (np.uint64(seed & 0xFFFFFFFF), np.uint64(seed >> 32), np.uint64(stream))


def is_device_array(obj: Any) -> bool:
    """A GPU array: ``__cuda_array_interface__`` (numba, CuPy, torch), or the CUDA
    simulator's stand-in for one (``__cuda_ndarray__``, host memory, no interface)."""
    return not isinstance(obj, np.ndarray) and (
        hasattr(obj, "__cuda_array_interface__") or hasattr(obj, "__cuda_ndarray__"))


def check_out(out: Any, shape: tuple, dtype: np.dtype, name: str, device: bool = False) -> None:
    """Check a caller's output buffer: exactly a ``numpy.ndarray`` (or, when
    ``device``, a CUDA array) of ``shape`` and ``dtype``, writeable and C-contiguous.

    Subclasses are refused: the drivers write through ``reshape`` views, and a
    subclass may change what ``reshape`` returns (``np.matrix`` stays 2-D, so a
    kernel wrote past its end)."""
    if type(out) is not np.ndarray and not (device and is_device_array(out)):
        what = "a CUDA array or " if device else ""
        raise TypeError(f"{name} must be {what}a numpy.ndarray (not a subclass), got "
                        f"{type(out).__module__}.{type(out).__name__}")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(out.shape)}, expected {tuple(shape)}")
    if np.dtype(out.dtype) != np.dtype(dtype):
        raise ValueError(f"{name} has dtype {out.dtype}, expected {np.dtype(dtype)}")
    if isinstance(out, np.ndarray) and not (out.flags.c_contiguous and out.flags.writeable):
        raise ValueError(f"{name} must be a writeable C-contiguous array")


def _extent(arr: Any) -> tuple[bool, int, int]:
    """``(on_device, first byte, end byte)`` of a C-contiguous host or CUDA array."""
    if isinstance(arr, np.ndarray):
        return False, arr.ctypes.data, arr.ctypes.data + arr.nbytes
    if not hasattr(arr, "__cuda_array_interface__"):  # the simulator's: a host array inside
        host = np.asarray(arr)
        return True, host.ctypes.data, host.ctypes.data + host.nbytes
    ptr = int(arr.__cuda_array_interface__["data"][0])
    nbytes = math.prod(arr.shape) * np.dtype(arr.dtype).itemsize
    return True, ptr, ptr + nbytes


def check_no_overlap(arrays: list[tuple[str, Any]]) -> None:
    """ValueError if two of the named output buffers share memory.

    The kernels write every output in one pass; aliased buffers (``out=(x, x, s)``,
    two score keys on one array, overlapping views) would silently mix results.
    The buffers are C-contiguous (see :func:`check_out`), so two of them share
    memory exactly when their byte ranges intersect."""
    spans = [(name, _extent(a)) for name, a in arrays if math.prod(a.shape) > 0]
    for i, (name_a, (dev_a, lo_a, hi_a)) in enumerate(spans):
        for name_b, (dev_b, lo_b, hi_b) in spans[i + 1:]:
            if dev_a == dev_b and lo_a < hi_b and lo_b < hi_a:
                raise ValueError(f"{name_a} and {name_b} share memory: every output needs a "
                                 "buffer of its own")


def numpy_op(fn: Any, *args: Any) -> Any:
    """Call a family's numpy-backend op without floating-point warnings: edge arithmetic
    (``0 * -inf`` at a vanishing Poisson rate, an underflowing Dirichlet term) is handled
    by the maths itself, as in the compiled backends, which never warn."""
    with np.errstate(all="ignore"):
        return fn(*args)


def _memory_bytes() -> int:
    """This machine's physical memory (bytes); 2**63 where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 2**63


def _bytes_per_draw(d: Any, scores: bool) -> int:
    """Bytes of one draw's outputs: the sample, and with ``scores`` its log-prob and scores."""
    size = d._B * math.prod(d.sample_event_shape) * d._sample_dtype.itemsize
    if scores:
        item = d.dtype.itemsize
        size += math.prod(d.batch_shape) * item + sum(
            d._B * math.prod(tail) * item for tail in d._param_tail.values())
    return size


# ----------------------------------------------------------------------------- layouts
class _Layout(NamedTuple):
    """Everything :meth:`Distribution._setup` derives from the parameters' shapes and
    dtypes alone (not their values)."""

    dtype: np.dtype
    event_ndims: int
    full_shape: tuple
    batch_shape: tuple
    B: int
    E: int
    tails: dict  # name -> trailing (event) dims of each parameter and extra field
    shapes: dict  # name -> (full_shape + tail, (B,) + tail): broadcast and flat shapes
    convert: bool  # a parameter's dtype is not ``dtype`` (mixed float32/float64)
    attrs: dict  # the instance attributes that follow from the layout (shared, read-only)


# RL code builds a distribution of the same shapes every step: the shape checks and
# broadcasting of the first construction are kept, keyed by the exact shapes and
# dtypes, so the next ones skip them (value checks -- finiteness, domains -- always run).
_LAYOUTS: dict = {}
_MAX_LAYOUTS = 256
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_INT64 = np.dtype(np.int64)
_ATOM0 = (np.int64(0),)  # the first atom of a call (the last entry of a driver's key)


def _layout_key(fam: Family, params: dict, extra: dict, event_ndims: Any,
                backend: Any) -> tuple | None:
    """The :data:`_LAYOUTS` key of a construction, or None when an input is anything
    but a plain float32/float64 ``ndarray`` (lists, scalars, tensors: the full path)."""
    if type(event_ndims) is not int or type(backend) is not str:
        return None
    key = (fam.name, event_ndims, backend)
    for name in fam.param_names:
        v = params[name]
        if type(v) is not np.ndarray or v.dtype not in _FLOATS:
            return None
        key += (v.shape, v.dtype)
    for name, v in extra.items():
        if type(v) is not np.ndarray:
            return None
        key += (name, v.shape, v.dtype)
    return key


def _layout(fam: Family, params: dict, extra: dict, event_ndims: Any,
            backend: Any) -> tuple[list, _Layout]:
    """Check and convert the parameters: ``(arrays, layout)``; ValueError/TypeError."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if isinstance(event_ndims, bool) or not isinstance(event_ndims, numbers.Integral) \
            or event_ndims < 0:
        raise ValueError(f"event_ndims must be a non-negative int, got {event_ndims!r}")
    arrays = [as_float_param(params[k], k) for k in fam.param_names]
    scalars = [isinstance(params[k], (int, float)) and not isinstance(params[k], np.generic)
               for k in fam.param_names]
    dtype = common_dtype(arrays, scalars)
    convert = any(a.dtype != dtype for a in arrays)
    arrays = [a.astype(dtype, copy=False) for a in arrays]
    ends = dict(zip(fam.param_names, fam.param_event_ndims))
    # broadcast the leading (atom batch) dims of every parameter and extra field
    lead, tails = {}, {}
    for name, arr in list(zip(fam.param_names, arrays)) + list(extra.items()):
        k = ends.get(name, 1 if name in extra else 0)
        if arr.ndim < k:
            raise ValueError(f"{name} must have at least {k} dimension(s), "
                             f"got shape {arr.shape}")
        lead[name] = arr.shape[: arr.ndim - k]
        tails[name] = arr.shape[arr.ndim - k:]
    shapes = list(lead.values())
    try:
        full_shape = shapes[0] if shapes.count(shapes[0]) == len(shapes) \
            else np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError("parameter shapes do not broadcast: "
                         + ", ".join(f"{k}{tuple(v)}" for k, v in lead.items())) from None
    if event_ndims > len(full_shape):
        raise ValueError(f"event_ndims={event_ndims} exceeds the parameters' "
                         f"{len(full_shape)} batch dims {full_shape}")
    full_shape = tuple(int(d) for d in full_shape)
    event_ndims = int(event_ndims)
    batch_shape = full_shape[: len(full_shape) - event_ndims]
    B = math.prod(full_shape)
    E = math.prod(full_shape[len(batch_shape):])
    shapes = {name: (full_shape + tail, (B,) + tail) for name, tail in tails.items()}
    attrs = {"dtype": dtype, "backend": backend, "event_ndims": event_ndims,
             "full_shape": full_shape, "batch_shape": batch_shape, "_B": B, "_E": E,
             "_param_tail": {name: tails[name] for name in fam.param_names},
             "_sample_dtype": _INT64 if fam.discrete else dtype}
    if fam.sample_event_shape is _no_event_dims:
        attrs.update(sample_event_shape=(), event_shape=full_shape[len(batch_shape):])
    return arrays, _Layout(dtype, event_ndims, full_shape, batch_shape, B, E, tails, shapes,
                           convert, attrs)


def log_prob_and_score_flat(fam: Family, arrays: list, x: np.ndarray,
                            E: int = 1) -> np.ndarray:
    """``log_prob(x)`` and the scores for the adapters' lean path, without a
    distribution object: ``arrays`` are the family's parameters as flat C-contiguous
    float arrays of ``x``'s dtype and length (one atom each: no sample axis, no
    broadcast, scalar parameters), ``x`` flat, ``E`` atoms per item.  Checks as a
    construction and :meth:`Distribution.log_prob` make them (the family's ``prepare``,
    ``x`` not NaN); for families without checks of ``x`` beyond those (the caller asks:
    :func:`lean_eligible`).  Returns one block ``(1 + n_params, n)``: row 0 holds the
    ``n // E`` log-probs (first), the other rows the scores.

    At an RL update's size (64 x 6) a construction costs ~8 us before the kernel, this
    path ~4 (the layout checks, the private copies and the object are what it skips);
    for families with a compiled ``prepare1`` (Normal, TanhNormal) it is one compiled
    call.  One output block: the torch adapter wraps it once (``torch.from_numpy``)."""
    n = x.shape[0]
    block = np.empty((1 + len(arrays), n), x.dtype)
    lp, scores = block[0, :n // E], block[1:]
    if n < _ONE_CALL_ATOMS:
        run = cpu.checked_log_prob_score(fam.params_cls, fam.scores_cls, x.dtype)
        if run is not None:  # checks, derived fields and kernel in one call; a bad
            # value falls through to the general path below, which raises its error
            fields = np.empty((len(fam.params_cls._fields) - len(arrays), n))
            if not run((*arrays, *fields), x, lp, tuple(scores), E):
                return block
    rec = _record(fam, {name: read_only(arr) for name, arr in zip(fam.param_names, arrays)})
    if _has_nan(x):
        raise ValueError("x contains NaN")
    cpu.log_prob_score(rec, x, lp, fam.scores_cls(*scores), n, E)
    return block


# the one-call path runs in the calling thread: larger calls split between threads
_ONE_CALL_ATOMS = ONE_PART_CHUNKS * CHUNK


def read_only(a: np.ndarray) -> np.ndarray:
    """``a`` itself if it is read-only, else a read-only view of it: records hold
    read-only arrays, so a family has one compiled type per dtype (one kernel, not two)."""
    if not a.flags.writeable:
        return a
    a = a.view()
    a.flags.writeable = False
    return a


def _record(fam: Family, flat: dict):
    """The family's parameter record from its flat, read-only parameter arrays: the
    value checks (``prepare``'s, or finiteness), the derived fields (read-only too)."""
    if not fam.prepare_checks_finite:
        for name in fam.param_names:
            check_finite(flat[name], name, allow_neg_inf=name == "logits")
    derived = fam.prepare(flat)
    for arr in derived.values():
        arr.setflags(write=False)
    flat.update(derived)
    return fam.params_cls(**flat)


def lean_eligible(cls: type) -> bool:
    """Can :func:`log_prob_and_score_flat` serve the family of ``cls``?  Scalar
    parameters, one float dtype, no checks of ``x`` but NaN (no support or class-index
    checks), no extra fields, samples of the parameters' dtype."""
    fam = cls.family
    return (not fam.discrete and not fam.prepare_copies
            and all(k == 0 for k in fam.param_event_ndims)
            and cls._check_support is Distribution._check_support
            and cls._check_score_support is Distribution._check_score_support
            and cls._log_prob_and_score is Distribution._log_prob_and_score
            and fam.sample_event_shape is _no_event_dims)


# ----------------------------------------------------------------------------- the class
class Distribution:
    """Base class of every lograd_fast distribution.

    Subclasses set ``family`` and call :meth:`_setup` from ``__init__``.
    """

    family: Family
    _device_record = None  # the record in GPU memory (backend="cuda")

    # -- construction -------------------------------------------------------------
    def _setup(self, params: dict, extra: dict | None = None, *, event_ndims: int = 0,
               backend: str = "cpu") -> None:
        fam = self.family
        names = fam.param_names
        extra = extra or {}
        key = _layout_key(fam, params, extra, event_ndims, backend)
        layout = _LAYOUTS.get(key)
        if layout is None:
            arrays, layout = _layout(fam, params, extra, event_ndims, backend)
            if key is not None:
                if len(_LAYOUTS) >= _MAX_LAYOUTS:
                    _LAYOUTS.clear()
                _LAYOUTS[key] = layout
        else:  # plain float arrays of a known layout: already checked once
            arrays = [params[k] for k in names]
            if layout.convert:
                arrays = [v.astype(layout.dtype) for v in arrays]
        self._param_arrays = arrays
        # what depends on the shapes alone, set at once (the common RL step: ~1 us)
        self.__dict__.update(layout.attrs)
        flat = {}
        for name, arr in zip(names + tuple(extra), arrays + list(extra.values())):
            shape, flat_shape = layout.shapes[name]
            if arr.shape == shape:
                if name not in fam.prepare_copies:
                    arr = np.array(arr, order="C")  # own copy
                    if shape != flat_shape:
                        arr = arr.reshape(flat_shape)
                else:  # a view (made read-only below), never the caller's array itself
                    arr = arr.reshape(flat_shape) if shape != flat_shape else arr.view()
            else:  # broadcast by the assignment (np.broadcast_to costs ~2 us)
                own = np.empty(flat_shape, arr.dtype)
                own.reshape(shape)[...] = arr
                arr = own
            # read-only: the record is immutable, and every record of a family then
            # has one Numba type per dtype (one compiled kernel, not two)
            arr.setflags(write=False)
            flat[name] = arr
        self._record = rec = _record(fam, flat)
        if fam.sample_event_shape is not _no_event_dims:  # else set with the layout
            ses = tuple(fam.sample_event_shape(rec))
            self.sample_event_shape = ses
            self.event_shape = self.full_shape[len(self.batch_shape):] + ses
        if backend == "cuda":
            _cuda = cuda_backend()
            self._device_record = _cuda.to_device_record(self._record)

    # -- public properties --------------------------------------------------------
    @property
    def _user_params(self) -> dict[str, np.ndarray]:
        return dict(zip(self.family.param_names, self._param_arrays))

    @property
    def params(self) -> dict[str, np.ndarray]:
        """The unconstrained parameters as passed (converted to arrays of ``dtype``)."""
        return self._user_params

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(batch_shape={self.batch_shape}, "
                f"event_shape={self.event_shape}, dtype={self.dtype.name}, "
                f"backend={self.backend!r})")

    # -- shapes --------------------------------------------------------------------
    def _x_shape(self, n: int | None) -> tuple:
        lead = () if n is None else (n,)
        return lead + self.full_shape + self.sample_event_shape

    def _lp_shape(self, n: int | None) -> tuple:
        return (() if n is None else (n,)) + self.batch_shape

    def _score_shapes(self, n: int | None) -> dict:
        lead = () if n is None else (n,)
        return {k: lead + self.full_shape + tail for k, tail in self._param_tail.items()}

    def _alloc(self, shape: tuple, dtype: np.dtype):
        if self.backend == "cuda":
            return cuda_backend().empty(shape, dtype)
        return np.empty(shape, dtype)

    def _outputs(self, n: int | None, out: Any, want_x: bool, want_lp: bool, want_s: bool,
                 x: Any = None):
        """Allocate (or check the caller's ``out``) the arrays of one call; ``x``: the
        call's input, which no ``out`` buffer may share memory with."""
        shapes = []
        if want_x:
            shapes.append(("x", self._x_shape(n), self._sample_dtype))
        if want_lp:
            shapes.append(("log_prob", self._lp_shape(n), self.dtype))
        if want_s:
            shapes.append(("score", self._score_shapes(n), self.dtype))
        if out is None and self.backend != "cuda":  # the common case, kept lean
            return [{k: np.empty(v, dtype) for k, v in shape.items()} if what == "score"
                    else np.empty(shape, dtype) for what, shape, dtype in shapes]
        if out is None:
            given = [None] * len(shapes)
        elif len(shapes) == 1:
            given = [out]
        else:
            if not isinstance(out, (tuple, list)) or len(out) != len(shapes):
                raise TypeError(f"out must be a tuple of {len(shapes)} items "
                                f"({', '.join(s[0] for s in shapes)}) like the return value")
            given = list(out)
        result, given_arrays = [], []
        device = self.backend == "cuda"
        for (what, shape, dtype), arr in zip(shapes, given):
            if what == "score":
                if arr is None:
                    arr = {k: self._alloc(v, dtype) for k, v in shape.items()}
                else:
                    if not isinstance(arr, dict) or set(arr) != set(shape):
                        raise TypeError("out for the score must be a dict with keys "
                                        f"{sorted(shape)}")
                    for k, v in shape.items():
                        check_out(arr[k], v, dtype, f"out[{k!r}]", device)
                        given_arrays.append((f"out[{k!r}]", arr[k]))
            elif arr is None:
                arr = self._alloc(shape, dtype)
            else:
                check_out(arr, shape, dtype, f"out ({what})", device)
                given_arrays.append((f"out ({what})", arr))
            result.append(arr)
        if len(given_arrays) > 1:
            check_no_overlap(given_arrays)
        if isinstance(x, np.ndarray):
            # the kernels read x while they write out: in place, a thread (or a group
            # of event atoms) would read values another one already overwrote
            for name, arr in given_arrays:
                if isinstance(arr, np.ndarray) and np.may_share_memory(arr, x):
                    raise ValueError(f"{name} shares memory with x: the outputs need buffers "
                                     "of their own")
        return result

    def _fresh(self, n: int | None, n_atoms: int, want_x: bool, want_s: bool):
        """New outputs of a CPU call without ``out=`` (the common case, kept lean):
        ``(x, flat x, score dict, flat score record)``; the user's arrays are views of
        the flat ones the kernels write."""
        x = xf = s = sf = None
        lead = () if n is None else (n,)
        # a 1-D batch drawn once (an RL step) needs no reshape: the flat array is it
        same = len(self.full_shape) == 1 and n is None
        if want_x:
            xf = np.empty((n_atoms,) + self.sample_event_shape, self._sample_dtype)
            x = xf if same else xf.reshape(lead + self.full_shape + self.sample_event_shape)
        if want_s:
            s, flat = {}, []
            for name, tail in self._param_tail.items():
                a = np.empty((n_atoms,) + tail, self.dtype)
                flat.append(a)
                s[name] = a if same else a.reshape(lead + self.full_shape + tail)
            sf = self.family.scores_cls(*flat)
        return x, xf, s, sf

    def _flat_scores(self, s: dict, n_atoms: int):
        return self.family.scores_cls(**{
            k: s[k].reshape((n_atoms,) + self._param_tail[k]) for k in self.family.param_names})

    def _host_record(self, n: int | None = None):
        """The record the numpy backend reads for a call of ``n`` draws (a family may
        keep derived arrays for many draws per element: Categorical's tables)."""
        return self._record

    def _kernel_record(self, n: int | None = None):
        """The record the CPU or CUDA drivers read for a call of ``n`` draws."""
        return self._device_record if self.backend == "cuda" else self._host_record(n)

    def _driver(self):
        return cuda_backend() if self.backend == "cuda" else cpu

    # -- validation of samples passed in --------------------------------------------
    # a family whose score check (``_check_score_support``) includes the support check
    # (Categorical: a masked class is also a valid index) runs only the former where
    # both are due (one compiled pass over x less)
    _score_check_covers_support = False

    def _check_x(self, x: Any, support: bool = True) -> tuple[Any, int | None]:
        """Return ``x`` as a contiguous array of the sample dtype and its ``n``;
        ``support``: check it with ``_check_support`` too."""
        if self.backend == "cuda" and hasattr(x, "__cuda_array_interface__") \
                and not isinstance(x, np.ndarray):
            return cuda_backend().check_device_x(self, x)
        foreign = not isinstance(x, (np.ndarray, np.generic, numbers.Number, list, tuple))
        x = as_array(x, "x")
        # booleans are outcomes 0/1 of a discrete family (Bernoulli's natural type)
        kinds = "biuf" if self.family.discrete else "iuf"
        if x.dtype.kind not in kinds:
            raise TypeError(f"x must have a real numeric dtype, got {x.dtype}")
        # A tensor (torch, JAX, ...) is used in place; converting its dtype would be a
        # silent copy and usually a bug, so only exact dtypes (or integer class
        # indices of a discrete family) are accepted.
        if foreign and x.dtype != self._sample_dtype and not (
                self.family.discrete and x.dtype.kind in "biu"):
            raise TypeError(f"x has dtype {x.dtype} but this distribution's samples are "
                            f"{self._sample_dtype}: convert x explicitly")
        core = self.full_shape + self.sample_event_shape
        k = len(core)
        if x.ndim < k or x.shape[x.ndim - k:] != core:
            try:
                target = np.broadcast_shapes(x.shape, core)
                if target[len(target) - k:] != core:  # x would grow the batch/event dims
                    raise ValueError
            except ValueError:
                raise ValueError(f"x has shape {x.shape}; expected (..., *{core}) "
                                 f"(sample dims then batch and event dims {core})") from None
            x = np.broadcast_to(x, target)
        lead = x.shape[: x.ndim - k]
        if len(lead) > 1:
            raise ValueError(f"x has shape {x.shape}: at most one leading sample axis is "
                             f"supported before the batch and event dims {core}")
        n = lead[0] if lead else None
        if self.family.discrete:
            if x.dtype.kind == "f":
                if not np.all(np.isfinite(x)) or np.any(x != np.floor(x)):
                    raise ValueError("x must hold integer values for a discrete distribution")
                big = np.abs(x) >= 2.0**63  # would wrap in the int64 cast
                if big.any():
                    raise ValueError(f"x holds values outside the int64 range (e.g. "
                                     f"{x[big].flat[0]!r})")
            x = np.ascontiguousarray(x.astype(np.int64, copy=False))
        else:
            x = np.ascontiguousarray(x.astype(self.dtype, copy=False))
            if _has_nan(x.reshape(-1)):
                raise ValueError("x contains NaN")
        if support:
            self._check_support(x)
        return x, n

    def _check_support(self, x: np.ndarray) -> None:
        """Families override to reject values that are not valid indices (ValueError)."""

    def _check_score_support(self, x: np.ndarray) -> None:
        """Families override to reject points where the score is undefined (ValueError)."""

    def _check_atoms(self, n: int | None, out: Any = None, scores: bool = False) -> int:
        """``n_atoms`` of a draw call; ValueError naming ``n`` when it is more than
        2**62 atoms or, without ``out``, when the outputs would not fit in memory."""
        n_atoms = (n or 1) * self._B
        if out is None and n is not None and n_atoms > 2**24:
            need = n * _bytes_per_draw(self, scores)
            have = _memory_bytes()
            if need > have:
                raise ValueError(f"n={n} needs {need / 2**30:.4g} GiB for the outputs "
                                 f"({need} bytes), more than this machine's "
                                 f"{have / 2**30:.4g} GiB of memory: draw in batches, "
                                 f"or stream with lf.score_function(d, f, n)")
        if n_atoms > _MAX_ATOMS:
            raise ValueError(f"n={n} asks for {n_atoms} draws, more than 2**62")
        return n_atoms

    # -- the operations ---------------------------------------------------------------
    def sample(self, n: int | None = None, seed: int = 0, *, stream: int = 0, out: Any = None):
        """Draw ``n`` samples: shape ``(n, *batch_shape, *event_shape)`` (no ``n`` axis if None).

        ``seed`` (0 <= seed < 2**64) and ``stream`` (0 <= stream < 2**32) select an
        independent Philox stream; the result is identical on every backend and
        for any number of threads.
        """
        n = check_n(n)
        key = check_seed(seed, stream) + _ATOM0
        n_atoms = self._check_atoms(n, out)
        if out is None and self.backend == "cpu":
            x, xf, _, _ = self._fresh(n, n_atoms, True, False)
            cpu.sample(self._kernel_record(n), key, xf, self._B)
            return x
        (x,) = self._outputs(n, out, True, False, False)
        if self.backend == "numpy":
            x[...] = numpy_op(self.family.numpy_ops.sample, self._host_record(n), key,
                              n_atoms, self._B, self.dtype).reshape(x.shape)
            return x
        self._driver().sample(self._kernel_record(n), key, self._flat_x(x, n_atoms), self._B)
        return x

    def log_prob(self, x: Any, *, out: Any = None):
        """Log density (or mass) of ``x``; shape ``(n, *batch_shape)``.

        ``x`` has shape ``(n, *batch_shape, *event_shape)`` or ``(*batch_shape,
        *event_shape)``, or broadcasts to it.
        """
        x, n = self._check_x(x)
        (lp,) = self._outputs(n, out, False, True, False, x)
        n_atoms = (n or 1) * self._B
        if n_atoms == 0:  # no atoms (a zero-size batch): log-probs are empty sums
            lp[...] = 0.0
            return lp
        if self.backend == "numpy":
            atoms = numpy_op(self.family.numpy_ops.log_prob, self._host_record(n),
                             self._flat_x(x, n_atoms), self._B)
            lp[...] = atoms.reshape(-1, self._E).sum(axis=1).reshape(lp.shape)
            return lp
        self._driver().log_prob(self._kernel_record(n), self._flat_x(x, n_atoms),
                                lp.reshape(n_atoms // self._E), self._B, self._E)
        return lp

    def _log_prob_and_score(self, x: Any) -> tuple:
        """``(log_prob(x), score(x))`` with one validation of ``x`` (the adapters' call
        for a backward pass); CPU backend, fresh outputs."""
        if self.backend != "cpu":
            return self.log_prob(x), self.score(x)
        x, n = self._check_x(x, support=not self._score_check_covers_support)
        self._check_score_support(x)
        n_atoms = (n or 1) * self._B
        lp = np.empty((() if n is None else (n,)) + self.batch_shape, self.dtype)
        _, _, s, sf = self._fresh(n, n_atoms, False, True)
        cpu.log_prob_score(self._kernel_record(n), self._flat_x(x, n_atoms),
                           lp.reshape(n_atoms // self._E), sf, self._B, self._E)
        return lp, s

    def _flat_x(self, x, n_atoms):
        return x.reshape((n_atoms,) + self.sample_event_shape)

    def score(self, x: Any, *, out: dict | None = None) -> dict:
        """Closed-form ``d log p(x) / d param`` for every unconstrained parameter.

        Returns ``{name: array}`` with shapes ``(n, *full_shape, *param_event_shape)``:
        the derivative of the log-prob of each sample w.r.t. the broadcast
        parameter (sum over broadcast axes to get the derivative w.r.t. the
        parameter as passed).
        """
        x, n = self._check_x(x, support=not self._score_check_covers_support)
        if isinstance(x, np.ndarray):  # else a device array (shape and dtype checked only)
            self._check_score_support(x)
        (s,) = self._outputs(n, out, False, False, True, x)
        n_atoms = (n or 1) * self._B
        if self.backend == "numpy":
            got = numpy_op(self.family.numpy_ops.score, self._host_record(n),
                           self._flat_x(x, n_atoms), self._B)
            for k in s:
                s[k][...] = got[k].reshape(s[k].shape)
            return s
        self._driver().score(self._kernel_record(n), self._flat_x(x, n_atoms),
                             self._flat_scores(s, n_atoms), self._B)
        return s

    def sample_and_score(self, n: int | None = None, seed: int = 0, *, stream: int = 0,
                         out: Any = None):
        """Fused draw: ``(x, log_prob(x), score(x))`` in one pass over memory.

        ``out`` may be a tuple ``(x, log_prob, {name: score})`` of arrays to fill.
        The samples are exactly those of :meth:`sample` with the same seed.
        """
        if n is None and out is None and self.backend == "cpu" and self._B:
            # the RL step: one draw per item, fresh outputs, few layers
            key = check_seed(seed, stream) + _ATOM0
            x, xf, s, sf = self._fresh(None, self._B, True, True)
            lp = np.empty(self.batch_shape, self.dtype)
            cpu.sample_score_step(self._kernel_record(None), key, xf, sf,
                                  lp if lp.ndim == 1 else lp.reshape(-1), self._B, self._E)
            return x, lp, s
        n = check_n(n)
        key = check_seed(seed, stream) + _ATOM0
        n_atoms = self._check_atoms(n, out, scores=True)
        if out is None and self.backend == "cpu" and n_atoms:  # outputs only
            x, xf, s, sf = self._fresh(n, n_atoms, True, True)
            lp = np.empty((() if n is None else (n,)) + self.batch_shape, self.dtype)
            cpu.sample_score(self._kernel_record(n), key, xf, sf,
                             lp.reshape(n_atoms // self._E), self._B, self._E)
            return x, lp, s
        x, lp, s = self._outputs(n, out, True, True, True)
        if n_atoms == 0:  # no atoms (a zero-size batch): log-probs are empty sums
            lp[...] = 0.0
            return x, lp, s
        if self.backend == "numpy":
            xs, lps, ss = numpy_op(self.family.numpy_ops.sample_score, self._host_record(n),
                                   key, n_atoms, self._B, self.dtype)
            x[...] = xs.reshape(x.shape)
            lp[...] = lps.reshape(-1, self._E).sum(axis=1).reshape(lp.shape)
            for k in s:
                s[k][...] = ss[k].reshape(s[k].shape)
            return x, lp, s
        self._driver().sample_score(self._kernel_record(n), key, self._flat_x(x, n_atoms),
                                    self._flat_scores(s, n_atoms),
                                    lp.reshape(n_atoms // self._E), self._B, self._E)
        return x, lp, s

    def entropy(self) -> np.ndarray:
        """Differential entropy (or Shannon entropy), summed over event dims: ``batch_shape``."""
        out = np.zeros(self.batch_shape, np.float64)
        if self._B == 0:  # a zero-size batch: empty sums
            pass
        elif self.backend == "numpy":
            ent = numpy_op(self.family.numpy_ops.entropy, self._host_record())
            out[...] = ent.reshape(-1, self._E).sum(axis=1).reshape(out.shape)
        else:
            cpu.entropy(self._host_record(), out.reshape(-1), self._E)
        return out.astype(self.dtype)

    def kl(self, other: Distribution) -> np.ndarray:
        """KL(self || other), summed over event dims; shapes must broadcast equally."""
        if type(other) is not type(self):
            raise TypeError(f"kl needs another {type(self).__name__}, got {type(other).__name__}")
        if other.full_shape != self.full_shape or other.event_ndims != self.event_ndims:
            raise ValueError(f"kl: shapes differ ({self.full_shape}, event_ndims="
                             f"{self.event_ndims}) vs ({other.full_shape}, event_ndims="
                             f"{other.event_ndims})")
        if other.sample_event_shape != self.sample_event_shape:
            raise ValueError(f"kl: event shapes differ {self.sample_event_shape} vs "
                             f"{other.sample_event_shape}")
        if other.dtype != self.dtype:
            raise ValueError(f"kl: dtypes differ ({self.dtype} vs {other.dtype}): build both "
                             "distributions with the same dtype")
        q = other._record
        p = self._record
        # every field of the record, not only the batch shapes: a Categorical's K (the
        # logits' last dim) is in no shape compared above, and the kernel reads q
        # with p's sizes
        for name, a, b in zip(type(p)._fields, p, q):
            if a.shape != b.shape or a.dtype != b.dtype:
                raise ValueError(f"kl: {name} has shape {a.shape} and dtype {a.dtype} here but "
                                 f"shape {b.shape} and dtype {b.dtype} in other")
        out = np.zeros(self.batch_shape, np.float64)
        if self._B == 0:  # a zero-size batch: empty sums
            pass
        elif self.backend == "numpy":
            kl = numpy_op(self.family.numpy_ops.kl, p, q)
            out[...] = kl.reshape(-1, self._E).sum(axis=1).reshape(out.shape)
        else:
            cpu.kl(p, q, out.reshape(-1), self._E)
        return out.astype(self.dtype)
