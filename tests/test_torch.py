"""The torch adapter against ``torch.distributions`` + autograd (values and first and
second derivatives to 1e-10 in float64), under ``torch.compile`` (fullgraph) and the
``torch.func`` transforms, every drop-in attribute, and the operator registrations
(``torch.library.opcheck``)."""

import math
import warnings

import numpy as np
import pytest

import lograd_fast as lf

torch = pytest.importorskip("torch")
lft = pytest.importorskip("lograd_fast.torch")
D = torch.distributions
TOL = dict(rtol=1e-10, atol=1e-10)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def f64(*shape, scale=1.0, shift=0.0):
    return (scale * torch.randn(*shape, dtype=torch.float64) + shift).requires_grad_()


def grads(out, inputs, create_graph=False):
    """Gradients of a non-linear function of ``out`` (exercises every grad_out entry)."""
    got = torch.autograd.grad((torch.sin(out) * torch.arange(out.numel()).reshape(
        out.shape)).sum(), inputs, allow_unused=True, create_graph=create_graph)
    return [torch.zeros_like(i) if g is None else g for g, i in zip(got, inputs)]


def assert_same_grads(ours, ref, inputs):
    torch.testing.assert_close(ours, ref, **TOL)
    for a, b in zip(grads(ours, inputs), grads(ref, inputs)):
        torch.testing.assert_close(a, b, **TOL)


def hessian_vector(out, inputs, vs):
    """``d/d inputs <d out.sum() / d inputs, v>`` (second derivatives, any structure)."""
    first = torch.autograd.grad(out.sum(), inputs, create_graph=True)
    dot = sum((g * v).sum() for g, v in zip(first, vs))
    return torch.autograd.grad(dot, inputs)


def assert_same_second(ours, ref, inputs):
    vs = [torch.randn_like(i) for i in inputs]
    for a, b in zip(hessian_vector(ours, inputs, vs), hessian_vector(ref, inputs, vs)):
        torch.testing.assert_close(a, b, **TOL)


# ============================================================================ Normal
@pytest.mark.parametrize("event_ndims", [0, 1])
@pytest.mark.parametrize("sample_shape", [(), (5,), (2, 3)])
def test_normal_log_prob_scale_and_log_scale(event_ndims, sample_shape):
    loc, log_scale = f64(4, 3), f64(3, scale=0.5)  # broadcast: log_scale shared by rows
    scale = log_scale.exp().detach().requires_grad_()
    x = torch.randn(*sample_shape, 4, 3, dtype=torch.float64)

    def ref(s):
        lp = D.Normal(loc, s).log_prob(x)
        return lp.sum(-1) if event_ndims else lp

    # torch's signature: the positional second argument is the scale
    ours = lft.Normal(loc, scale, event_ndims=event_ndims).log_prob(x)
    assert ours.shape == ref(scale).shape
    assert_same_grads(ours, ref(scale), (loc, scale))
    assert_same_second(lft.Normal(loc, scale, event_ndims=event_ndims).log_prob(x),
                       ref(scale), (loc, scale))
    # the unconstrained form: gradients go to log_scale
    ours = lft.Normal(loc, log_scale=log_scale, event_ndims=event_ndims).log_prob(x)
    assert_same_grads(ours, ref(log_scale.exp()), (loc, log_scale))
    assert_same_second(lft.Normal(loc, log_scale=log_scale, event_ndims=event_ndims)
                       .log_prob(x), ref(log_scale.exp()), (loc, log_scale))
    assert torch.autograd.gradcheck(
        lambda m, s: lft.Normal(m, s, event_ndims=event_ndims).log_prob(x), (loc, scale))
    assert torch.autograd.gradgradcheck(
        lambda m, s: lft.Normal(m, log_scale=s, event_ndims=event_ndims).log_prob(x),
        (loc, log_scale))


def test_normal_signature_is_torchs():
    loc = torch.zeros(2, dtype=torch.float64)
    d = lft.Normal(loc, torch.full((2,), 2.0, dtype=torch.float64))
    torch.testing.assert_close(d.stddev, torch.full((2,), 2.0, dtype=torch.float64))
    torch.testing.assert_close(d.log_prob(loc), D.Normal(loc, 2.0).log_prob(loc))
    d = lft.Normal(loc, scale=torch.ones(2, dtype=torch.float64))
    assert d.scale.eq(1).all()
    with pytest.raises(TypeError, match="exactly one of scale"):
        lft.Normal(loc)
    with pytest.raises(TypeError, match="exactly one of scale"):
        lft.Normal(loc, 1.0, log_scale=0.0)
    with pytest.raises(ValueError, match="scale must be positive"):
        lft.Normal(loc, torch.tensor([1.0, -1.0], dtype=torch.float64)).log_prob(loc)


def test_hessian_vector_product_is_not_silently_zero():
    """The issue's example: HVP of log_prob(a).sum() + 0.5 * (z**2).sum()."""
    z = f64(6)
    a = torch.randn(6, dtype=torch.float64)
    v = torch.randn(6, dtype=torch.float64)

    def hvp(make):
        out = make(z).log_prob(a).sum() + 0.5 * (z**2).sum()
        (g,) = torch.autograd.grad(out, z, create_graph=True)
        return torch.autograd.grad((g * v).sum(), z)[0]

    for ours, ref in ((lambda t: lft.Normal(t, 1.0), lambda t: D.Normal(t, 1.0)),
                      (lambda t: lft.Normal(0.0, log_scale=t), lambda t: D.Normal(0.0, t.exp())),
                      (lambda t: lft.Normal(t, t.exp()), lambda t: D.Normal(t, t.exp()))):
        got = hvp(ours)
        torch.testing.assert_close(got, hvp(ref), **TOL)
        assert not torch.allclose(got, v)  # the silent-zero answer would be v


