"""The torch adapter: log_prob / entropy with closed-form backward, checked with
``torch.autograd.gradcheck`` (float64) and against ``torch.distributions`` + autograd
(to 1e-10), and a policy network's loss backpropagating through it."""

import math

import pytest

import lograd_fast as lf

torch = pytest.importorskip("torch")
lft = pytest.importorskip("lograd_fast.torch")
D = torch.distributions
TOL = dict(rtol=1e-10, atol=1e-10)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def f64(*shape, scale=1.0):
    return (scale * torch.randn(*shape, dtype=torch.float64)).requires_grad_()


def grads(out, inputs):
    """Gradients of a non-linear function of ``out`` (exercises every grad_out entry)."""
    got = torch.autograd.grad((torch.sin(out) * torch.arange(out.numel()).reshape(
        out.shape)).sum(), inputs, allow_unused=True)
    return [torch.zeros_like(i) if g is None else g for g, i in zip(got, inputs)]


def assert_same_grads(ours, ref, inputs):
    torch.testing.assert_close(ours, ref, **TOL)
    for a, b in zip(grads(ours, inputs), grads(ref, inputs)):
        torch.testing.assert_close(a, b, **TOL)


# ============================================================================ Normal
@pytest.mark.parametrize("event_ndims", [0, 1])
@pytest.mark.parametrize("sample_shape", [(), (5,), (2, 3)])
def test_normal_log_prob(event_ndims, sample_shape):
    loc, log_scale = f64(4, 3), f64(3, scale=0.5)  # broadcast: log_scale shared by rows
    x = torch.randn(*sample_shape, 4, 3, dtype=torch.float64)
    ours = lft.Normal(loc, log_scale, event_ndims=event_ndims).log_prob(x)
    ref = D.Normal(loc, log_scale.exp()).log_prob(x)
    ref = ref.sum(-1) if event_ndims else ref
    assert ours.shape == ref.shape
    assert_same_grads(ours, ref, (loc, log_scale))
    assert torch.autograd.gradcheck(
        lambda m, s: lft.Normal(m, s, event_ndims=event_ndims).log_prob(x), (loc, log_scale))


def test_normal_entropy_and_properties():
    loc, log_scale = f64(4, 3), f64(4, 1, scale=0.5)
    for ev in (0, 1):
        ours = lft.Normal(loc, log_scale, event_ndims=ev).entropy()
        ref = D.Normal(loc, log_scale.exp()).entropy()
        ref = ref.sum(-1) if ev else ref
        assert_same_grads(ours, ref, (loc, log_scale))
        assert torch.autograd.gradcheck(
            lambda m, s, ev=ev: lft.Normal(m, s, event_ndims=ev).entropy(), (loc, log_scale))
    d = lft.Normal(loc, log_scale)
    torch.testing.assert_close(d.mode, loc)
    torch.testing.assert_close(d.stddev, log_scale.exp().expand(4, 3))
    assert d.batch_shape == torch.Size([4, 3]) and d.event_shape == torch.Size([])
    d1 = lft.Normal(loc, log_scale, event_ndims=1)
    assert d1.batch_shape == torch.Size([4]) and d1.event_shape == torch.Size([3])


# ============================================================================ Categorical
@pytest.mark.parametrize("sample_shape", [(), (6,), (2, 3)])
def test_categorical_log_prob(sample_shape):
    logits = f64(5, 4)
    x = torch.randint(0, 4, (*sample_shape, 5))
    ours = lft.Categorical(logits=logits).log_prob(x)
    ref = D.Categorical(logits=logits).log_prob(x)
    assert_same_grads(ours, ref, (logits,))
    assert torch.autograd.gradcheck(lambda z: lft.Categorical(logits=z).log_prob(x), (logits,))


