"""Tensors from RL code (torch, JAX, anything with ``__array__`` / ``__dlpack__``) as
inputs of the numpy API: used without a copy, outputs wrapped by torch without a copy,
clear errors for what cannot be used in place."""

import numpy as np
import pytest

import lograd_fast as lf

torch = pytest.importorskip("torch")


class DLPackOnly:
    """An array-like that offers nothing but DLPack (like some framework tensors)."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, **kwargs):
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


class FakeGPUArray:
    """Looks like a CuPy / numba device array (``__cuda_array_interface__``)."""

    __cuda_array_interface__ = {"shape": (3,), "typestr": "<f8", "data": (0, False),
                                "version": 3}
    shape = (3,)
    dtype = np.dtype(np.float64)


def test_torch_x_is_not_copied():
    d = lf.Normal(np.zeros(4), np.zeros(4))
    t = torch.randn(8, 4, dtype=torch.float64)
    x, n = d._check_x(t)  # the array the kernels read
    assert n == 8 and np.shares_memory(x, t.numpy())
    assert x.ctypes.data == t.data_ptr()
    np.testing.assert_array_equal(d.log_prob(t), d.log_prob(t.numpy().copy()))
    s = d.score(t)
    np.testing.assert_array_equal(s["loc"], d.score(t.numpy().copy())["loc"])
    # discrete: int64 actions straight from torch
    c = lf.Categorical(np.zeros((5, 3)))
    a = torch.randint(0, 3, (7, 5))
    xa, _ = c._check_x(a)
    assert xa.ctypes.data == a.data_ptr()
    np.testing.assert_array_equal(c.log_prob(a), c.log_prob(a.numpy().copy()))


def test_dlpack_only_and_array_only_inputs_are_not_copied():
    d = lf.Normal(np.zeros(3), 0.0)
    base = np.random.default_rng(0).normal(size=(2, 3))
    x, _ = d._check_x(DLPackOnly(base))
    assert np.shares_memory(x, base)
    np.testing.assert_array_equal(d.log_prob(DLPackOnly(base)), d.log_prob(base))

    class ArrayOnly:
        def __array__(self, dtype=None, copy=None):
            return base

    x, _ = d._check_x(ArrayOnly())
    assert np.shares_memory(x, base)


def test_jax_x_is_not_copied():
    jnp = pytest.importorskip("jax.numpy")
    d = lf.Normal(np.zeros(3, np.float32), np.zeros(3, np.float32))
    jx = jnp.arange(6.0, dtype=jnp.float32).reshape(2, 3)
    x, _ = d._check_x(jx)
    assert np.shares_memory(x, np.asarray(jx))
    np.testing.assert_array_equal(d.log_prob(jx), d.log_prob(np.asarray(jx).copy()))
    # JAX's default int32 actions are accepted by a discrete family (converted)
    c = lf.Categorical(np.zeros((2, 3)))
    np.testing.assert_array_equal(c.log_prob(jnp.array([0, 2], dtype=jnp.int32)),
                                  c.log_prob(np.array([0, 2])))


def test_outputs_are_wrapped_by_torch_without_a_copy():
    d = lf.Categorical(np.random.default_rng(1).normal(size=(64, 6)))
    x, lp, s = d.sample_and_score(None, seed=1)
    for arr in (x, lp, s["logits"], d.log_prob(x), d.sample(4, seed=2), d.score(x)["logits"]):
        assert isinstance(arr, np.ndarray) and arr.flags.c_contiguous and arr.flags.writeable
        t = torch.from_numpy(arr)
        assert t.data_ptr() == arr.ctypes.data
    # and a torch buffer can be the output
    buf = torch.empty(64, dtype=torch.float64)
    d.log_prob(x, out=buf.numpy())
    torch.testing.assert_close(buf, torch.from_numpy(d.log_prob(x)))


def test_torch_parameters():
    loc = torch.linspace(-1, 1, 5, dtype=torch.float32)
    d = lf.Normal(loc, torch.zeros(5, dtype=torch.float32))
    assert d.dtype == np.float32
    np.testing.assert_array_equal(d.mean, loc.numpy())
    c = lf.Categorical(torch.zeros(2, 3, dtype=torch.float64))
    assert c.probs.shape == (2, 3)


def test_non_contiguous_tensors_are_handled():
    d = lf.Normal(np.zeros(3), np.zeros(3))
    t = torch.randn(3, 6, dtype=torch.float64).T  # (6, 3), strided
    assert not t.is_contiguous()
    np.testing.assert_array_equal(d.log_prob(t), d.log_prob(t.contiguous().numpy()))
    np.testing.assert_array_equal(d.score(t)["log_scale"],
                                  d.score(t.contiguous().numpy())["log_scale"])


def test_requires_grad_is_a_clear_error():
    d = lf.Normal(np.zeros(3), 0.0)
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(TypeError, match=r"x is a tensor that requires grad.*x\.detach\(\)"):
        d.log_prob(x)
    with pytest.raises(TypeError, match="x is a tensor that requires grad"):
        d.score(x)
    with pytest.raises(TypeError, match="loc is a tensor that requires grad"):
        lf.Normal(torch.zeros(3, requires_grad=True), 0.0)
    # detaching is the caller's decision, and then it works without a copy
    assert d.log_prob(x.detach()).shape == (3,)


def test_dtype_mismatch_of_a_tensor_is_a_clear_error():
    d = lf.Normal(np.zeros(3), 0.0)  # float64
    with pytest.raises(TypeError, match="x has dtype float32.*float64"):
        d.log_prob(torch.zeros(3, dtype=torch.float32))
    with pytest.raises(TypeError, match="x has dtype int64"):
        d.log_prob(torch.zeros(3, dtype=torch.int64))
    with pytest.raises(TypeError, match="x"):
        d.log_prob(torch.zeros(3, dtype=torch.bfloat16))
    with pytest.raises(TypeError, match="x must have a real numeric dtype"):
        d.log_prob(torch.zeros(3, dtype=torch.complex128))
    with pytest.raises(TypeError, match="loc"):
        lf.Normal(torch.zeros(3, dtype=torch.bfloat16), 0.0)
    # numpy inputs keep numpy's conversions (lists, scalars, other float widths)
    assert d.log_prob(np.zeros(3, np.float32)).dtype == np.float64
    assert d.log_prob([0.0, 1.0, 2.0]).shape == (3,)


def test_gpu_arrays_on_the_cpu_backend_are_a_clear_error():
    d = lf.Normal(np.zeros(3), 0.0)
    with pytest.raises(TypeError, match="x is a GPU array"):
        d.log_prob(FakeGPUArray())
    with pytest.raises(TypeError, match="x"):
        d.log_prob(torch.zeros(3, dtype=torch.float64, device="meta"))


def test_torch_inputs_to_the_estimators():
    d = lf.Normal(np.zeros(2), np.zeros(2))
    x = torch.from_numpy(d.sample(50, seed=3))
    r = (x ** 2).sum(dim=1)
    est = lf.score_function(d, rewards=r.numpy(), x=x, baseline="loo")
    ref = lf.score_function(d, rewards=r.numpy(), x=x.numpy(), baseline="loo")
    np.testing.assert_array_equal(est.grad["loc"], ref.grad["loc"])
    rl = lf.policy_gradient(lf.Categorical(np.zeros(3)), torch.zeros(2, 4, dtype=torch.int64),
                            torch.ones(2, 4, dtype=torch.float64), gamma=0.9)
    assert rl.grad["logits"].shape == (3,)
