"""asv: the torch adapter inside RL calls, against torch.distributions (one thread).

The calls are those of ``lograd_fast.bench.rl.make_call`` (rollout: build, sample,
log_prob under no_grad; update: log_prob, entropy, loss and gradient).  ``track_ratio``
records lograd_fast's CPU time over torch's (min of round-robin repeats, one process):
lower is better, the target is <= 0.8 at every B.
"""

from __future__ import annotations

from ._common import size

BATCHES = (1, 4, 64, 128, size(1024, 128))
REPEATS = 3


def _rl():
    try:
        import torch  # noqa: F401

        from lograd_fast.bench import rl
    except ImportError as exc:  # an older commit, or no torch: asv's "skip"
        raise NotImplementedError(str(exc)) from None
    return rl


class TorchAdapter:
    params = (["Categorical", "Normal"], ["rollout", "update"], list(BATCHES),
              ["lograd_fast.torch", "torch.distributions"])
    param_names = ("family", "phase", "B", "impl")

    def setup(self, family, phase, B, impl):
        rl = _rl()
        self._threads = rl._OneThread()
        self._threads.__enter__()
        _, libs = rl._libraries()
        self.call = rl.make_call(libs[impl], family, phase, B)
        self.call()

    def teardown(self, *args):
        if hasattr(self, "_threads"):
            self._threads.__exit__(None, None, None)

    def time_call(self, family, phase, B, impl):
        self.call()


class TorchAdapterRatio:
    params = (["Categorical", "Normal"], ["rollout", "update"], list(BATCHES))
    param_names = ("family", "phase", "B")

    def setup(self, family, phase, B):
        self.rl = _rl()

    def track_ratio(self, family, phase, B):
        rl = self.rl
        t = rl.measure_calls(family, phase, (B,), repeats=REPEATS, budget_s=0.02)[B]
        return t[rl.OURS] / t[rl.THEIRS]

    track_ratio.unit = "lograd_fast / torch"