def test_categorical_masked_and_probs():
    logits = f64(3, 4)
    mask = torch.tensor([[True, False, True, True], [True, True, True, True],
                         [False, False, True, True]])
    x = torch.tensor([[0, 1, 2], [3, 0, 3]])
    ours = lft.Categorical(logits=logits, mask=mask)
    ref = D.Categorical(logits=logits.masked_fill(~mask, -math.inf))
    assert_same_grads(ours.log_prob(x), ref.log_prob(x), (logits,))
    # entropy: masked classes contribute exactly 0 (and their gradient is 0)
    ent = ours.entropy()
    g, = torch.autograd.grad(ent.sum(), logits)
    assert (g[~mask] == 0).all()
    p = torch.softmax(logits.masked_fill(~mask, -math.inf), -1)
    ref_ent = -(p * torch.where(mask, torch.log_softmax(
        logits.masked_fill(~mask, -math.inf), -1), torch.zeros_like(p))).sum(-1)
    assert_same_grads(ent, ref_ent, (logits,))
    torch.testing.assert_close(ours.probs, p, **TOL)
    assert (ours.mode == torch.argmax(p, -1)).all()
    # probs parametrisation: the gradient flows through log(probs)
    probs = torch.softmax(f64(3, 4), -1).detach().requires_grad_()
    assert_same_grads(lft.Categorical(probs=probs).log_prob(x),
                      D.Categorical(probs=probs).log_prob(x), (probs,))


def test_categorical_entropy():
    logits = f64(2, 3, 5)
    assert_same_grads(lft.Categorical(logits=logits).entropy(),
                      D.Categorical(logits=logits).entropy(), (logits,))
    assert torch.autograd.gradcheck(lambda z: lft.Categorical(logits=z).entropy(), (logits,))


# ============================================================================ TanhNormal
def test_tanh_normal_log_prob():
    loc, log_scale = f64(6, 2), f64(2, scale=0.3)
    base = torch.randn(3, 6, 2, dtype=torch.float64) * 0.8
    x = torch.tanh(base)
    ours = lft.TanhNormal(loc, log_scale, event_ndims=1).log_prob(x)
    ref = D.TransformedDistribution(D.Normal(loc, log_scale.exp()),
                                    [D.TanhTransform()]).log_prob(x).sum(-1)
    assert_same_grads(ours, ref, (loc, log_scale))
    assert torch.autograd.gradcheck(
        lambda m, s: lft.TanhNormal(m, s, event_ndims=1).log_prob(x), (loc, log_scale))
    d = lft.TanhNormal(loc, log_scale)
    torch.testing.assert_close(d.mode, torch.tanh(loc))
    a = d.sample((100,), seed=1)
    assert a.shape == (100, 6, 2) and (a.abs() < 1).all()
    with pytest.raises(NotImplementedError, match="entropy"):
        d.entropy().sum().backward()


# ============================================================================ a policy
def test_policy_network_loss_backpropagates_like_torch_distributions():
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    net = net.double()
    obs = torch.randn(32, 4, dtype=torch.float64)
    adv = torch.randn(32, dtype=torch.float64)

    def loss(dist_cls):
        net.zero_grad()
        logits = net(obs)
        dist = dist_cls(logits=logits)
        actions = torch.arange(32) % 3
        value = -(adv * dist.log_prob(actions)).mean() - 0.01 * dist.entropy().mean()
        value.backward()
        return value.detach(), [p.grad.clone() for p in net.parameters()]

    ours, g_ours = loss(lft.Categorical)
    ref, g_ref = loss(D.Categorical)
    torch.testing.assert_close(ours, ref, **TOL)
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b, **TOL)

    # a Gaussian policy with a state-independent log_std, as in PPO
    head = torch.nn.Linear(4, 2).double()
    log_std = torch.nn.Parameter(torch.full((2,), -0.5, dtype=torch.float64))
    actions = torch.randn(32, 2, dtype=torch.float64)

    def gauss(make):
        head.zero_grad()
        log_std.grad = None
        lp = make(head(obs), log_std).log_prob(actions)
        (-(adv * lp).mean()).backward()
        return [p.grad.clone() for p in (*head.parameters(), log_std)]

    g1 = gauss(lambda m, s: lft.Normal(m, s, event_ndims=1))
    g2 = gauss(lambda m, s: D.Independent(D.Normal(m, s.exp()), 1))
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, **TOL)