def test_normal_entropy_cdf_icdf_rsample_and_properties():
    loc, scale = f64(4, 3), f64(4, 1, scale=0.2, shift=1.0)
    for ev in (0, 1):
        ours = lft.Normal(loc, scale, event_ndims=ev).entropy()
        ref = D.Normal(loc, scale).entropy()
        ref = ref.sum(-1) if ev else ref
        assert_same_grads(ours, ref, (loc, scale))
        torch.testing.assert_close(lft.Normal(loc, scale, event_ndims=ev).perplexity(),
                                   ref.exp(), **TOL)
    x = torch.randn(5, 4, 3, dtype=torch.float64)
    assert_same_grads(lft.Normal(loc, scale).cdf(x), D.Normal(loc, scale).cdf(x), (loc, scale))
    u = torch.rand(4, 3, dtype=torch.float64)
    assert_same_grads(lft.Normal(loc, scale).icdf(u), D.Normal(loc, scale).icdf(u),
                      (loc, scale))
    d = lft.Normal(loc, scale)
    torch.testing.assert_close(d.mode, loc)
    torch.testing.assert_close(d.mean, loc)
    torch.testing.assert_close(d.stddev, scale.expand(4, 3))
    torch.testing.assert_close(d.variance, scale.expand(4, 3) ** 2)
    assert d.batch_shape == torch.Size([4, 3]) and d.event_shape == torch.Size([])
    d1 = lft.Normal(loc, scale, event_ndims=1)
    assert d1.batch_shape == torch.Size([4]) and d1.event_shape == torch.Size([3])
    # rsample: pathwise, x = loc + scale * eps with the draws of sample()
    r = d.rsample((7,), seed=3)
    assert r.shape == (7, 4, 3) and r.requires_grad
    eps = (r - loc) / scale
    gl, gs = torch.autograd.grad(r.sum(), (loc, scale))
    torch.testing.assert_close(gl, torch.full_like(loc, 7.0))
    torch.testing.assert_close(gs, eps.detach().sum((0, 2)).reshape(4, 1), **TOL)
    torch.testing.assert_close(r.detach(), d.sample((7,), seed=3), rtol=1e-12, atol=1e-12)
    # SAC: log_prob of an rsample backpropagates through the value too
    ls = f64(3, scale=0.3)
    for ours, ref in ((lft.Normal, D.Normal),
                      (lft.TanhNormal, lambda m, s: D.TransformedDistribution(
                          D.Normal(m, s), [D.TanhTransform()]))):
        torch.manual_seed(1)
        e = torch.randn(2, 4, 3, dtype=torch.float64)
        a_ours = loc + ls.exp() * e
        a_ref = loc + ls.exp() * e
        if ours is lft.TanhNormal:
            a_ours, a_ref = torch.tanh(a_ours), torch.tanh(a_ref)
        assert_same_grads(ours(loc, ls.exp()).log_prob(a_ours), ref(loc, ls.exp()).log_prob(a_ref),
                          (loc, ls))


# ============================================================================ Categorical
@pytest.mark.parametrize("sample_shape", [(), (6,), (2, 3)])
def test_categorical_log_prob_first_and_second_derivatives(sample_shape):
    logits = f64(5, 4)
    x = torch.randint(0, 4, (*sample_shape, 5))
    ours = lft.Categorical(logits=logits).log_prob(x)
    ref = D.Categorical(logits=logits).log_prob(x)
    assert_same_grads(ours, ref, (logits,))
    assert_same_second(lft.Categorical(logits=logits).log_prob(x),
                       D.Categorical(logits=logits).log_prob(x), (logits,))
    assert torch.autograd.gradcheck(lambda z: lft.Categorical(logits=z).log_prob(x), (logits,))
    assert torch.autograd.gradgradcheck(lambda z: lft.Categorical(logits=z).log_prob(x),
                                        (logits,))


def test_categorical_masked_probs_and_entropy():
    logits = f64(3, 4)
    mask = torch.tensor([[True, False, True, True], [True, True, True, True],
                         [False, False, True, True]])
    x = torch.tensor([[0, 1, 2], [3, 0, 3]])
    ours = lft.Categorical(logits=logits, mask=mask)
    ref = D.Categorical(logits=logits.masked_fill(~mask, -math.inf))
    assert_same_grads(ours.log_prob(x), ref.log_prob(x), (logits,))
    (g,) = torch.autograd.grad(ours.entropy().sum(), logits)
    assert (g[~mask] == 0).all()
    def ref_entropy():
        z = logits.masked_fill(~mask, -math.inf)
        return -(torch.softmax(z, -1) * torch.where(mask, torch.log_softmax(z, -1),
                                                    torch.zeros_like(z))).sum(-1)

    assert_same_grads(ours.entropy(), ref_entropy(), (logits,))
    assert_same_second(lft.Categorical(logits=logits, mask=mask).entropy(), ref_entropy(),
                       (logits,))
    p = torch.softmax(logits.masked_fill(~mask, -math.inf), -1)
    torch.testing.assert_close(ours.probs, p, **TOL)
    torch.testing.assert_close(ours.logits, ref.logits, **TOL)
    assert (ours.mode == torch.argmax(p, -1)).all()
    # probs parametrisation: normalised, the gradient flows through the log
    probs = torch.softmax(f64(3, 4), -1).detach().mul(3.0).requires_grad_()
    assert_same_grads(lft.Categorical(probs=probs).log_prob(x),
                      D.Categorical(probs=probs).log_prob(x), (probs,))


def test_categorical_log_prob_then_entropy_of_one_distribution():
    """PPO's loss takes ``log_prob(a)`` and ``entropy()`` of one distribution (sharing
    its cached lograd_fast distribution): the loss, either term alone, first and second
    derivatives equal torch's; an entropy under no_grad, or after an in-place change of
    the logits, is computed afresh."""
    logits = f64(5, 4)
    a = torch.randint(0, 4, (5,))
    adv = torch.randn(5, dtype=torch.float64)

    def loss(lib):
        d = lib.Categorical(logits=logits)
        return -(adv * d.log_prob(a)).mean() - 0.01 * d.entropy().mean()

    assert_same_grads(loss(lft), loss(D), (logits,))
    assert_same_second(loss(lft), loss(D), (logits,))
    d = lft.Categorical(logits=logits)
    d.log_prob(a)  # unused: only the entropy gets a gradient
    assert_same_grads(d.entropy(), D.Categorical(logits=logits).entropy(), (logits,))
    d = lft.Categorical(logits=logits)
    lp = d.log_prob(a)  # its entropy never asked for
    assert_same_grads(lp, D.Categorical(logits=logits).log_prob(a), (logits,))
    d.log_prob(a)
    with torch.no_grad():
        e = d.entropy()
    assert not e.requires_grad
    torch.testing.assert_close(e, D.Categorical(logits=logits).entropy(), **TOL)
    z = logits.detach().clone().requires_grad_()
    w = z * 1.0
    d = lft.Categorical(logits=w)
    d.log_prob(a)
    with torch.no_grad():
        w.add_(1.0).mul_(torch.linspace(0.5, 2.0, 4, dtype=torch.float64))
    torch.testing.assert_close(d.entropy(), D.Categorical(logits=w).entropy(), **TOL)


