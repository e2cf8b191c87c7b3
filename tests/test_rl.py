"""RL helpers: ``lf.returns`` against a plain loop, ``lf.policy_gradient`` against the
exact gradient of a tiny MDP (enumerating every pair of trajectories)."""

import itertools

import numpy as np
import pytest

import lograd_fast as lf


# ============================================================================ returns
def returns_loop(rewards, gamma, dones=None, bootstrap=None):
    r = np.atleast_2d(np.asarray(rewards, np.float64))
    d = np.zeros(r.shape, bool) if dones is None else np.atleast_2d(dones)
    boot = np.zeros(r.shape[0]) if bootstrap is None else np.atleast_1d(bootstrap)
    out = np.empty_like(r)
    for b in range(r.shape[0]):
        g = boot[b]
        for t in reversed(range(r.shape[1])):
            if d[b, t]:
                g = 0.0
            g = r[b, t] + gamma * g
            out[b, t] = g
    return out.reshape(np.shape(rewards))


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.99, 1.0])
def test_returns_match_a_python_loop(gamma):
    rng = np.random.default_rng(0)
    r = rng.normal(size=(5, 17))
    dones = rng.random((5, 17)) < 0.2
    boot = rng.normal(size=5)
    np.testing.assert_allclose(lf.returns(r, gamma), returns_loop(r, gamma), rtol=1e-13)
    np.testing.assert_allclose(lf.returns(r, gamma, dones), returns_loop(r, gamma, dones),
                               rtol=1e-13)
    np.testing.assert_allclose(lf.returns(r, gamma, dones.astype(np.int8), bootstrap=boot),
                               returns_loop(r, gamma, dones, boot), rtol=1e-13)
    # one trajectory as (T,)
    np.testing.assert_allclose(lf.returns(r[1], gamma, dones[1], bootstrap=boot[1]),
                               returns_loop(r[1], gamma, dones[1], boot[1]), rtol=1e-13)


def test_returns_closed_form_and_dtypes():
    # constant rewards: G_t = (1 - gamma**(T - t)) / (1 - gamma)
    g = lf.returns(np.ones(50), 0.9)
    np.testing.assert_allclose(g, (1 - 0.9 ** np.arange(50, 0, -1)) / 0.1, rtol=1e-13)
    assert lf.returns(np.ones((2, 3), np.float32), 0.5).dtype == np.float32
    assert lf.returns(np.ones((2, 3), np.int64), 0.5).dtype == np.float64
    assert lf.returns(np.ones((2, 3)), 0.5).shape == (2, 3)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(gamma=1.5), ValueError, "gamma"),
    (dict(gamma=-0.1), ValueError, "gamma"),
    (dict(gamma="0.9"), TypeError, "gamma"),
    (dict(rewards=np.ones((2, 3, 4))), ValueError, "rewards"),
    (dict(rewards=np.array([1.0, np.nan, 0.0])), ValueError, "rewards"),
    (dict(rewards=np.array(["a", "b"])), TypeError, "rewards"),
    (dict(dones=np.zeros((3, 2), bool)), ValueError, "dones"),
    (dict(dones=np.full((2, 3), 2)), TypeError, "dones"),
    (dict(bootstrap=np.zeros(3)), ValueError, "bootstrap"),
    (dict(bootstrap=np.array([0.0, np.inf])), ValueError, "bootstrap"),
])
def test_returns_bad_input(kwargs, exc, match):
    args = dict(rewards=np.ones((2, 3)), gamma=0.9)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        lf.returns(args.pop("rewards"), args.pop("gamma"), **args)


# ============================================================================ tiny MDP
# States {0, 1}, actions {0, 1}; the action is the next state; start in state 0.
# Taking action 1 in state 1 ends the episode; otherwise it ends after H steps.
REWARD = np.array([[1.0, -0.3], [0.5, 2.0]])  # r(s, a)
H = 3
GAMMA = 0.8
THETA = np.array([[0.3, -0.2], [-0.4, 0.6]])  # tabular logits theta[s]


