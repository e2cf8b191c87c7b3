"""Numerical edges found by the outside audit (issue 15), checked against references
we did not write: mpmath at 40 digits, scipy, closed forms."""

import numpy as np
import pytest

import lograd_fast as lf


# --------------------------------------------------------------------------- dtypes (item 6)
@pytest.mark.parametrize("cls,args", [(lf.Normal, 2), (lf.Gamma, 2), (lf.Poisson, 1),
                                      (lf.StudentT, 3)], ids=lambda v: getattr(v, "__name__", ""))
def test_numpy_float32_scalars_are_float32_parameters(cls, args):
    d = cls(*[np.float32(0.5)] * args)
    assert d.dtype == np.float32
    assert d.sample(3).dtype == (np.int64 if cls is lf.Poisson else np.float32)
    # Python floats stay weak (NEP 50): they take the arrays' dtype ...
    assert cls(np.float32(0.5), *[0.5] * (args - 1)).dtype == np.float32
    # ... while a numpy float64 scalar is a float64 parameter
    if args > 1:
        assert cls(np.zeros(2, np.float32), *[np.float64(0.5)] * (args - 1)).dtype == np.float64
    assert cls(*[0.5] * args).dtype == np.float64