def test_categorical_entropy_and_attributes():
    logits = f64(2, 3, 5)
    assert_same_grads(lft.Categorical(logits=logits).entropy(),
                      D.Categorical(logits=logits).entropy(), (logits,))
    assert_same_second(lft.Categorical(logits=logits).entropy(),
                       D.Categorical(logits=logits).entropy(), (logits,))
    ours, ref = lft.Categorical(logits=logits), D.Categorical(logits=logits)
    assert isinstance(ours, D.Distribution)
    assert ours.batch_shape == ref.batch_shape and ours.event_shape == ref.event_shape
    assert ours.param_shape == ref.param_shape
    assert torch.equal(ours.enumerate_support(), ref.enumerate_support())
    assert torch.equal(ours.enumerate_support(False), ref.enumerate_support(False))
    assert ours.support.upper_bound == 4 and ours.support.is_discrete
    assert ours.has_enumerate_support and not ours.has_rsample
    assert set(ours.arg_constraints) == set(ref.arg_constraints)
    assert torch.isnan(ours.mean).all() and ours.mean.shape == ref.mean.shape
    assert torch.isnan(ours.variance).all()
    torch.testing.assert_close(ours.perplexity(), ref.perplexity(), **TOL)
    e = ours.expand((4, 2, 3))
    assert e.batch_shape == (4, 2, 3)
    x = torch.randint(0, 5, (4, 2, 3))
    torch.testing.assert_close(e.log_prob(x), ref.expand((4, 2, 3)).log_prob(x), **TOL)
    # torch's casting: float actions holding integers are class indices
    xf = x.double()
    torch.testing.assert_close(e.log_prob(xf), e.log_prob(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="integer class indices"):
        e.log_prob(xf + 0.5)
    with pytest.raises(NotImplementedError):
        ours.rsample()


def test_kl_divergence_is_registered_with_closed_form_gradients():
    loc_p, loc_q = f64(3), f64(3)
    s_p, s_q = f64(3, scale=0.2, shift=1.0), f64(3, scale=0.2, shift=1.0)
    kl = D.kl_divergence(lft.Normal(loc_p, s_p), lft.Normal(loc_q, s_q))
    ref = D.kl_divergence(D.Normal(loc_p, s_p), D.Normal(loc_q, s_q))
    assert_same_grads(kl, ref, (loc_p, loc_q, s_p, s_q))
    ref = D.kl_divergence(D.Normal(loc_p, s_p), D.Normal(loc_q, s_q))
    assert_same_second(D.kl_divergence(lft.Normal(loc_p, s_p), lft.Normal(loc_q, s_q)), ref,
                       (loc_p, loc_q, s_p, s_q))
    # mixed with torch's own classes
    torch.testing.assert_close(D.kl_divergence(lft.Normal(loc_p, s_p), D.Normal(loc_q, s_q)),
                               ref, **TOL)
    torch.testing.assert_close(D.kl_divergence(D.Normal(loc_p, s_p), lft.Normal(loc_q, s_q)),
                               ref, **TOL)
    lp, lq = f64(2, 4), f64(2, 4)
    kl = D.kl_divergence(lft.Categorical(logits=lp), lft.Categorical(logits=lq))
    ref = D.kl_divergence(D.Categorical(logits=lp), D.Categorical(logits=lq))
    assert_same_grads(kl, ref, (lp, lq))
    ref = D.kl_divergence(D.Categorical(logits=lp), D.Categorical(logits=lq))
    assert_same_second(D.kl_divergence(lft.Categorical(logits=lp), lft.Categorical(logits=lq)),
                       ref, (lp, lq))
    assert (D.kl_divergence(lft.Categorical(logits=lp), lft.Categorical(logits=lp)) == 0).all()
    # tanh is invertible: KL of the squashed = KL of the Gaussians
    torch.testing.assert_close(
        D.kl_divergence(lft.TanhNormal(loc_p, s_p), lft.TanhNormal(loc_q, s_q)),
        D.kl_divergence(D.Normal(loc_p, s_p), D.Normal(loc_q, s_q)), **TOL)


# ============================================================================ TanhNormal
def test_tanh_normal():
    loc, log_scale = f64(6, 2), f64(2, scale=0.3)
    base = torch.randn(3, 6, 2, dtype=torch.float64) * 0.8
    x = torch.tanh(base)

    def ref(m, s):
        return D.TransformedDistribution(D.Normal(m, s.exp()), [D.TanhTransform()]) \
            .log_prob(x).sum(-1)

    ours = lft.TanhNormal(loc, log_scale=log_scale, event_ndims=1).log_prob(x)
    assert_same_grads(ours, ref(loc, log_scale), (loc, log_scale))
    assert_same_second(lft.TanhNormal(loc, log_scale=log_scale, event_ndims=1).log_prob(x),
                       ref(loc, log_scale), (loc, log_scale))
    d = lft.TanhNormal(loc, log_scale.exp())
    torch.testing.assert_close(d.mode, torch.tanh(loc))
    a = d.sample((100,), seed=1)
    assert a.shape == (100, 6, 2) and (a.abs() < 1).all()
    assert isinstance(d.support, type(D.constraints.interval(-1.0, 1.0)))
    with pytest.raises(NotImplementedError, match="entropy"):  # at the call, not later
        d.entropy()
    r = d.rsample((4,))
    assert r.requires_grad and (r.abs() < 1).all()


# ============================================================================ compile, func
def _ppo_loss(make):
    def loss(logits, mean, log_std, a, u, adv, old_lp):
        cat = make[0](logits=logits)
        gauss = make[1](mean, log_std.exp())
        ratio = torch.exp(cat.log_prob(a) + gauss.log_prob(u).sum(-1) - old_lp)
        clipped = torch.clamp(ratio, 0.8, 1.2)
        return -(torch.min(ratio * adv, clipped * adv)).mean() \
            - 0.01 * (cat.entropy() + gauss.entropy().sum(-1)).mean()

    return loss


def _ppo_inputs(B=16):
    g = torch.Generator().manual_seed(2)
    f = dict(dtype=torch.float64, generator=g)
    return (torch.randn(B, 4, **f).requires_grad_(), torch.randn(B, 2, **f).requires_grad_(),
            torch.zeros(2, dtype=torch.float64).requires_grad_(), torch.randint(0, 4, (B,)),
            torch.randn(B, 2, **f), torch.randn(B, **f), torch.randn(B, **f) - 2.0)


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor",
                                                                marks=pytest.mark.slow)])
def test_torch_compile_fullgraph_matches_eager(backend):
    inputs = _ppo_inputs()
    eager = _ppo_loss((lft.Categorical, lft.Normal))
    ref = _ppo_loss((D.Categorical, D.Normal))
    compiled = torch.compile(eager, fullgraph=True, backend=backend)
    params = inputs[:3]
    got = torch.autograd.grad(compiled(*inputs), params)
    want = torch.autograd.grad(eager(*inputs), params)
    for a, b, c in zip(got, want, torch.autograd.grad(ref(*inputs), params)):
        torch.testing.assert_close(a, b, **TOL)
        torch.testing.assert_close(a, c, **TOL)


