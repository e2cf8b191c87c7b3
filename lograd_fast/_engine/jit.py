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

import inspect
import types as pytypes
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit, types
from numba.core.target_extension import current_target
from numba.extending import overload

# Installs the package-hash cache locator before any module of the package decorates a
# kernel with ``cache=True``: Numba picks a function's locator when it is decorated, and
# every module that does (``rng.py`` first) imports this one.
from . import cache as _cache  # noqa: F401

__all__ = ["jitable", "jitable_hot", "jitable_flat", "jitable_outline", "cpu_inline",
           "by_dtype", "dispatch_on_record"]

# Numba compiles every overload's implementation stand-alone once per process (its
# template checks that it compiles, even when it is then inlined), but only compiled
# code ever calls it: no CPython or cfunc wrapper to generate and optimise for it.
_JIT_OPTIONS = {"error_model": "numpy", "no_cpython_wrapper": True, "no_cfunc_wrapper": True}


def jitable(fn: Callable, compiled: Callable | None = None) -> Callable:
    """Make the plain Python function ``fn`` callable from njit and CUDA code.

    ``compiled``, when given, is what compiled code runs instead of ``fn``'s body (the
    same meaning in a form Numba takes, e.g. a select where Python needs
    ``numpy.where``)."""
    impl = fn if compiled is None else compiled

    @overload(fn, target="generic", strict=False, jit_options=_JIT_OPTIONS)
    def _overload(*args):
        return impl

    return _mark(fn, compiled)


def jitable_hot(fn: Callable, compiled: Callable | None = None) -> Callable:
    """:func:`jitable` for tiny functions on the hot path of the drivers (uniforms,
    Philox blocks): on the CPU they are inlined at the IR level at every call site.
    (Numba does not inline one compiled function into another at the LLVM level;
    measured: a serial loop calling Philox through a call boundary never vectorises.)
    Keep them leaves: an overload marked for inlining is typed again at every call
    resolution, with everything it calls (see :func:`cpu_inline` for deep code)."""
    n = _arity(fn)
    impl = fn if compiled is None else compiled
    _register(fn, lambda: _with_arity("def fn(ARGS):\n    return impl\n", n, {"impl": impl}))
    return _mark(fn, compiled)


def jitable_flat(fn: Callable) -> Callable:
    """:func:`jitable` for scalar functions that call several others (a Box-Muller draw
    calls ``log``, ``sin``, ``cos``, ...): on the CPU the compiled function is one flat
    body (its :func:`cpu_inline` copy: the calls inside are inlined before typing, so it
    compiles fast and runs without a call per helper); elsewhere (CUDA) an ordinary
    device function.  The function itself is an ordinary call at its call sites."""
    n = _arity(fn)

    def typer(*args):
        if str(current_target()) == "cpu":
            return _with_arity("def fn(ARGS):\n    return impl(ARGS)\n", n,
                               {"impl": cpu_inline(fn)})
        return fn

    overload(fn, target="generic", strict=False, jit_options=_JIT_OPTIONS)(
        _with_arity("def fn(ARGS):\n    return typer(ARGS)\n", n, {"typer": typer}))
    return _mark(fn, None)


def jitable_outline(fn: Callable, cpu_call: Callable) -> Callable:
    """:func:`jitable` for a deep, branchy function that many drivers call (the gamma
    rejection sampler): on the CPU its call sites run ``cpu_call`` instead, a thin
    function of the same signature that calls a module-level ``njit(cache=True)``
    kernel compiled from ``fn`` (:func:`cpu_inline` with ``outline=False``).  That
    kernel is typed and compiled once per signature and loaded from the disk cache by
    every later process, instead of being typed again inside every driver that inlines
    it; elsewhere (CUDA, Python) ``fn`` is used as it is."""
    n = _arity(fn)

    def typer(*args):
        return cpu_call if str(current_target()) == "cpu" else fn

    overload(fn, target="generic", strict=False, jit_options=_JIT_OPTIONS)(
        _with_arity("def fn(ARGS):\n    return typer(ARGS)\n", n, {"typer": typer}))
    fn.__cpu_call__ = cpu_call
    return _mark(fn, None)


