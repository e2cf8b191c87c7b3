"""The RL benchmark's calls (``lograd_fast.bench.rl``): both libraries compute the same
thing in every stage, so the timings compare like with like."""

import pytest

torch = pytest.importorskip("torch")
import torch.distributions as td  # noqa: E402

import lograd_fast.torch as lft  # noqa: E402
from lograd_fast.bench import rl  # noqa: E402


@pytest.mark.parametrize("family", ["Categorical", "Normal"])
def test_update_stages_agree_between_libraries(family):
    B = 4
    ours, theirs = (rl.make_call(lib, family, "update", B, stage="forward")
                    for lib in (lft, td))
    for a, b in zip(ours(), theirs()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    for a, b in zip(rl.make_call(lft, family, "update", B)(),
                    rl.make_call(td, family, "update", B)()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert isinstance(rl.make_call(lft, family, "update", B, stage="build")(),
                      td.Distribution)


def test_floor_is_the_loss_without_a_distribution():
    B = 5
    g_mean, g_log_std = rl.make_call(None, "Normal", "update", B, stage="floor")()
    gen = torch.Generator().manual_seed(0)  # the draws of make_call, in its order
    adv = torch.randn(B, generator=gen)
    # loss = -mean_b(adv_b * sum_a mean_ba) - 0.01 * mean_b(sum_a exp(log_std_a))
    torch.testing.assert_close(g_mean, (-adv / B)[:, None].expand(B, rl.A))
    torch.testing.assert_close(g_log_std, torch.full((rl.A,), -0.01 * torch.exp(
        torch.tensor(-0.5)).item()))


def test_stage_is_checked():
    with pytest.raises(ValueError, match="stage"):
        rl.make_call(lft, "Normal", "rollout", 4, stage="forward")
    with pytest.raises(ValueError, match="stage"):
        rl.make_call(lft, "Normal", "update", 4, stage="backward")


def test_breakdown_line_reports_every_stage():
    parts = rl.update_breakdown("Categorical", B=4, repeats=1, n=2)
    assert set(parts) == {rl.OURS, rl.THEIRS, "floor"}
    for name in (rl.OURS, rl.THEIRS):
        assert set(parts[name]) == {"build", "forward", "full"}
    line = rl.breakdown_line("Categorical", 4, parts)
    assert "Categorical update at B = 4" in line and "floor" in line


@pytest.mark.parametrize("family", ["Categorical", "Normal"])
def test_the_ppo_update_does_the_same_work_with_both_libraries(family):
    """``ppo_minibatch`` (the in-client phases of docs/rl.md): from the same seed both
    libraries give the same loss and leave the same networks after two updates; the
    phases' timings cover every phase, for both."""
    ours, theirs = rl.ppo_minibatch(family, B=16), rl.ppo_minibatch(family, B=16)
    for _ in range(2):
        assert ours(lft) == pytest.approx(theirs(td), rel=1e-5, abs=1e-6)
    for a, b in zip(ours.params, theirs.params):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    phases = rl.ppo_update_phases(family, B=8, rounds=1, n=2)
    assert set(phases) == {rl.OURS, rl.THEIRS}
    for per in phases.values():
        assert tuple(per) == rl.PPO_PHASES and all(t >= 0 for t in per.values())
    line = rl.ppo_phases_line(family, phases)
    assert line.startswith(family) and "whole update" in line


def test_the_measurements_run_with_torchs_default_validation():
    """torch.compile turns torch.distributions' argument validation off for the whole
    process; the RL measurements set torch's default (on) and restore what was set."""
    dist = torch.distributions.Distribution
    before = dist._validate_args
    try:
        dist.set_default_validate_args(False)
        with rl._OneThread():
            assert dist._validate_args is True
        assert dist._validate_args is False
    finally:
        dist.set_default_validate_args(before)