def trajectories():
    """Every trajectory: (states, actions, rewards, done_flags)."""
    out = []
    for actions in itertools.product((0, 1), repeat=H):
        s, states, acts, rews, dones = 0, [], [], [], []
        for a in actions:
            states.append(s)
            acts.append(a)
            rews.append(REWARD[s, a])
            end = s == 1 and a == 1
            dones.append(end or len(acts) == H)
            s = a
            if end:
                break
        key = tuple(acts)
        if key not in {tuple(t[1]) for t in out}:
            out.append((states, acts, rews, dones))
    return out


def log_policy(theta):
    return theta - np.logaddexp(theta[:, :1], theta[:, 1:])


def objective(theta):
    lp = log_policy(theta)
    total = 0.0
    for states, acts, rews, _ in trajectories():
        p = np.exp(sum(lp[s, a] for s, a in zip(states, acts)))
        total += p * sum(GAMMA**t * r for t, r in enumerate(rews))
    return total


def exact_gradient():
    h = 1e-5
    g = np.zeros_like(THETA)
    for idx in np.ndindex(THETA.shape):
        e = np.zeros_like(THETA)
        e[idx] = h
        g[idx] = (objective(THETA + e) - objective(THETA - e)) / (2 * h)
    return g


def batch(trajs):
    """Padded (B, H) arrays of one batch of trajectories."""
    B = len(trajs)
    states = np.zeros((B, H), np.int64)
    acts = np.zeros((B, H), np.int64)
    rews = np.zeros((B, H))
    dones = np.zeros((B, H), bool)
    valid = np.zeros((B, H), bool)
    for b, (s, a, r, d) in enumerate(trajs):
        n = len(a)
        states[b, :n], acts[b, :n], rews[b, :n], dones[b, :n], valid[b, :n] = s, a, r, d, True
        dones[b, n:] = True  # padding: single-step "episodes" that never flow back
    return states, acts, rews, dones, valid


def expected_estimate(B=2, **kwargs):
    """E[estimator] of the tabular gradient, exactly: all B-tuples of trajectories."""
    lp = log_policy(THETA)
    trajs = trajectories()
    probs = [np.exp(sum(lp[s, a] for s, a in zip(t[0], t[1]))) for t in trajs]
    assert abs(sum(probs) - 1.0) < 1e-12
    mean = np.zeros_like(THETA)
    for combo in itertools.product(range(len(trajs)), repeat=B):
        states, acts, rews, dones, valid = batch([trajs[i] for i in combo])
        d = lf.Categorical(THETA[states])  # one distribution per step: logits (B, H, 2)
        est = lf.policy_gradient(d, acts, rews, gamma=GAMMA, dones=dones, valid=valid,
                                 **kwargs)
        g_logits = est.grad["logits"]  # (B, H, 2): chain rule into the table
        g = np.zeros_like(THETA)
        np.add.at(g, states[valid], g_logits[valid])
        mean += np.prod([probs[i] for i in combo]) * g
    return mean


@pytest.mark.parametrize("kwargs", [
    dict(), dict(baseline=0.7), dict(baseline="loo"), dict(baseline="optimal", n_folds=2),
    dict(reward_to_go=False), dict(reward_to_go=False, baseline="loo"),
], ids=str)
def test_policy_gradient_is_unbiased_on_a_tiny_mdp(kwargs):
    np.testing.assert_allclose(expected_estimate(**kwargs), exact_gradient(), atol=1e-8)


def test_mean_baseline_bias_and_undiscounted_weights():
    exact = exact_gradient()
    # the batch-mean baseline includes the row itself: biased ...
    assert np.abs(expected_estimate(baseline="mean") - exact).max() > 1e-2
    # ... step by step it is (m-1)/m times the leave-one-out term (m: valid rows at t)
    trajs = trajectories()
    states, acts, rews, dones, valid = batch([trajs[0], trajs[3], trajs[-1], trajs[2]])
    d = lf.Categorical(THETA[states])
    kw = dict(gamma=GAMMA, dones=dones, valid=valid)
    mean = lf.policy_gradient(d, acts, rews, baseline="mean", **kw).extra["psi"]
    loo = lf.policy_gradient(d, acts, rews, baseline="loo", **kw).extra["psi"]
    m = valid.sum(axis=0)
    assert m.min() < m.max()  # the batch has rows of different lengths
    np.testing.assert_allclose(mean, np.where(m > 1, (m - 1) / m * loo, 0.0), atol=1e-14)
    # without gamma**t weights the estimate targets another vector (gamma < 1)
    assert np.abs(expected_estimate(discount_weights=False) - exact).max() > 1e-2


