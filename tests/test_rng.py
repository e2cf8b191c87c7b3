"""The counter-based RNG: Philox known answers, our own log/sin/cos against extended
precision, the variate transforms against mpmath, draw distributions (KS, tails to
6 sigma, chi^2 by seed and stream), and bitwise agreement of the vectorised CPU pass,
the per-atom (CUDA, Python) path and the numpy backend."""

import math

import mpmath
import numba
import numpy as np
import pytest
from scipy import stats

from lograd_fast._engine import maths as m
from lograd_fast._engine import numpy as npb
from lograd_fast._engine import rng as _rng

U = np.uint64
KINDS = ["normal", "uniform", "exponential"]
DTYPES = [np.float64, np.float32]

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


def test_philox_in_the_vectorised_pass_matches_numpy_philox():
    """The ``block`` kind's pass (Philox inlined in a flat loop) against numpy's own
    Philox4x32... numpy only has Philox4x64, so against our Python Philox, which the
    known answers above pin down."""
    key = (U(0x12345678), U(0x9ABCDEF0), U(7), np.int64(2**32 - 3))  # atoms cross 2**32
    buf = np.empty((4, 20 + 2 * _rng.MAX_LANES), np.uint64)
    _rng.fill_variates("block", np.float64, key, 0, 20, 1, buf)
    atoms = np.arange(20, dtype=np.uint64) + U(key[3])
    ref = _rng.philox4x32(np.zeros(20, np.uint64), atoms & U(0xFFFFFFFF), atoms >> U(32),
                          np.full(20, key[2]), np.full(20, key[0]), np.full(20, key[1]))
    for w, r in zip(buf[:, :20], ref):
        np.testing.assert_array_equal(w, r)


def test_uniforms_are_strictly_inside_the_unit_interval():
    top = U(0xFFFFFFFF)
    assert 0.0 < _rng.u01_f64(U(0), U(0)) < 1.0
    assert 0.0 < _rng.u01_f64(top, top) < 1.0
    assert _rng.u01_f64(top, top) == 1.0 - 2.0**-53
    assert 0.0 < _rng.u01_f32(U(0)) < np.float32(1.0)
    assert _rng.u01_f32(top) < np.float32(1.0)
    assert isinstance(_rng.u01_f32(top), np.float32)


# --------------------------------------------------------------------------- our maths
def _ulps(got, ref, dtype):
    """|got - ref| in units of the last place of ``dtype`` at ``ref`` (ref in long double)."""
    spacing = np.spacing(np.abs(ref.astype(dtype))).astype(np.longdouble)
    return np.abs(got.astype(np.longdouble) - ref) / spacing


@numba.njit(cache=True)
def _kernels_jit(x64, x32, out64, out32):
    for i in range(x64.shape[0]):
        out64[0, i] = m.log_f64(x64[i] + 1.0)
        out64[1, i] = m.sin_kernel_f64(x64[i])
        out64[2, i] = m.cos_kernel_f64(x64[i])
        out32[0, i] = m.log_f32(x32[i] + np.float32(1.0))
        out32[1, i] = m.sin_kernel_f32(x32[i])
        out32[2, i] = m.cos_kernel_f32(x32[i])