#: names of the cached kernels behind :func:`jitable_outline` functions
_ALWAYS_INLINE: set = set()


def always_inline(kernel: Callable) -> Callable:
    """Let LLVM inline the cached njit ``kernel`` into every compiled caller.

    Numba links a called dispatcher's optimised LLVM module into the caller's and
    optimises the result again, but the inliner declines a function the size of the
    gamma sampler: measured, the call boundary cost ~4 ns per gamma draw (Gamma,
    Beta, StudentT sampling 6-10 % slower than the driver with the sampler inlined
    at the IR level).  Marking the linked copy ``alwaysinline`` gives that run time
    back while the kernel is still typed and optimised once, and loaded from the
    disk cache (the module used for linking is cached with the machine code)."""
    # (under NUMBA_DISABLE_JIT=1 the kernel is a plain function)
    _ALWAYS_INLINE.add(getattr(kernel, "py_func", kernel).__name__)
    _patch_linking()
    return kernel


def _patch_linking() -> None:
    from numba.core.codegen import CPUCodeLibrary

    # a private Numba method (0.68): if a release renames it, the kernels are only
    # called instead of inlined (slower, same results; tests/test_compile.py notices)
    original = getattr(CPUCodeLibrary, "_get_module_for_linking", None)
    if original is None or getattr(original, "__lograd_fast__", False):
        return

    def _get_module_for_linking(self):
        mod = original(self)
        for fn in mod.functions:
            # the native function (Numba's mangled name holds the Python name); not
            # its CPython or cfunc wrappers
            if (not fn.is_declaration and not fn.name.startswith(("cpython.", "cfunc."))
                    and any(name in fn.name for name in _ALWAYS_INLINE)
                    and not any("alwaysinline" in str(a) for a in fn.attributes)):
                fn.add_function_attribute("alwaysinline")
        return mod

    _get_module_for_linking.__lograd_fast__ = True
    CPUCodeLibrary._get_module_for_linking = _get_module_for_linking


def _patch_alias_analysis() -> None:
    """Make Numba's alias analysis propagate "aliases an argument" to every alias.

    ``numba.core.ir_utils.find_potential_aliases`` visits the blocks in dictionary
    order; a copy ``b = a`` seen before ``a`` is known to alias an argument records
    ``b`` as an alias of ``a`` only, and never as an argument alias.  Dead-code
    elimination then keeps a ``SetItem`` into ``b`` only if ``b`` or an alias of a
    *live* variable is its target, so a trailing write such as ``s[i, k] += 1`` into an
    output array reached through copies (deeply inlined code) is dropped.  Measured:
    with the drivers specialised per dtype, the float64 fused Categorical score lost
    its one-hot in the typed ``inline_overloads`` pass; with this closure it is kept.
    A NamedTuple built inside a function aliases what it was built from: the drivers
    take their score records as plain tuples (``_engine/cpu.py``) and name the fields
    again (``s = Scores(*st)``), and without this rule every score written through
    ``s`` was dropped.  The closure only ever keeps more statements (never changes a
    kept one).  A private Numba function (0.68): if it moves, the patch is skipped and
    the suite's closed-form score tests would show any miscompile."""
    from numba.core import ir, ir_utils

    original = getattr(ir_utils, "find_potential_aliases", None)
    if original is None or getattr(original, "__lograd_fast__", False):
        return

    def link(a: str, b: str, alias_map: dict, arg_aliases: set) -> None:
        alias_map.setdefault(a, set()).add(b)
        alias_map.setdefault(b, set()).add(a)
        if b in arg_aliases:
            arg_aliases.add(a)

    def record_aliases(blocks, func_ir, alias_map, arg_aliases) -> None:
        # a NamedTuple built from values (the drivers' ``Scores(*st)``) aliases them
        for block in blocks.values():
            for inst in block.find_insts(ir.Assign):
                expr = inst.value
                if not (isinstance(expr, ir.Expr) and expr.op == "call"):
                    continue
                fdef = ir_utils.guard(ir_utils.get_definition, func_ir, expr.func)
                cls = getattr(fdef, "value", None)
                if isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields"):
                    for src in list(expr.args) + ([expr.vararg] if expr.vararg else []):
                        link(inst.target.name, src.name, alias_map, arg_aliases)

    def find_potential_aliases(blocks, args, typemap, func_ir, alias_map=None,
                               arg_aliases=None):
        alias_map, arg_aliases = original(blocks, args, typemap, func_ir, alias_map,
                                          arg_aliases)
        while True:
            known = len(arg_aliases)
            record_aliases(blocks, func_ir, alias_map, arg_aliases)
            todo = list(arg_aliases)
            while todo:  # every alias of an argument alias is one (transitively)
                for w in alias_map.get(todo.pop(), ()):
                    if w not in arg_aliases:
                        arg_aliases.add(w)
                        todo.append(w)
            if len(arg_aliases) == known:
                return alias_map, arg_aliases
            # attribute reads of the new argument aliases (``s.loc``) alias them too
            alias_map, arg_aliases = original(blocks, args, typemap, func_ir, alias_map,
                                              arg_aliases)

    find_potential_aliases.__lograd_fast__ = True
    ir_utils.find_potential_aliases = find_potential_aliases