# ============================================================================ shapes
def test_shared_parameters_equal_the_sum_of_per_step_gradients():
    rng = np.random.default_rng(1)
    B, T, K = 4, 6, 3
    logits = rng.normal(size=K)
    x = lf.Categorical(logits).sample((B * T), seed=3).reshape(B, T)
    r = rng.normal(size=(B, T))
    shared = lf.policy_gradient(lf.Categorical(logits), x, r, gamma=0.9, baseline="loo")
    per_step = lf.policy_gradient(lf.Categorical(np.broadcast_to(logits, (B, T, K))), x, r,
                                  gamma=0.9, baseline="loo")
    assert shared.grad["logits"].shape == (K,)
    assert per_step.grad["logits"].shape == (B, T, K)
    np.testing.assert_allclose(shared.grad["logits"], per_step.grad["logits"].sum((0, 1)),
                               rtol=1e-12, atol=1e-15)
    # manual: per-row terms, their mean and sample variance
    s = np.eye(K)[x] - np.exp(logits - np.logaddexp.reduce(logits))
    G = lf.returns(r, 0.9)
    c = (G.sum(0) - G) / (B - 1)
    terms = ((0.9 ** np.arange(T) * (G - c))[..., None] * s).sum(axis=1)
    np.testing.assert_allclose(shared.grad["logits"], terms.mean(0), rtol=1e-12)
    np.testing.assert_allclose(shared.var["logits"], terms.var(0, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(shared.stderr["logits"], terms.std(0, ddof=1) / np.sqrt(B),
                               rtol=1e-12)
    # per-step parameters: row b's term lives in row b only -> var = B grad**2
    np.testing.assert_allclose(per_step.var["logits"], B * per_step.grad["logits"] ** 2,
                               rtol=1e-12)


def test_normal_policy_with_event_dims_and_a_single_trajectory():
    rng = np.random.default_rng(2)
    T, A = 7, 2
    loc, log_scale = rng.normal(size=(T, A)), rng.normal(size=A) * 0.1
    d = lf.Normal(loc, log_scale, event_ndims=1)  # batch (T,), event (A,)
    x = d.sample(seed=4)
    r = rng.normal(size=T)
    est = lf.policy_gradient(d, x, r, gamma=0.95)
    assert est.grad["loc"].shape == (T, A) and est.grad["log_scale"].shape == (A,)
    assert est.n == 1 and np.isnan(est.var["loc"]).all()
    psi = 0.95 ** np.arange(T) * lf.returns(r, 0.95)
    s = d.score(x)
    np.testing.assert_allclose(est.grad["loc"], psi[:, None] * s["loc"], rtol=1e-12)
    np.testing.assert_allclose(est.grad["log_scale"], (psi[:, None] * s["log_scale"]).sum(0),
                               rtol=1e-12)
    np.testing.assert_allclose(est.extra["psi"], psi, rtol=1e-12)


def test_discount_weights_restart_at_episode_boundaries():
    r = np.ones((1, 5))
    dones = np.array([[False, True, False, False, False]])
    d = lf.Categorical(np.zeros(2))
    est = lf.policy_gradient(d, np.zeros((1, 5), np.int64), r, gamma=0.5, dones=dones)
    G = returns_loop(r, 0.5, dones)
    np.testing.assert_allclose(est.extra["psi"], G * 0.5 ** np.array([[0, 1, 0, 1, 2]]))
    whole = lf.policy_gradient(d, np.zeros((1, 5), np.int64), r, gamma=0.5, dones=dones,
                               reward_to_go=False)
    np.testing.assert_allclose(whole.extra["psi"], [[1.5, 1.5, 1.75, 1.75, 1.75]])


def test_ema_baseline_is_updated():
    ema = lf.EMA(0.5)
    d = lf.Categorical(np.zeros(2))
    x = np.zeros((2, 3), np.int64)
    r = np.array([[1.0, 0.0, 2.0], [0.5, 1.0, 1.0]])
    G = lf.returns(r)
    first = lf.policy_gradient(d, x, r, baseline=ema)
    np.testing.assert_allclose(first.extra["psi"], G)  # value 0 before the first update
    assert ema.t == 1 and ema.value == pytest.approx(G.mean())  # zero-debiased
    second = lf.policy_gradient(d, x, r, baseline=ema)
    np.testing.assert_allclose(second.extra["psi"], G - G.mean())


def test_policy_gradient_bad_input():
    d = lf.Categorical(np.zeros((2, 3, 4)))
    x = np.zeros((2, 3), np.int64)
    r = np.zeros((2, 3))
    with pytest.raises(TypeError, match="dist"):
        lf.policy_gradient("policy", x, r)
    with pytest.raises(ValueError, match="baseline"):
        lf.policy_gradient(d, x, r, baseline="median")
    with pytest.raises(ValueError, match="x has shape"):
        lf.policy_gradient(d, np.zeros((2, 4), np.int64), r)
    with pytest.raises(ValueError, match="rewards' shape"):
        lf.policy_gradient(d, x, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="valid"):
        lf.policy_gradient(d, x, r, valid=np.ones((3, 2), bool))
    with pytest.raises(ValueError, match="n_folds"):
        lf.policy_gradient(d, x, r, baseline="optimal", n_folds=1)
    with pytest.raises(ValueError, match="gamma"):
        lf.policy_gradient(d, x, r, gamma=2.0)


def test_advantages_are_the_policy_gradient_weights():
    rng = np.random.default_rng(5)
    B, T = 4, 6
    r = rng.normal(size=(B, T))
    dones = rng.random((B, T)) < 0.3
    valid = np.ones((B, T), bool)
    valid[0, 4:] = False
    d = lf.Categorical(rng.normal(size=(B, T, 3)))
    x = d.sample(seed=1)
    for kw in (dict(), dict(baseline="loo"), dict(baseline="mean", discount_weights=False),
               dict(baseline=0.3, reward_to_go=False)):
        psi = lf.advantages(r, 0.9, dones, valid=valid, **kw)
        est = lf.policy_gradient(d, x, r, gamma=0.9, dones=dones, valid=valid, **kw)
        np.testing.assert_allclose(psi, est.extra["psi"], rtol=1e-14)
        # grad = sum_t psi * score / B: the gradient of sum(psi * log_prob) / B
        np.testing.assert_allclose(est.grad["logits"],
                                   psi[..., None] * d.score(x)["logits"] / B, rtol=1e-12)
    assert lf.advantages(r[0], 0.5).shape == (T,)
    with pytest.raises(ValueError, match="optimal"):
        lf.advantages(r, 0.9, baseline="optimal")


# ============================================================================ one draw
@pytest.mark.filterwarnings("error")  # no "degrees of freedom" warning either
def test_reinforce_from_a_single_trajectory():
    """``score_function(rewards=G[None], x=A[None])``: the gradient of one draw, with
    var/stderr NaN; baselines that are estimated from other draws say they need two."""
    logits = np.array([[0.2, -1.0, 0.7], [1.0, 0.0, -0.5]])  # two steps of one episode
    d = lf.Categorical(logits)
    actions = np.array([[2, 0]])
    returns = np.array([[1.5, -0.5]])
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    score = np.eye(3)[actions[0]] - p  # d log p(a) / d logits, closed form
    for baseline, b in ((None, 0.0), (0.25, 0.25), (lf.EMA(0.9), 0.0)):
        est = lf.score_function(d, rewards=returns, x=actions, baseline=baseline)
        np.testing.assert_allclose(est.grad["logits"], (returns[0] - b)[:, None] * score,
                                   rtol=1e-14)
        assert est.n == 1
        assert np.isnan(est.var["logits"]).all() and np.isnan(est.stderr["logits"]).all()
    # one reward per draw, a Normal policy
    dn = lf.Normal(np.zeros(2), np.zeros(2))
    x = np.array([[0.5, -1.0]])
    est = lf.score_function(dn, rewards=np.array([2.0]), x=x)
    np.testing.assert_allclose(est.grad["loc"], 2.0 * x[0])
    for baseline in ("loo", "mean", "optimal"):
        with pytest.raises(ValueError, match=f"baseline='{baseline}' needs at least 2 draws"):
            lf.score_function(d, rewards=returns, x=actions, baseline=baseline)
