"""The JAX adapter: log_prob through pure_callback with the closed-form score as its VJP,
checked against jax.scipy.stats / jax.nn and jax.grad of them."""

import numpy as np
import pytest

import lograd_fast as lf

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
lfj = pytest.importorskip("lograd_fast.jax")
from jax.scipy.stats import norm  # noqa: E402


@pytest.fixture
def x64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def normals(dtype):
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    loc = jax.random.normal(keys[0], (4, 3), dtype)
    log_scale = 0.5 * jax.random.normal(keys[1], (3,), dtype)
    x = jax.random.normal(keys[2], (5, 4, 3), dtype)
    return x, loc, log_scale


def weighted(lp):
    return (jnp.sin(lp) * jnp.arange(lp.size).reshape(lp.shape)).sum()


@pytest.mark.parametrize("event_ndims", [0, 1])
def test_normal_matches_jax_scipy_in_float64(x64, event_ndims):
    x, loc, log_scale = normals(jnp.float64)

    def ours(m, s):
        return lfj.normal_log_prob(x, m, s, event_ndims=event_ndims)

    def ref(m, s):
        lp = norm.logpdf(x, m, jnp.exp(s))
        return lp.sum(-1) if event_ndims else lp

    assert ours(loc, log_scale).dtype == jnp.float64
    np.testing.assert_allclose(ours(loc, log_scale), ref(loc, log_scale), rtol=1e-12,
                               atol=1e-12)
    g_ours = jax.grad(lambda m, s: weighted(ours(m, s)), (0, 1))(loc, log_scale)
    g_ref = jax.grad(lambda m, s: weighted(ref(m, s)), (0, 1))(loc, log_scale)
    for a, b in zip(g_ours, g_ref):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    # under jit too
    g_jit = jax.jit(jax.grad(lambda m, s: weighted(ours(m, s)), (0, 1)))(loc, log_scale)
    for a, b in zip(g_jit, g_ref):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_normal_float32_by_default():
    x, loc, log_scale = normals(jnp.float32)
    lp = lfj.normal_log_prob(x, loc, log_scale)
    assert lp.dtype == jnp.float32
    np.testing.assert_allclose(lp, norm.logpdf(x, loc, jnp.exp(log_scale)), rtol=1e-5,
                               atol=1e-5)
    g = jax.grad(lambda m: lfj.normal_log_prob(x, m, log_scale).sum())(loc)
    np.testing.assert_allclose(g, ((x - loc) / jnp.exp(2 * log_scale)).sum(0), rtol=1e-4,
                               atol=1e-4)


def test_categorical_matches_log_softmax(x64):
    logits = jax.random.normal(jax.random.PRNGKey(1), (4, 5), jnp.float64)
    actions = jnp.array([[0, 1, 2, 4], [3, 3, 0, 1], [4, 4, 4, 4]])  # (3 samples, 4 rows)
    mask = np.array([[True] * 5, [True, True, False, True, True], [True] * 5,
                     [False, True, True, True, True]])

    def ref(z, m=None):
        z = z if m is None else jnp.where(m, z, -jnp.inf)
        return jnp.take_along_axis(jax.nn.log_softmax(z), actions.T, axis=1).T

    ours = lfj.categorical_log_prob(actions, logits)
    np.testing.assert_allclose(ours, ref(logits), rtol=1e-12)
    np.testing.assert_allclose(jax.grad(lambda z: weighted(lfj.categorical_log_prob(
        actions, z)))(logits), jax.grad(lambda z: weighted(ref(z)))(logits), rtol=1e-10,
        atol=1e-10)
    masked = jnp.array([[0, 1, 2, 4], [3, 3, 0, 1], [4, 4, 4, 3]])  # allowed actions
    actions = masked
    np.testing.assert_allclose(lfj.categorical_log_prob(actions, logits, mask=mask),
                               ref(logits, mask), rtol=1e-12)
    g = jax.grad(lambda z: weighted(lfj.categorical_log_prob(actions, z, mask=mask)))(logits)
    np.testing.assert_allclose(g, jax.grad(lambda z: weighted(ref(z, mask)))(logits),
                               rtol=1e-10, atol=1e-10)
    assert (g[~mask] == 0).all()


def test_vmap_and_the_generic_entry_point(x64):
    x, loc, log_scale = normals(jnp.float64)
    batched = jax.vmap(lambda m: lfj.log_prob(lf.Normal, x, loc=m, log_scale=log_scale))(
        jnp.stack([loc, 2 * loc]))
    assert batched.shape == (2, 5, 4, 3)
    np.testing.assert_allclose(batched[1], norm.logpdf(x, 2 * loc, jnp.exp(log_scale)),
                               rtol=1e-12)


def test_bad_input():
    x, loc, log_scale = normals(jnp.float32)
    with pytest.raises(TypeError, match="log_scale"):
        lfj.log_prob(lf.Normal, x, loc=loc)
    with pytest.raises(TypeError, match="loc must be a float"):
        lfj.normal_log_prob(x, jnp.zeros(3, jnp.int32), log_scale)
    with pytest.raises(ValueError, match="x has shape"):
        lfj.normal_log_prob(jnp.zeros((5, 2)), loc, log_scale)
    with pytest.raises(TypeError, match="dist_class"):
        lfj.log_prob(np.ndarray, x, loc=loc)