def test_own_log_sin_cos_are_accurate_and_agree_compiled():
    """log to 1 ulp over the range of the uniforms (down to 2**-53) and beyond; sin/cos
    kernels to 1 ulp on [-pi/4, pi/4]; reference: long double (64-bit mantissa)."""
    rng = np.random.default_rng(1)
    u = np.concatenate([rng.random(100_000), 2.0 ** rng.uniform(-53, 0, 100_000),
                        2.0 ** rng.uniform(-1000, 1000, 10_000), [1.0, 0.5, 2.0**-53, 1e300]])
    ref = np.log(u.astype(np.longdouble))
    nz = ref != 0
    assert _ulps(m.log_f64(u)[nz], ref[nz], np.float64).max() <= 1.0
    assert m.log_f64(1.0) == 0.0
    u32 = u[(u > 1e-37) & (u < 1e37)].astype(np.float32)
    ref32 = np.log(u32.astype(np.longdouble))
    nz = ref32 != 0
    assert _ulps(m.log_f32(u32)[nz], ref32[nz], np.float32).max() <= 1.0
    t = rng.uniform(-math.pi / 4, math.pi / 4, 200_000)
    tl = t.astype(np.longdouble)
    for ours, ref_fn in ((m.sin_kernel_f64, np.sin), (m.cos_kernel_f64, np.cos)):
        assert _ulps(ours(t), ref_fn(tl), np.float64).max() <= 1.0
    t32 = t.astype(np.float32)
    for ours, ref_fn in ((m.sin_kernel_f32, np.sin), (m.cos_kernel_f32, np.cos)):
        assert _ulps(ours(t32), ref_fn(t32.astype(np.longdouble)), np.float32).max() <= 1.0
    # the compiled forms give the same bits as numpy (no libm, no FMA contraction)
    x = rng.uniform(-math.pi / 4, math.pi / 4, 1000)
    out64, out32 = np.empty((3, 1000)), np.empty((3, 1000), np.float32)
    _kernels_jit(x, x.astype(np.float32), out64, out32)
    x32 = x.astype(np.float32)
    np.testing.assert_array_equal(out64, [m.log_f64(x + 1.0), m.sin_kernel_f64(x),
                                          m.cos_kernel_f64(x)])
    np.testing.assert_array_equal(out32, [m.log_f32(x32 + np.float32(1.0)),
                                          m.sin_kernel_f32(x32), m.cos_kernel_f32(x32)])


def _words(n, seed=0):
    """``n`` Philox-like blocks (4, n), the first four at the extremes of every word."""
    top = 0xFFFFFFFF
    w = np.random.default_rng(seed).integers(0, 2**32, size=(4, n), dtype=np.uint64)
    w[:, 0], w[:, 1] = 0, top
    w[:, 2], w[:, 3] = [0, top, 0, top], [top, 0, top, 0]
    return w


def test_box_muller_matches_mpmath():
    """Both float64 lanes against sqrt(-2 ln u1) (cos t, sin t), evaluated by mpmath at
    50 digits from the same bits; errors within a few ulp of the radius."""
    mpmath.mp.dps = 50
    w = _words(300)
    z0, z1 = _rng.box_muller_f64(*w)
    for i in range(w.shape[1]):
        w0, w1, w2, w3 = (int(v) for v in w[:, i])
        k1 = ((w0 << 20) | (w1 >> 12)) & (2**52 - 1)
        k2 = ((w2 << 20) | (w3 >> 12)) & (2**52 - 1)
        r = mpmath.sqrt(-2 * mpmath.log((k1 + mpmath.mpf(0.5)) / 2**52))
        t = (k2 >> 50) * mpmath.pi / 2 + ((k2 & (2**50 - 1)) - 2**49 + mpmath.mpf(0.5)) \
            * mpmath.pi / 2**51
        tol = 4 * 2.0**-52 * float(r)
        assert abs(z0[i] - float(r * mpmath.cos(t))) <= tol
        assert abs(z1[i] - float(r * mpmath.sin(t))) <= tol
    # the largest radius: u1 = 2**-53
    assert z0[0] ** 2 + z1[0] ** 2 == pytest.approx(2 * 53 * math.log(2), rel=1e-14)


def test_box_muller_f32_matches_mpmath():
    mpmath.mp.dps = 30
    w = _words(300, seed=5)
    z0, z1 = _rng.box_muller_f32(w[0], w[1])
    assert z0.dtype == np.float32 and z1.dtype == np.float32
    for i in range(w.shape[1]):
        wa, wb = int(w[0, i]), int(w[1, i])
        u1 = float(np.float32((wa + 0.5) * 2.0**-32))
        r = mpmath.sqrt(-2 * mpmath.log(u1))
        t = (wb >> 30) * mpmath.pi / 2 + (((wb >> 6) & (2**24 - 1)) - 2**23 + mpmath.mpf(0.5)) \
            * mpmath.pi / 2**25
        tol = 6 * 2.0**-23 * float(r)
        assert abs(float(z0[i]) - float(r * mpmath.cos(t))) <= tol
        assert abs(float(z1[i]) - float(r * mpmath.sin(t))) <= tol
    assert max(np.abs(z0).max(), np.abs(z1).max()) < 6.8


# --------------------------------------------------------------------------- variates
def _key(seed, stream=0, offset=0):
    return (U(seed & 0xFFFFFFFF), U(seed >> 32), U(stream), np.int64(offset))