def test_torch_func_grad_vmap_jacrev():
    func = torch.func
    logits = torch.randn(5, 3, dtype=torch.float64)
    a = torch.randint(0, 3, (5,))
    loc, scale = torch.randn(5, dtype=torch.float64), torch.rand(5, dtype=torch.float64) + 0.5
    x = torch.randn(5, dtype=torch.float64)
    cases = [
        (lambda z: lft.Categorical(logits=z).log_prob(a), lambda z: D.Categorical(logits=z)
         .log_prob(a), logits),
        (lambda z: lft.Normal(z, scale).log_prob(x), lambda z: D.Normal(z, scale).log_prob(x),
         loc),
        (lambda z: lft.Categorical(logits=z).entropy(),
         lambda z: D.Categorical(logits=z).entropy(), logits),
    ]
    for ours, ref, arg in cases:
        torch.testing.assert_close(func.grad(lambda z, f=ours: f(z).sum())(arg),
                                   func.grad(lambda z, f=ref: f(z).sum())(arg), **TOL)
        torch.testing.assert_close(func.jacrev(ours)(arg), func.jacrev(ref)(arg), **TOL)
        torch.testing.assert_close(func.vmap(ours)(arg.unsqueeze(1)) if arg.dim() == 1 else
                                   func.vmap(ours, in_dims=1, out_dims=1)(
                                       arg.unsqueeze(1).expand(5, 2, 3)),
                                   func.vmap(ref)(arg.unsqueeze(1)) if arg.dim() == 1 else
                                   func.vmap(ref, in_dims=1, out_dims=1)(
                                       arg.unsqueeze(1).expand(5, 2, 3)), **TOL)
    # per-sample gradients: vmap(grad(...))
    per = func.vmap(func.grad(lambda z, ai: lft.Categorical(logits=z).log_prob(ai)))(logits, a)
    want = func.vmap(func.grad(lambda z, ai: D.Categorical(logits=z).log_prob(ai)))(logits, a)
    torch.testing.assert_close(per, want, **TOL)
    # second derivatives through torch.func: the Hessian by reverse over reverse
    # (forward mode, jacfwd, has no closed-form rule here)
    torch.testing.assert_close(
        func.jacrev(func.jacrev(lambda z: lft.Categorical(logits=z).log_prob(a).sum()))(logits),
        func.jacrev(func.jacrev(lambda z: D.Categorical(logits=z).log_prob(a).sum()))(logits),
        **TOL)


@pytest.mark.parametrize("op", ["log_prob", "log_prob_score", "sample", "sample_score",
                                "entropy", "kl"])
def test_operators_pass_opcheck(op):
    loc = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    ls = torch.randn(2, dtype=torch.float64, requires_grad=True)
    logits = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    spec_n, spec_c = lft.Normal(loc, log_scale=ls)._spec, lft.Categorical(logits=logits)._spec
    seed = torch.tensor(5)
    args = {
        "log_prob": [(spec_n, torch.randn(2, 3, 2, dtype=torch.float64), [loc, ls], None),
                     (spec_c, torch.tensor([0, 3, 1]), [logits], None)],
        "log_prob_score": [(spec_n, torch.randn(3, 2, dtype=torch.float64), [loc, ls], None),
                           (spec_c, torch.tensor([[0, 3, 1]]), [logits],
                            torch.ones(4, dtype=torch.bool))],
        "sample": [(spec_c, [logits], None, [2], seed)],
        "sample_score": [(spec_n, [loc, ls], None, [2], seed), (spec_c, [logits], None, [], seed)],
        "entropy": [(spec_n, [loc, ls], None), (spec_c, [logits], None)],
        "kl": [(spec_n, [loc, ls], [loc.detach() + 1, ls.detach()], None, None),
               (spec_c, [logits], [logits.detach().flip(-1)], None, None)],
    }[op]
    for a in args:
        result = torch.library.opcheck(getattr(torch.ops.lograd_fast, op).default, a)
        assert set(result.values()) == {"SUCCESS"}, result


def test_no_closed_form_second_derivative_is_a_clear_error():
    conc, rate = f64(3, scale=0.1), f64(3, scale=0.1)
    x = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    lp = lft.log_prob(lf.Gamma, x, log_concentration=conc, log_rate=rate)
    ref = D.Gamma(conc.exp(), rate.exp()).log_prob(x)
    assert_same_grads(lp, ref, (conc, rate))  # first derivatives: closed-form scores
    lp = lft.log_prob(lf.Gamma, x, log_concentration=conc, log_rate=rate)
    (g,) = torch.autograd.grad(lp.sum(), conc, create_graph=True)
    with pytest.raises(NotImplementedError, match="second derivative of log_prob of "
                                                  "lograd_fast.Gamma"):
        torch.autograd.grad(g.sum(), conc)


# ============================================================================ a policy
def test_policy_network_loss_backpropagates_like_torch_distributions():
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    net = net.double()
    obs = torch.randn(32, 4, dtype=torch.float64)
    adv = torch.randn(32, dtype=torch.float64)

    def loss(dist_cls):
        net.zero_grad()
        dist = dist_cls(logits=net(obs))
        actions = torch.arange(32) % 3
        value = -(adv * dist.log_prob(actions)).mean() - 0.01 * dist.entropy().mean()
        value.backward()
        return value.detach(), [p.grad.clone() for p in net.parameters()]

    ours, g_ours = loss(lft.Categorical)
    ref, g_ref = loss(D.Categorical)
    torch.testing.assert_close(ours, ref, **TOL)
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b, **TOL)


# ============================================================================ sampling
def test_sample_shapes_seeds_frequencies_and_the_drawn_log_prob():
    logits = torch.tensor([[0.0, 1.0, -1.0], [2.0, 0.0, 0.0]], dtype=torch.float64)
    d = lft.Categorical(logits=logits)
    assert d.sample().shape == (2,) and d.sample().dtype == torch.int64
    assert d.sample((4, 5)).shape == (4, 5, 2)
    torch.manual_seed(7)
    a = d.sample((10,))
    torch.manual_seed(7)
    assert torch.equal(a, d.sample((10,)))  # torch.manual_seed makes it reproducible
    assert torch.equal(d.sample((10,), seed=3), d.sample((10,), seed=3))
    assert torch.equal(d.sample((10,), seed=3), torch.from_numpy(
        lf.Categorical(logits.numpy()).sample(10, seed=3)))  # the core's draws
    n = 20000
    x = d.sample((n,), seed=11)
    freq = torch.stack([(x == k).double().mean(0) for k in range(3)], -1)
    p = torch.softmax(logits, -1)
    se = torch.sqrt(p * (1 - p) / n)
    assert ((freq - p).abs() < 5 * se).all()
    # the log-prob of the action just drawn comes from the fused pass; a changed x or
    # changed parameters are recomputed
    a = d.sample()
    torch.testing.assert_close(d.log_prob(a), D.Categorical(logits=logits).log_prob(a), **TOL)
    a = d.sample()
    a[0] = (a[0] + 1) % 3  # in place: the version moves
    torch.testing.assert_close(d.log_prob(a), D.Categorical(logits=logits).log_prob(a), **TOL)
    # the fused pass gives the same samples and log-probs, and backpropagates
    z = logits.clone().requires_grad_()
    dz = lft.Categorical(logits=z)
    x2, lp2 = dz.sample_and_log_prob((3,), seed=5)
    assert torch.equal(x2, dz.sample((3,), seed=5))
    assert_same_grads(lp2, D.Categorical(logits=z).log_prob(x2), (z,))
    xn, lpn = lft.Normal(torch.zeros(2, dtype=torch.float64), f64(2).exp()).sample_and_log_prob()
    assert xn.shape == (2,) and lpn.shape == (2,) and lpn.requires_grad


