"""The shared table of comparisons: every family case, used by tests *and* benchmarks.

Each module ``tests/cases/<family>.py`` defines ``CASES``: a list of
:class:`FamilyCase`.  ``ALL_CASES`` collects them, so adding a family's cases is
adding one file here; ``tests/test_families.py`` runs the generic checks on every
case and ``benchmarks/`` times the same cases.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class FamilyCase:
    """One parameter setting of one family.

    ``cls``       the public class (e.g. ``lf.Normal``).
    ``params``    its unconstrained parameters (float64 arrays), passed by name.
    ``kwargs``    other constructor arguments (``mask``, ``event_ndims``).
    ``scipy``     ``atom_params -> frozen scipy distribution`` of one atom, given a
                  dict of that atom's parameter values (scalars, or rows for params
                  with event dims) and the ``kwargs``; ``None`` when scipy has none.
    ``kind``      "continuous", "discrete" or "multivariate".
    ``stat``      include in the (slower) statistical tests (KS/chi2, mean score).
    ``fd_step``   central finite-difference step for the score check.
    ``kl_to``     parameters of a second distribution for the KL check (or None).
    ``bitwise``   cpu and numpy backends draw the same samples (bitwise where the
                  sampler is pure arithmetic, within a few ulp where it applies a
                  transcendental: see :func:`assert_same_draws`).
    """

    id: str
    cls: type
    params: dict[str, np.ndarray]
    kwargs: dict[str, Any] = field(default_factory=dict)
    scipy: Callable | None = None
    kind: str = "continuous"
    stat: bool = True
    fd_step: float = 1e-5
    kl_to: dict[str, np.ndarray] | None = None
    bitwise: bool = True

    def make(self, backend: str = "cpu", dtype=np.float64, params: dict | None = None):
        params = self.params if params is None else params
        cast = {k: np.asarray(v, dtype=dtype) for k, v in params.items()}
        return self.cls(**cast, **self.kwargs, backend=backend)

    def __str__(self) -> str:
        return self.id


def _collect() -> list[FamilyCase]:
    cases = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        cases.extend(getattr(module, "CASES", []))
    ids = [c.id for c in cases]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise ValueError(f"duplicate case ids: {sorted(dupes)}")
    return cases


ALL_CASES = _collect()


MAX_ULP = 4


def assert_same_draws(got, ref, maxulp: int = MAX_ULP) -> None:
    """The same draws from two backends: integers bitwise; floats within ``maxulp``
    units in the last place (the compiled kernels call libm's ``log``/``exp``/``tanh``,
    the numpy backend numpy's vectorised ones, which differ in the last bit on some
    CPUs, e.g. numpy's AVX-512 loops), non-finite values at the same places."""
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape and got.dtype == ref.dtype, (got.shape, ref.shape)
    if got.dtype.kind != "f":
        np.testing.assert_array_equal(got, ref)
        return
    finite = np.isfinite(ref)
    np.testing.assert_array_equal(got[~finite], ref[~finite])
    np.testing.assert_array_max_ulp(got[finite], ref[finite], maxulp=maxulp)


def atom_params(dist, b: int) -> dict:
    """The parameters of flat atom ``b`` of ``dist`` (broadcast), as float64 arrays,
    plus any non-parameter record field the user gave (e.g. ``mask``) as is."""
    rec = dist._record
    out = {name: np.asarray(getattr(rec, name)[b], dtype=np.float64)
           for name in dist.family.param_names}
    if "mask" in rec._fields and rec.mask.size:  # (0, 0): no mask given
        out["mask"] = np.asarray(rec.mask[b])
    return out


def broadcast_params(case: FamilyCase, dist) -> dict:
    """The case's parameters broadcast to ``dist.full_shape`` (+ their event dims)."""
    return {name: np.array(getattr(dist._record, name), dtype=np.float64).reshape(
                dist.full_shape + dist._param_tail[name])
            for name in dist.family.param_names}