def _fill(kind, dtype, n, seed=2024, stream=0, offset=0, per_atom=1):
    key = _key(seed, stream, offset)
    buf = np.empty(n * per_atom + 2 * _rng.MAX_LANES, _rng.variate_dtype(kind, dtype))
    off = _rng.fill_variates(kind, dtype, key, 0, n, per_atom, buf)
    return buf[off:off + n * per_atom]


_DIST = {"normal": stats.norm, "uniform": stats.uniform, "exponential": stats.expon}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("kind", KINDS)
def test_variates_follow_their_distribution(kind, dtype):
    out = _fill(kind, dtype, 400_000)
    assert out.dtype == dtype
    dist = _DIST[kind]
    L = _rng.lanes(kind, dtype)
    for lane in range(L):  # every lane of the block, and all of them together
        assert stats.kstest(out[lane::L], dist.cdf).pvalue > 1e-6
    assert stats.kstest(out, dist.cdf).pvalue > 1e-6
    # the first two moments, within 5 standard errors of the exact values
    n = out.size
    x = out.astype(np.float64)
    mean, var = dist.stats(moments="mv")
    assert abs(x.mean() - mean) < 5 * math.sqrt(var / n)
    m4 = dist.expect(lambda t: (t - mean) ** 4)
    assert abs(x.var() - var) < 5 * math.sqrt((m4 - var**2) / n)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_normal_tails_to_six_sigma(dtype):
    """P(|z| > t) for t = 1 .. 6 within 5 standard errors (2**25 draws: ~0.07 expected
    beyond 6 sigma, so that count may be 0 or 1 but no more than 3), and the shape of
    the tail beyond 3 sigma by KS against the truncated normal."""
    n = 2**25
    z = _fill("normal", dtype, n, seed=99).astype(np.float64)
    a = np.abs(z)
    for t in (1.0, 2.0, 3.0, 4.0, 4.5, 5.0, 5.5):
        p = 2 * stats.norm.sf(t)
        assert abs(np.sum(a > t) - p * n) < 5 * math.sqrt(p * (1 - p) * n) + 1, t
    assert np.sum(a > 6.0) <= 3
    tail = a[a > 3.0]
    assert stats.kstest(tail, stats.truncnorm(3.0, np.inf).cdf).pvalue > 1e-6


def test_the_two_normals_of_a_block_are_independent():
    """z_2k and z_2k+1 come from one Box-Muller pair: uncorrelated, and (z0, z1) falls
    into the four quadrants and the rings of radius 1, 2 with the right frequencies
    (chi^2 against the bivariate normal: rotation-invariant, chi-2 radius)."""
    z = _fill("normal", np.float64, 2 * 200_000, seed=3).reshape(-1, 2)
    n = z.shape[0]
    assert abs(np.corrcoef(z[:, 0], z[:, 1])[0, 1]) < 5 / math.sqrt(n)
    assert abs(np.corrcoef(z[:, 0] ** 2, z[:, 1] ** 2)[0, 1]) < 5 * math.sqrt(2 / n)
    quadrant = (z[:, 0] > 0).astype(int) * 2 + (z[:, 1] > 0)
    r2 = (z**2).sum(axis=1)
    ring = np.digitize(r2, [1.0, 4.0])
    counts = np.bincount(quadrant * 3 + ring, minlength=12)
    p_ring = np.diff(stats.chi2(2).cdf([0.0, 1.0, 4.0, np.inf]))
    expected = n * np.repeat([[0.25]], 4, axis=0) * p_ring
    assert stats.chisquare(counts, expected.ravel()).pvalue > 1e-6


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_streams_and_seeds_are_independent(dtype):
    """chi^2 of Phi(z) over 64 bins for each (seed, stream), and no correlation
    between the draws of different seeds or streams at the same counter."""
    n = 100_000
    draws = {(seed, stream): _fill("normal", dtype, n, seed=seed, stream=stream)
             for seed in (0, 1, 2**40) for stream in (0, 1, 7)}
    for z in draws.values():
        counts = np.bincount((stats.norm.cdf(z) * 64).astype(int), minlength=64)
        assert stats.chisquare(counts).pvalue > 1e-6
    keys = list(draws)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            assert abs(np.corrcoef(draws[a], draws[b])[0, 1]) < 5 / math.sqrt(n)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("kind", KINDS + ["uniform64"])