def test_float32_and_casting():
    loc = torch.zeros(3, requires_grad=True)
    d = lft.Normal(loc, torch.ones(3))
    x = d.sample((2,))
    lp = d.log_prob(x)
    assert x.dtype == lp.dtype == torch.float32
    lp.sum().backward()
    assert loc.grad.dtype == torch.float32
    # torch's promotion: a float64 value with float32 parameters computes in float64
    x64 = x.double()
    assert d.log_prob(x64).dtype == torch.float64
    torch.testing.assert_close(d.log_prob(x64), D.Normal(loc, torch.ones(3)).log_prob(x64))
    assert d.log_prob(torch.zeros(3, dtype=torch.int64)).dtype == torch.float32


def test_functional_log_prob_and_bad_input():
    loc, log_scale = f64(3), f64(3)
    x = torch.randn(4, 3, dtype=torch.float64)
    assert_same_grads(lft.log_prob(lf.Normal, x, loc=loc, log_scale=log_scale),
                      D.Normal(loc, log_scale.exp()).log_prob(x), (loc, log_scale))
    with pytest.raises(TypeError, match="log_scale"):
        lft.log_prob(lf.Normal, x, loc=loc)
    z = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(TypeError, match="scale has dtype torch.float32"):
        lft.Normal(z, torch.ones(3, dtype=torch.float32))
    with pytest.raises(ValueError, match="scale is on meta"):
        lft.Normal(z, torch.ones(3, dtype=torch.float64, device="meta"))
    with pytest.raises(TypeError, match="logits must be a float32 or float64"):
        lft.Categorical(logits=torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="Either `probs` or `logits`"):
        lft.Categorical()
    d = lft.Normal(z, 1.0)
    with pytest.raises(ValueError, match="value has shape"):
        d.log_prob(torch.zeros(4, dtype=torch.float64))
    with pytest.raises(TypeError, match="integer class indices"):
        lft.Categorical(logits=z).log_prob(torch.zeros((), dtype=torch.bool))
    with pytest.raises(TypeError, match="mask must be a bool"):
        lft.Categorical(logits=torch.zeros(3), mask=torch.ones(3))
    with pytest.raises(ValueError, match="sample_shape"):
        d.sample((0,))
    with pytest.raises(ValueError, match="logits contains NaN"):
        lft.Categorical(logits=torch.tensor([0.0, float("nan")])).sample()
    # numbers next to tensors follow the tensors' dtype
    assert lft.Normal(z, 1.0).log_prob(z).dtype == torch.float64
    assert np.isfinite(lft.Normal(z, 1.0).log_prob(z).numpy()).all()


# ============================================================================ the lean path
def test_lean_eager_path_equals_the_registered_operators():
    """Eager calls with plain CPU tensors skip the operator layers (``Distribution._lean``):
    the same numbers, bit for bit, as ``torch.ops.lograd_fast`` through the dispatcher."""
    ops = torch.ops.lograd_fast
    mean = torch.randn(4, 3)
    scale = torch.rand(3).add(0.5).expand(4, 3)  # a stride-0 scale, as RL code passes
    logits = torch.randn(4, 5, dtype=torch.float64)
    mask = torch.tensor([True, False, True, True, True]).expand(4, 5)
    for d in (lft.Normal(mean, scale), lft.Normal(mean, log_scale=scale.log(), event_ndims=1),
              lft.Categorical(logits=logits, mask=mask)):
        assert d._lean()
        params = [p.detach() for p in d._params]
        lp, x, _ = ops.sample_score.default(d._spec, params, d._mask, [2], torch.tensor(9))
        drawn = d.sample((2,), seed=9)
        assert torch.equal(drawn, x)
        assert torch.equal(d.log_prob(drawn), lp)  # the fused pass's log-prob of the draw
        # a value that was not just drawn: the log-prob kernel (Normal: at the stored,
        # rounded x, so not the fused pass's float64 draw)
        assert torch.equal(d.log_prob(x), ops.log_prob.default(d._spec, x, params, d._mask))
        if isinstance(d, lft.Categorical):  # (Normal's entropy is two torch operations)
            assert torch.equal(d.entropy(), ops.entropy.default(d._spec, params, d._mask))
    # with gradients: the lean autograd path against the operators' registered autograd
    z = logits.clone().requires_grad_()
    a = torch.tensor([0, 2, 4, 3])
    ours = lft.Categorical(logits=z, mask=mask)
    ref = ops.log_prob.default(ours._spec, a, [z], mask)
    assert_same_grads(ours.log_prob(a), ref, (z,))
    assert_same_grads(ours.entropy(), ops.entropy.default(ours._spec, [z], mask), (z,))