_patch_alias_analysis()


def _mark(fn: Callable, compiled: Callable | None) -> Callable:
    fn.__jitable__ = True
    fn.__compiled__ = compiled
    return fn


_CPU_COPIES: dict = {}


def cpu_inline(fn: Callable, outline: bool = True, float32: bool | None = None) -> Callable:
    """A CPU-only ``njit(inline="always")`` copy of the :func:`jitable` function ``fn``,
    for the bodies of flat loops meant to vectorise (the RNG's variate passes).

    Numba inlines such a copy into the caller's IR *before* type inference, so the
    whole loop is typed once; an overload marked for inlining (:func:`jitable_hot`) is
    typed again at every call resolution, with everything it calls (measured: 16-22 s
    to compile one Box-Muller variate loop that way, 2-3 s with these copies).
    Global names of ``fn`` bound to other jitable functions are rebound to their
    copies (call them by name, not as ``module.attr``, in such code); a ``compiled``
    form (e.g. ``math.sqrt`` for ``maths.sqrt``) replaces the Python body.  The copy of
    a :func:`jitable_outline` function is its ``cpu_call`` (a call of the cached
    kernel); ``outline=False`` gives the copy of its own body (to build that kernel).
    ``float32`` (True/False) fixes the dtype: :func:`by_dtype` functions are then bound
    to the copy of their float32/float64 function too (typed once, in the caller).
    """
    outline = outline and hasattr(fn, "__cpu_call__")
    key = (fn, outline, float32)
    copy = _CPU_COPIES.get(key)
    if copy is not None:
        return copy
    compiled = getattr(fn, "__compiled__", None)
    if outline:
        copy = njit(inline="always", error_model="numpy")(fn.__cpu_call__)
    elif compiled is not None and not hasattr(compiled, "__code__"):
        copy = compiled  # a builtin Numba compiles itself (math.sqrt)
    elif float32 is not None and hasattr(fn, "__by_dtype__"):
        impl = cpu_inline(fn.__by_dtype__[0 if float32 else 1], float32=float32)
        copy = njit(inline="always", error_model="numpy")(_with_arity(
            "def fn(like, ARGS):\n    return impl(ARGS)\n", fn.__by_dtype__[2], {"impl": impl}))
    else:
        body = compiled or fn
        names = {name: cpu_inline(value, float32=float32) for name in body.__code__.co_names
                 if getattr(value := body.__globals__.get(name), "__jitable__", False)
                 or (float32 is not None and hasattr(value, "__by_dtype__"))}
        glb = {**body.__globals__, **names}
        clone = pytypes.FunctionType(body.__code__, glb, body.__name__, body.__defaults__,
                                     body.__closure__)
        clone.__module__, clone.__qualname__ = body.__module__, body.__qualname__
        copy = njit(inline="always", error_model="numpy")(clone)
    _CPU_COPIES[key] = copy
    return copy


