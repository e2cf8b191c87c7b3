"""Compilation helpers shared by the RNG, the families and the drivers.

Every piece of scalar maths in lograd_fast is a *plain Python function* made
callable from compiled code with :func:`jitable`.  Such a function

* runs as ordinary Python (the CUDA simulator, ``NUMBA_DISABLE_JIT=1``, debugging),
* is compiled by ``numba.njit`` when a CPU driver calls it, and
* is compiled as a device function when a CUDA kernel calls it,

so each formula exists exactly once.  The mechanism is ``numba.extending.overload``
with ``target="generic"`` (checked to work for both the CPU target and numba-cuda,
including ``numba.cuda.compile_ptx``).

:func:`by_dtype` builds functions that pick a float32 or a float64 implementation
from the dtype of an array argument, both in Python and at compile time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba import types
from numba.extending import overload

__all__ = ["jitable", "by_dtype", "dispatch_on_record"]


def jitable(fn: Callable) -> Callable:
    """Make the plain Python function ``fn`` callable from njit and CUDA code."""

    @overload(fn, target="generic", strict=False)
    def _overload(*args):
        return fn

    return fn


def _is_float32_type(numba_type: Any) -> bool:
    dtype = getattr(numba_type, "dtype", numba_type)
    return dtype == types.float32


def by_dtype(f32: Callable, f64: Callable) -> Callable:
    """Return ``g(like, *args)`` that calls ``f32(*args)`` when ``like`` is float32.

    ``like`` is an array (its dtype decides) or a scalar.  The choice is made once
    at compile time in compiled code and at run time in Python.
    """

    def g(like, *args):
        dtype = getattr(like, "dtype", None)
        if dtype is None:
            dtype = np.asarray(like).dtype
        if dtype == np.float32:
            return f32(*args)
        return f64(*args)

    @overload(g, target="generic", strict=False)
    def _overload(like, *args):
        impl = f32 if _is_float32_type(like) else f64

        def call(like, *args):
            return impl(*args)

        return call

    g.__name__ = f64.__name__.removesuffix("_f64")
    g.__doc__ = f64.__doc__
    return g


def dispatch_on_record(name: str, registry: dict) -> Callable:
    """An entry point ``name(params, *args)`` resolved by the type of ``params``.

    ``registry`` maps a family's parameter-record class (a ``NamedTuple``) to an
    object with one attribute per operation.  Compiled code resolves the family at
    compile time (so Numba specialises per family); Python resolves it per call.
    """

    def entry(params, *args):
        return getattr(registry[type(params)], name)(params, *args)

    @overload(entry, target="generic", strict=False)
    def _overload(params, *args):
        ops = registry.get(getattr(params, "instance_class", None))
        if ops is None:
            return None
        return getattr(ops, name)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = f"Family-dispatched entry point ``{name}``."
    return entry