def test_lean_path_rebuilds_after_in_place_writes_and_checks_every_call():
    loc, scale = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    d = lft.Normal(loc, scale)
    x = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    torch.testing.assert_close(d.log_prob(x), D.Normal(loc, scale).log_prob(x), **TOL)
    loc.add_(1.0)  # the cached lograd_fast distribution saw the old version
    torch.testing.assert_close(d.log_prob(x), D.Normal(loc, scale).log_prob(x), **TOL)
    torch.testing.assert_close(d.entropy(), D.Normal(loc, scale).entropy(), **TOL)
    loc[1] = math.nan
    for call in (d.sample, lambda: d.log_prob(x)):
        with pytest.raises(ValueError, match="loc contains NaN"):
            call()
    # a NaN network output is an error in the update (grad) path too, and a bad scale
    # is named as the scale
    bad = torch.tensor([0.0, math.nan], requires_grad=True)
    with pytest.raises(ValueError, match="loc contains NaN"):
        lft.Normal(bad, torch.ones(2)).log_prob(torch.zeros(2))
    with pytest.raises(ValueError, match="scale must be positive"):
        lft.Normal(torch.zeros(2), torch.tensor([1.0, -1.0])).sample()
    with pytest.raises(ValueError, match="logits contains NaN"):
        lft.Categorical(logits=bad).entropy()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_update_path_without_a_lograd_fast_distribution(dtype, monkeypatch):
    """An update's log_prob (dense parameters with gradients, a value of their shape and
    dtype) runs on the tensors' memory (``log_prob_and_score_flat``, no lograd_fast
    distribution built): the same numbers and gradients as the operators, bit for bit,
    the same checks; other calls (a sample dim, a strided parameter) take the general
    path.  Checked to be taken, so that the comparison means something."""
    ops = torch.ops.lograd_fast
    calls = []  # the lean path taken: on raw pointers, or through numpy (bad values)
    flat = lft.log_prob_and_score_flat
    monkeypatch.setattr(lft, "log_prob_and_score_flat",
                        lambda *a, **k: calls.append("numpy") or flat(*a, **k))
    runner = lft._raw_runner

    def counted_runner(name, dtype):
        run = runner(name, dtype)
        assert run is not None  # Normal and TanhNormal have the raw-pointer call
        return lambda *a: calls.append("raw") or run(*a)
    monkeypatch.setattr(lft, "_raw_runner", counted_runner)
    g = torch.Generator().manual_seed(3)
    mean = torch.randn(5, 3, generator=g, dtype=dtype).requires_grad_()
    std = (0.3 * torch.randn(3, generator=g, dtype=dtype)).exp().requires_grad_()
    x = torch.randn(5, 3, generator=g, dtype=dtype)
    cases = [lambda: lft.Normal(mean, std.expand(5, 3)),
             lambda: lft.Normal(mean, log_scale=std.log().expand(5, 3).contiguous(),
                                event_ndims=1),
             lambda: lft.TanhNormal(mean, std.expand(5, 3), event_ndims=1)]
    for make in cases:
        for value, taken in ((x if make is not cases[2] else torch.tanh(x), True),
                             (torch.tanh(x).expand(2, 5, 3), False)):  # a sample dim
            calls.clear()
            d = make()
            ours = d.log_prob(value)
            assert bool(calls) == taken
            ref = ops.log_prob.default(d._spec, value, d._params, None)
            assert torch.equal(ours, ref)
            inputs = (mean, std)
            for a, b in zip(torch.autograd.grad(ours.sum(), inputs, retain_graph=True),
                            torch.autograd.grad(ref.sum(), inputs)):
                torch.testing.assert_close(a, b, rtol=0, atol=0)
    # against torch.distributions (values and gradients)
    ours = lft.Normal(mean, std.expand(5, 3)).log_prob(x)
    ref = D.Normal(mean, std.expand(5, 3)).log_prob(x)
    tol = TOL if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours, ref, **tol)
    for a, b in zip(grads(ours, (mean, std)), grads(ref, (mean, std))):
        torch.testing.assert_close(a, b, **tol)
    # a value with a gradient (the flat path, the general backward): against torch too
    xg = x.clone().requires_grad_()
    calls.clear()
    ours = lft.Normal(mean, std.expand(5, 3)).log_prob(xg)
    ref = D.Normal(mean, std.expand(5, 3)).log_prob(xg)
    assert calls
    for a, b in zip(grads(ours, (mean, std, xg)), grads(ref, (mean, std, xg))):
        torch.testing.assert_close(a, b, **tol)
    # a strided location (a transposed view): the general path, the same numbers
    calls.clear()
    loc_t = mean.detach().t().contiguous().t().requires_grad_()
    assert not loc_t.is_contiguous()
    assert torch.equal(lft.Normal(loc_t, std.expand(5, 3)).log_prob(x),
                       lft.Normal(mean, std.expand(5, 3)).log_prob(x))
    assert len(calls) == 1  # the second call only
    # the checks: a NaN value, a NaN location, a bad scale (named as the scale)
    calls.clear()
    with pytest.raises(ValueError, match="x contains NaN"):
        lft.Normal(mean, std.expand(5, 3)).log_prob(torch.full((5, 3), math.nan, dtype=dtype))
    with pytest.raises(ValueError, match="loc contains NaN"):
        lft.Normal(mean * math.nan, std.expand(5, 3)).log_prob(x)
    with pytest.raises(ValueError, match="scale must be positive"):
        lft.Normal(mean, -std.expand(5, 3)).log_prob(x)
    assert calls == ["raw", "numpy"] * 3  # the raw call refuses, numpy's route raises


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_raw_pointer_update_call_equals_the_numpy_route(dtype, monkeypatch):
    """The update's log_prob on the tensors' raw pointers (a ``cfunc`` called through
    ctypes) gives bit for bit what the numpy route gives (``log_prob_and_score_flat``),
    Normal and TanhNormal, one atom per item and three; its log-prob is a tensor of its
    own (modified in place like torch's, not a view into the scores)."""
    g = torch.Generator().manual_seed(8)
    mean = torch.randn(4, 3, generator=g, dtype=dtype).requires_grad_()
    std = (0.3 * torch.randn(4, 3, generator=g, dtype=dtype)).exp().requires_grad_()
    x = torch.randn(4, 3, generator=g, dtype=dtype)
    for cls, value in ((lft.Normal, x), (lft.TanhNormal, torch.tanh(x))):
        for ev in (0, 1):
            d = cls(mean, std, event_ndims=ev)
            raw = d._flat_log_prob_score(value, d._params)
            with monkeypatch.context() as m:
                m.setattr(lft, "_raw_runner", lambda name, dtype: None)
                ref = d._flat_log_prob_score(value, d._params)
            assert torch.equal(raw[0], ref[0]) and raw[0].shape == ref[0].shape
            assert len(raw[1]) == len(ref[1]) == 2
            for a, b in zip(raw[1], ref[1]):
                assert torch.equal(a, b) and a.shape == b.shape
            assert raw[0]._base is None
    # threads: each its own scratch for the derived fields (the same numbers; calls
    # long enough, 20000 elements, that the threads' kernels overlap: ctypes releases
    # the GIL)
    import threading

    big = [(torch.randn(100, 200, generator=g, dtype=dtype) * 0.3).requires_grad_()
           for _ in range(4)]
    xb = torch.randn(100, 200, generator=g, dtype=dtype)
    want = [d._flat_log_prob_score(xb, d._params) for d in (
        lft.Normal(xb.detach() * 0.5, log_scale=b) for b in big)]
    got = [None] * 4

    def work(k):
        for _ in range(50):
            d = lft.Normal(xb.detach() * 0.5, log_scale=big[k])
            got[k] = d._flat_log_prob_score(xb, d._params)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (lp_g, s_g), (lp_w, s_w) in zip(got, want):
        assert torch.equal(lp_g, lp_w) and all(torch.equal(a, b) for a, b in zip(s_g, s_w))
    lp = lft.Normal(mean, std).log_prob(x)
    lp.mul_(2.0)  # as torch's log_prob allows
    lp.sum().backward()
    ref = (2.0 * D.Normal(mean.detach().requires_grad_(), std.detach()).log_prob(x)).sum()
    torch.testing.assert_close(lp.sum(), ref)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_categorical_update_path(dtype, monkeypatch):
    """An update's Categorical log_prob (logits with gradients, one stored action per
    row, a full mask or none) is one compiled call on the tensors' memory (``update_terms``) that
    also gives the entropy and its gradient, kept for the next ``entropy()``: the same
    numbers as the operators bit for bit, the gradients of torch.distributions, the
    same checks; the kept entropy is used once and not after an in-place change of the
    logits.  Checked to be taken, so that the comparison means something."""
    ops = torch.ops.lograd_fast
    calls = []
    fused = lft._categorical_update_terms
    monkeypatch.setattr(lft, "_categorical_update_terms",
                        lambda *a: calls.append(1) or fused(*a))
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 7, 6, generator=g, dtype=dtype).requires_grad_()
    x = torch.randint(0, 6, (2, 7), generator=g)
    adv = torch.randn(2, 7, generator=g, dtype=dtype)
    d = lft.Categorical(logits=logits)
    lp = d.log_prob(x)
    assert calls and d._kept_entropy is not None and d._lf_cache is None
    ent = d.entropy()
    assert d._kept_entropy is None and d._lf_cache is None  # no distribution built
    assert torch.equal(lp, ops.log_prob.default(d._spec, x, d._params, None))
    assert torch.equal(ent, lft.Categorical(logits=logits).entropy())  # the general path
    tol = TOL if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    ref = D.Categorical(logits=logits)
    torch.testing.assert_close(lp, ref.log_prob(x), **tol)
    torch.testing.assert_close(ent, ref.entropy(), **tol)
    loss = -(adv * lp).mean() - 0.01 * ent.mean()
    ref_loss = -(adv * ref.log_prob(x)).mean() - 0.01 * ref.entropy().mean()
    torch.testing.assert_close(grads(loss, (logits,))[0], grads(ref_loss, (logits,))[0], **tol)
    # used once: a second entropy() computes it again (the same numbers)
    assert torch.equal(d.entropy(), ent)
    # an in-place change of the logits between log_prob and entropy: not the kept one
    w = torch.randn(3, 4, generator=g, dtype=dtype, requires_grad=True)
    d = lft.Categorical(logits=w)
    d.log_prob(torch.zeros(3, dtype=torch.int64))
    with torch.no_grad():
        w.mul_(2.0)
    torch.testing.assert_close(d.entropy(), D.Categorical(logits=w).entropy(), **tol)
    # a mask of the logits' shape: the same path, against the operators and torch
    mask = torch.rand(2, 7, 6, generator=g) > 0.4
    mask[..., 0] = True
    xm = torch.where(mask.gather(-1, x[..., None])[..., 0], x, torch.zeros_like(x))
    calls.clear()
    d = lft.Categorical(logits=logits, mask=mask)
    lp, ent = d.log_prob(xm), d.entropy()
    assert calls and d._lf_cache is None
    assert torch.equal(lp, ops.log_prob.default(d._spec, xm, d._params, mask))
    assert torch.equal(ent, lft.Categorical(logits=logits, mask=mask).entropy())
    ref = D.Categorical(logits=logits.masked_fill(~mask, -math.inf))
    loss = -(adv * lp).mean() - 0.01 * ent.mean()
    ref_loss = -(adv * ref.log_prob(xm)).mean() - 0.01 * ref.entropy().mean()
    torch.testing.assert_close(loss, ref_loss, **tol)
    torch.testing.assert_close(grads(loss, (logits,))[0], grads(ref_loss, (logits,))[0], **tol)
    assert (~mask[..., 1]).any()
    with pytest.raises(ValueError, match="x contains masked actions"):
        lft.Categorical(logits=logits, mask=mask).log_prob(torch.where(mask[..., 1], 0, 1))
    # other calls take the general path: a sample dim, a broadcast mask, int32 actions
    calls.clear()
    lft.Categorical(logits=logits).log_prob(x.expand(3, 2, 7))
    lft.Categorical(logits=logits, mask=torch.ones(6, dtype=torch.bool)).log_prob(x)
    lft.Categorical(logits=logits).log_prob(x.int())
    assert not calls
    # the checks of the general path, with its messages
    with pytest.raises(ValueError, match="logits contains NaN"):
        lft.Categorical(logits=logits * math.nan).log_prob(x)
    with pytest.raises(ValueError, match="x holds class indices outside"):
        lft.Categorical(logits=logits).log_prob(x + 6)
    masked = logits.detach().clone()
    masked[0, 0, x[0, 0]] = -math.inf
    with pytest.raises(ValueError, match="x contains masked actions"):
        lft.Categorical(logits=masked.requires_grad_()).log_prob(x)
    assert len(calls) == 3