def _is_float32_type(numba_type: Any) -> bool:
    dtype = getattr(numba_type, "dtype", numba_type)
    return dtype == types.float32


def _with_arity(template: str, n_args: int, namespace: dict) -> Callable:
    """Build ``template`` (a function source with ``ARGS``) for a fixed number of
    arguments: Numba's IR inliner does not take ``*args``."""
    args = ", ".join(f"a{k}" for k in range(n_args))
    exec(template.replace("ARGS", args), namespace)  # noqa: S102 - fixed templates only
    return namespace["fn"]


def _arity(fn: Callable) -> int:
    return len(inspect.signature(fn).parameters)


def _inline_on_cpu(expr, caller_info, callee_info) -> bool:
    """Numba inlining cost model: inline at the IR level when compiling for the CPU."""
    return str(current_target()) == "cpu"


def _register(fn: Callable, make_typer: Callable[[], Callable]) -> None:
    """Overload ``fn`` for every target; on the CPU inline it at the call site.

    Numba's IR inlining of these thin layers (measured: -13 ns per drawn atom in the
    sample driver, and Philox vectorises in plain loops) does not work under
    numba-cuda's inliner (its candidates also include CPU-only overloads), so the
    decision is taken per call site from the target being compiled: the CUDA target
    gets an ordinary call, which NVVM inlines itself.
    """
    overload(fn, target="generic", strict=False, jit_options=_JIT_OPTIONS,
             inline=_inline_on_cpu)(make_typer())


def by_dtype(f32: Callable, f64: Callable) -> Callable:
    """Return ``g(like, *args)`` that calls ``f32(*args)`` when ``like`` is float32.

    ``like`` is an array (its dtype decides) or a scalar.  The choice is made once
    at compile time in compiled code and at run time in Python.
    """
    n = _arity(f64)

    def g(like, *args):
        dtype = getattr(like, "dtype", None)
        if dtype is None:
            dtype = np.asarray(like).dtype
        if dtype == np.float32:
            return f32(*args)
        return f64(*args)

    def typer(like, *args):
        impl = f32 if _is_float32_type(like) else f64
        return _with_arity("def fn(like, ARGS):\n    return impl(ARGS)\n", n, {"impl": impl})

    _register(g, lambda: _with_arity("def fn(like, ARGS):\n    return typer(like, ARGS)\n", n,
                                     {"typer": typer}))
    g.__by_dtype__ = (f32, f64, n)  # for cpu_inline(..., float32=...)
    g.__name__ = f64.__name__.removesuffix("_f64")
    g.__doc__ = f64.__doc__
    return g


def dispatch_on_record(name: str, registry: dict, n_args: int) -> Callable:
    """An entry point ``name(params, *args)`` resolved by the type of ``params``.

    ``registry`` maps a family's parameter-record class (a ``NamedTuple``) to an
    object with one attribute per operation.  Compiled code resolves the family at
    compile time (so Numba specialises per family) and inlines the family's
    function at the call site; Python resolves it per call.  ``n_args`` counts the
    arguments after ``params``.
    """

    def entry(params, *args):
        return getattr(registry[type(params)], name)(params, *args)

    def typer(params, *args):
        ops = registry.get(getattr(params, "instance_class", None))
        if ops is None:
            return None
        return getattr(ops, name)

    _register(entry, lambda: _with_arity("def fn(params, ARGS):\n    return typer(params, ARGS)\n",
                                 n_args, {"typer": typer}))
    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = f"Family-dispatched entry point ``{name}``."
    return entry