def test_variates_agree_on_every_path(kind, dtype):
    """The CPU's vectorised pass, the numpy backend and the per-atom path (CUDA, Python)
    give the same bits, for any atom offset and variates per atom."""
    for per_atom, offset in ((1, 0), (1, 3), (3, 5), (5, 2**32 - 2)):
        n = 37
        key = _key(11 + 2**32, 4, offset)
        got = _fill(kind, dtype, n, seed=11 + 2**32, stream=4, offset=offset,
                    per_atom=per_atom)
        ref = npb.variates(kind, dtype, key, n, per_atom).reshape(-1)
        assert got.dtype == ref.dtype
        np.testing.assert_array_equal(got, ref)
        accessor = {"normal": _rng.normal_variate, "exponential": _rng.exponential_variate}.get(
            kind, _rng.uniform_variate)
        like = np.empty(1, _rng.variate_dtype(kind, dtype))
        one = [accessor(like, _rng.make_stream(key[0], key[1], key[2], key[3] + a), per_atom, k)
               for a in range(n) for k in range(per_atom)]
        np.testing.assert_array_equal(np.array(one, ref.dtype), ref)
        compiled = _computed_jit(like, key, n, per_atom, {"normal": 0, "exponential": 2}.get(
            kind, 1))
        np.testing.assert_array_equal(compiled, ref)


@numba.njit(cache=True)
def _computed_jit(like, key, n, per_atom, kind):
    """Variates through the per-atom (CUDA) path, compiled for the CPU."""
    out = np.empty(n * per_atom, like.dtype)
    for a in range(n):
        st = _rng.make_stream(key[0], key[1], key[2], key[3] + a)
        for k in range(per_atom):
            if kind == 0:
                out[a * per_atom + k] = _rng.normal_variate(like, st, per_atom, k)
            elif kind == 1:
                out[a * per_atom + k] = _rng.uniform_variate(like, st, per_atom, k)
            else:
                out[a * per_atom + k] = _rng.exponential_variate(like, st, per_atom, k)
    return out


# --------------------------------------------------------------------------- per-atom blocks
@numba.njit(cache=True)
def _per_atom(out, seed, kind):
    for i in range(out.shape[0]):
        st = _rng.make_stream(U(seed), U(0), U(0), i)
        if kind == 0:
            out[i] = _rng.uniform(out, st, 1)[0]
        elif kind == 1:
            out[i] = _rng.std_normal(out, st, 1)[0]
        else:
            out[i] = _rng.std_exponential(out, st, 1)[0]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("kind,dist", [(0, stats.uniform), (1, stats.norm), (2, stats.expon)],
                         ids=["uniform", "normal", "exponential"])
def test_per_atom_draws_follow_their_distribution_and_match_numpy(kind, dist, dtype):
    """The draws of rejection samplers (one Philox block each), compiled and numpy."""
    n = 100_000
    out = np.empty(n, dtype)
    _per_atom(out, 2025, kind)
    assert stats.kstest(out, dist.cdf).pvalue > 1e-6
    st = npb.streams((U(2025), U(0), U(0), np.int64(0)), np.arange(n))
    vec = {0: lambda: npb.uniform(dtype, st, 1)[0], 1: lambda: npb.std_normal_next(dtype, st, 1)[0],
           2: lambda: npb.std_exponential(dtype, st, 1)[0]}[kind]()
    np.testing.assert_array_equal(vec, out)


def test_counter_spaces_are_distinct():
    """Other stream id, next block, high atom bits: different words; the variates of
    group g (counter (0, g, stream)) never meet an atom's own blocks (block >= 1)."""
    st = _rng.make_stream(U(1), U(0), U(0), 5)
    a = _rng.philox_block(st, 1)
    b = _rng.philox_block(_rng.make_stream(U(1), U(0), U(1), 5), 1)  # other stream id
    c = _rng.philox_block(st, 2)  # next block
    d = _rng.philox_block(_rng.make_stream(U(1), U(0), U(0), 2**40 + 5), 1)  # high bits
    g = _rng.philox4x32(U(0), U(5), U(0), U(0), U(1), U(0))  # variate group 5
    assert len({tuple(int(w) for w in t) for t in (a, b, c, d, g)}) == 5
