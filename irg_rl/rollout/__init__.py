"""Rollout: Ray rollout workers (inference copies of the policy), weight sync, reward scoring, local engine.

`make_rollout(spec, cfg)` returns a `RolloutPool` (Ray) or a `LocalRollout` (no Ray); both expose
`set_weights(version, state, full)`, `sample_iter(request)` (chunks as they finish) and `sample(request)`.
"""

from irg_rl.rollout.config import RolloutConfig
from irg_rl.rollout.worker import RolloutWorker, SampleRequest, WorkerSpec

__all__ = ["RolloutConfig", "RolloutWorker", "SampleRequest", "WorkerSpec", "make_rollout"]


def make_rollout(spec: WorkerSpec, cfg: RolloutConfig):
    """The rollout backend the config asks for (`rollout.engine`: ray | local)."""
    if cfg.engine == "ray":
        from irg_rl.rollout.pool import RolloutPool

        return RolloutPool(spec, cfg)
    from irg_rl.rollout.local import LocalRollout

    return LocalRollout(spec, cfg)