# ============================================================================ sampling
def test_sample_shapes_seeds_and_frequencies():
    logits = torch.tensor([[0.0, 1.0, -1.0], [2.0, 0.0, 0.0]], dtype=torch.float64)
    d = lft.Categorical(logits=logits)
    assert d.sample().shape == (2,) and d.sample().dtype == torch.int64
    assert d.sample((4, 5)).shape == (4, 5, 2)
    torch.manual_seed(7)
    a = d.sample((10,))
    torch.manual_seed(7)
    assert torch.equal(a, d.sample((10,)))  # torch.manual_seed makes it reproducible
    assert torch.equal(d.sample((10,), seed=3), d.sample((10,), seed=3))
    n = 20000
    x = d.sample((n,), seed=11)
    freq = torch.stack([(x == k).double().mean(0) for k in range(3)], -1)
    p = torch.softmax(logits, -1)
    se = torch.sqrt(p * (1 - p) / n)
    assert ((freq - p).abs() < 5 * se).all()
    # the fused pass gives the same samples and log-probs, and backpropagates
    z = logits.clone().requires_grad_()
    dz = lft.Categorical(logits=z)
    x2, lp2 = dz.sample_and_log_prob((3,), seed=5)
    assert torch.equal(x2, dz.sample((3,), seed=5))
    assert_same_grads(lp2, D.Categorical(logits=z).log_prob(x2), (z,))
    xn, lpn = lft.Normal(torch.zeros(2, dtype=torch.float64), f64(2)).sample_and_log_prob()
    assert xn.shape == (2,) and lpn.shape == (2,) and lpn.requires_grad


def test_float32_stays_float32_and_outputs_share_memory():
    loc = torch.zeros(3, requires_grad=True)
    d = lft.Normal(loc, torch.zeros(3))
    x = d.sample((2,))
    lp = d.log_prob(x)
    assert x.dtype == lp.dtype == torch.float32
    lp.sum().backward()
    assert loc.grad.dtype == torch.float32
    # the sample tensor wraps lograd_fast's output array
    arr = d._lf.sample(2, seed=1)
    assert torch.from_numpy(arr).data_ptr() == arr.ctypes.data


def test_functional_log_prob():
    loc, log_scale = f64(3), f64(3)
    x = torch.randn(4, 3, dtype=torch.float64)
    assert_same_grads(lft.log_prob(lf.Normal, x, loc=loc, log_scale=log_scale),
                      D.Normal(loc, log_scale.exp()).log_prob(x), (loc, log_scale))
    with pytest.raises(TypeError, match="log_scale"):
        lft.log_prob(lf.Normal, x, loc=loc)


def test_bad_input():
    loc = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(TypeError, match="log_scale has dtype torch.float32"):
        lft.Normal(loc, torch.zeros(3, dtype=torch.float32))
    with pytest.raises(ValueError, match="log_scale is on meta"):
        lft.Normal(loc, torch.zeros(3, dtype=torch.float64, device="meta"))
    with pytest.raises(TypeError, match="logits must be a float32 or float64"):
        lft.Categorical(logits=torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="exactly one"):
        lft.Categorical()
    d = lft.Normal(loc, loc)
    with pytest.raises(TypeError, match="value requires grad"):
        d.log_prob(torch.zeros(3, dtype=torch.float64, requires_grad=True))
    with pytest.raises(ValueError, match="value has shape"):
        d.log_prob(torch.zeros(4, dtype=torch.float64))
    with pytest.raises(TypeError, match="value has dtype torch.float32"):
        d.log_prob(torch.zeros(3, dtype=torch.float32))
    with pytest.raises(TypeError, match="integer class indices"):
        lft.Categorical(logits=loc).log_prob(torch.zeros((), dtype=torch.float64))
    with pytest.raises(TypeError, match="mask must be a bool"):
        lft.Categorical(logits=torch.zeros(3), mask=torch.ones(3))
    with pytest.raises(ValueError, match="sample_shape"):
        d.sample((0,))
    # numbers next to tensors follow the tensors' dtype
    assert lft.Normal(loc, 0.0).log_prob(loc).dtype == torch.float64