def test_the_drawn_log_prob_follows_an_in_place_change_of_the_mask():
    logits = torch.zeros(2, 3, dtype=torch.float64)
    mask = torch.ones(2, 3, dtype=torch.bool)
    d = lft.Categorical(logits=logits, mask=mask)
    a = d.sample(seed=4)
    mask[0, (a[0] + 1) % 3] = False  # the row's other classes now share its mass
    ref = D.Categorical(logits=logits.masked_fill(~mask, -math.inf)).log_prob(a)
    torch.testing.assert_close(d.log_prob(a), ref, **TOL)


def test_an_expanded_scale_outside_autograd_takes_the_log_of_its_distinct_values():
    """RL rollouts pass ``std.expand(B, A)``: under ``no_grad`` the log is taken of the
    distinct values and expanded (torch's log of a stride-0 view is ~6x slower per
    element); the values are torch's.  Where a gradient flows to the expanded scale
    itself, it is torch's per-element gradient (not gathered in the first row)."""
    base = torch.rand(6, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) + 0.5
    loc = torch.zeros(1024, 6, dtype=torch.float64)
    x = torch.randn(1024, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        scale = base.expand(1024, 6)
        d = lft.Normal(loc, scale)
        assert d.log_scale.stride()[0] == 0  # the expanded log of the 6 values
        assert torch.equal(d.log_scale, torch.log(scale))
        torch.testing.assert_close(d.log_prob(x), torch.distributions.Normal(
            loc, scale).log_prob(x), rtol=1e-12, atol=1e-12)
    leaf = base.clone().requires_grad_()
    scale = leaf.expand(1024, 6)
    g = torch.autograd.grad(lft.Normal(loc, scale).log_prob(x).sum(), scale)[0]
    g_ref = torch.autograd.grad(torch.distributions.Normal(loc, scale).log_prob(x).sum(),
                                scale)[0]
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-12)
    assert not torch.equal(g[1], torch.zeros(6, dtype=torch.float64))


