"""The counter-based RNG: Philox known answers, uniform ranges, draw distributions."""

import math

import numba
import numpy as np
import pytest
from cases import assert_same_draws
from scipy import stats

from lograd_fast._engine import numpy as npb
from lograd_fast._engine import rng as _rng

U = np.uint64

# Random123 kat_vectors for Philox4x32-10: counter, key -> output
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@numba.njit(cache=True)
def _philox_jit(c0, c1, c2, c3, k0, k1):
    return _rng.philox4x32(c0, c1, c2, c3, k0, k1)


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_philox_known_answers(counter, key, expected):
    args = [U(v) for v in counter + key]
    assert tuple(int(w) for w in _rng.philox4x32(*args)) == expected  # plain Python
    assert tuple(int(w) for w in _philox_jit(*args)) == expected  # compiled
    arrays = [np.full(3, v, np.uint64) for v in counter + key]  # numpy arrays
    for w, e in zip(_rng.philox4x32(*arrays), expected):
        assert np.all(w == e)


def test_uniforms_are_strictly_inside_the_unit_interval():
    top = U(0xFFFFFFFF)
    assert 0.0 < _rng.u01_f64(U(0), U(0)) < 1.0
    assert 0.0 < _rng.u01_f64(top, top) < 1.0
    assert _rng.u01_f64(top, top) == 1.0 - 2.0**-53
    assert 0.0 < _rng.u01_f32(U(0)) < np.float32(1.0)
    assert _rng.u01_f32(top) < np.float32(1.0)
    assert isinstance(_rng.u01_f32(top), np.float32)


@numba.njit(cache=True)
def _fill(out, seed, kind):
    for i in range(out.shape[0]):
        st = _rng.make_stream(U(seed), U(0), U(0), i)
        if kind == 0:
            out[i] = _rng.uniform(out, st, 0)[0]
        elif kind == 1:
            out[i] = _rng.std_normal(out, st, 0)[0]
        else:
            out[i] = _rng.std_exponential(out, st, 0)[0]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind,dist", [(0, stats.uniform), (1, stats.norm), (2, stats.expon)],
                         ids=["uniform", "normal", "exponential"])
def test_draws_follow_their_distribution(kind, dist, dtype):
    out = np.empty(200_000, dtype)
    _fill(out, 2024, kind)
    assert stats.kstest(out, dist.cdf).pvalue > 1e-6
    # the first four moments, within 5 standard errors of the exact values
    n = out.size
    x = out.astype(np.float64)
    mean, var = dist.stats(moments="mv")
    assert abs(x.mean() - mean) < 5 * math.sqrt(var / n)
    m4 = dist.expect(lambda t: (t - mean) ** 4)
    assert abs(x.var() - var) < 5 * math.sqrt((m4 - var**2) / n)


def test_normal_tail_is_reached_and_correct():
    """The ziggurat's tail (|z| > r = 3.654...) is sampled with the right mass."""
    out = np.empty(2_000_000)
    _fill(out, 7, 1)
    r = _rng.ZIGGURAT["r"]
    assert r == pytest.approx(3.6541528853610088, rel=1e-12)  # Marsaglia & Tsang, N=256
    p = 2 * stats.norm.sf(r)
    count = np.sum(np.abs(out) > r)
    assert abs(count - p * out.size) < 5 * math.sqrt(p * out.size)
    tail = np.abs(out[np.abs(out) > r])
    conditional = stats.truncnorm(r, np.inf)
    assert stats.kstest(tail, conditional.cdf).pvalue > 1e-6


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numpy_draws_equal_compiled_draws(dtype):
    n = 50_000
    key = (U(99), U(0), U(0), np.int64(0))
    st = npb.streams(key, np.arange(n))
    for kind, vec in ((0, lambda: npb.uniform(dtype, st, 0)[0]),
                      (1, lambda: npb.std_normal(dtype, st)),
                      (2, lambda: npb.std_exponential(dtype, st, 0)[0])):
        out = np.empty(n, dtype)
        _fill(out, 99, kind)
        if kind == 2:  # -log(u): libm's log in the kernels, numpy's here (ulp apart)
            assert_same_draws(vec(), out)
        else:  # pure arithmetic (and the ziggurat's rare exp comparisons): bitwise
            np.testing.assert_array_equal(vec(), out)


def test_streams_and_blocks_are_distinct():
    a = _rng.philox_block(_rng.make_stream(U(1), U(0), U(0), 5), 0)
    b = _rng.philox_block(_rng.make_stream(U(1), U(0), U(1), 5), 0)  # other stream id
    c = _rng.philox_block(_rng.make_stream(U(1), U(0), U(0), 5), 1)  # next block
    d = _rng.philox_block(_rng.make_stream(U(1), U(0), U(0), 2**40 + 5), 0)  # high atom bits
    assert len({tuple(int(w) for w in t) for t in (a, b, c, d)}) == 4