def test_the_lean_sample_draws_its_seed_as_torch_randint_does():
    """The eager ``sample()`` takes its Philox seed from torch's global generator
    through a reused tensor: the very number ``torch.randint(0, 2**62, ())`` gives,
    so ``torch.manual_seed`` repeats runs and the streams are those of the operator
    path (which draws with ``torch.randint``)."""
    from lograd_fast.torch import _SEED_MAX, _global_seed

    torch.manual_seed(123)
    ref = [int(torch.randint(0, _SEED_MAX, (), dtype=torch.int64)) for _ in range(5)]
    torch.manual_seed(123)
    assert [_global_seed() for _ in range(5)] == ref
    logits = torch.randn(4, 3, dtype=torch.float64)
    torch.manual_seed(7)
    a = lft.Categorical(logits=logits).sample()
    torch.manual_seed(7)
    b = lf.Categorical(logits.numpy()).sample(
        seed=int(torch.randint(0, _SEED_MAX, (), dtype=torch.int64)))
    np.testing.assert_array_equal(a.numpy(), b)


class _OnCuda:
    """A stand-in for a CUDA parameter tensor (no GPU here): what the routing reads."""

    device = torch.device("cuda")

    def __init__(self, n):
        self.n = n

    def numel(self):
        return self.n


def test_cuda_calls_route_by_draws_and_fall_back_to_the_cpu_kernels(monkeypatch):
    """Which kernels a call on CUDA parameters uses (docs/gpu.md; the calls themselves
    run on a GPU only, in tests/gpu_check.py): one draw per element always goes to the
    CPU kernels; many draws go to the GPU kernels where numba-cuda can run them, else to
    the CPU kernels with one warning naming the cause; CUDA_MIN_ELEMENTS = 0 forces the
    GPU kernels (their error then says why they cannot run)."""
    params = [_OnCuda(768), _OnCuda(6)]
    big = lft.CUDA_MIN_ELEMENTS // 768 + 1
    assert not lft._gpu_sized([torch.zeros(3)], big)  # CPU tensors
    assert not lft._gpu_sized(params, 1) and not lft._gpu_sized(params, big - 1)
    monkeypatch.setattr(lft, "_GPU_USABLE", True)
    assert lft._gpu_sized(params, big)
    assert not lft._gpu_sized([_OnCuda(10**8)], 1)  # one draw: the CPU kernels, any size
    monkeypatch.setattr(lft, "_GPU_USABLE", None)
    monkeypatch.setattr("lograd_fast._engine.cuda_status.status",
                        lambda: ("", "no CUDA GPU/driver found"))
    with pytest.warns(RuntimeWarning, match="run on the CPU kernels.*no CUDA GPU"):
        assert not lft._gpu_sized(params, big)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # asked once: no second warning
        assert not lft._gpu_sized(params, big)
    monkeypatch.setattr(lft, "CUDA_MIN_ELEMENTS", 0)
    assert lft._gpu_sized(params, 1)


def test_the_update_runs_with_numbas_jit_disabled():
    """``NUMBA_DISABLE_JIT=1`` (debugging: every kernel as plain Python) runs the
    library and the adapter's update -- without the raw-pointer call, which needs the
    compiler -- with torch.distributions' numbers.  (Importing the kernels once failed
    under it: a decorator read the dispatcher's ``py_func`` of a plain function.)"""
    import os
    import subprocess
    import sys

    code = """
import torch, lograd_fast.torch as lft, torch.distributions as td
m = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
s = (torch.rand(3, 2, dtype=torch.float64) + 0.5).requires_grad_()
a = torch.randn(3, 2, dtype=torch.float64)
ours, ref = lft.Normal(m, s).log_prob(a), td.Normal(m, s).log_prob(a)
torch.testing.assert_close(ours, ref)
for x, y in zip(torch.autograd.grad(ours.sum(), (m, s)), torch.autograd.grad(ref.sum(), (m, s))):
    torch.testing.assert_close(x, y)
assert list(lft._RAW_RUNNERS.values()) == [None]
c = lft.Categorical(logits=torch.zeros(2, 3))
assert c.sample().shape == (2,)
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "NUMBA_DISABLE_JIT": "1"})
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_raw_pointer_rollout_step_equals_the_general_path(dtype, monkeypatch):
    """A rollout's ``sample()`` (one draw, dense parameters) on the parameters' raw
    pointers (the construction's checks and the RL step's fused draw in one C call):
    bit for bit the draws and log-probs of the general path, for small and 2**32-plus
    seeds, event dims, a batch of several variate passes; a bad parameter draws nothing
    there and the general path raises its error."""
    taken = []
    raw = lft.Distribution._raw_sample

    def counted(self, seed):
        got = raw(self, seed)
        taken.append(got is not None)
        return got
    monkeypatch.setattr(lft.Distribution, "_raw_sample", counted)
    g = torch.Generator().manual_seed(4)
    for shape, ev in (((5, 3), 0), ((5, 3), 1), ((3000,), 0), ((2, 700, 3), 2)):
        mean = torch.randn(shape, generator=g, dtype=dtype)
        std = (0.3 * torch.randn(shape, generator=g, dtype=dtype)).exp()
        for cls in (lft.Normal, lft.TanhNormal):
            for seed in (7, 2**40 + 3):
                taken.clear()
                d = cls(mean, std, event_ndims=ev)
                x = d.sample(seed=seed)
                lp = d.log_prob(x)
                assert taken == [True]
                with monkeypatch.context() as m:
                    m.setattr(lft.Distribution, "_raw_sample", lambda self, seed: None)
                    ref = cls(mean, std, event_ndims=ev)
                    x_ref = ref.sample(seed=seed)
                    lp_ref = ref.log_prob(x_ref)
                assert torch.equal(x, x_ref) and torch.equal(lp, lp_ref)
                assert x.shape == x_ref.shape and lp.shape == lp_ref.shape
    bad = torch.zeros(4, 3, dtype=dtype)
    bad[1, 2] = math.nan
    taken.clear()
    with pytest.raises(ValueError, match="loc contains NaN"):
        lft.Normal(bad, torch.ones(4, 3, dtype=dtype)).sample()
    assert taken == [False]  # the raw step refused, the general path raised
