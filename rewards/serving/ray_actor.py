"""`RayReward`: run a reward inside its own Ray actor (own CPUs/GPUs), batched, callable like any reward.

The reward object is built inside the actor from (factory, args), so its model loads once, there. Use
`score_async(batch)` to overlap scoring with rollout and `ray.get` the returned reference later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rewards.contract import Reward, RewardBatch, RewardOutput

__all__ = ["RayReward"]


class _RewardActor:
    def __init__(self, factory: Callable[..., Reward], args: dict) -> None:
        from rewards.registry import make_local

        self.reward = make_local(factory, args, getattr(factory, "__name__", "reward"))

    def score(self, batch: RewardBatch) -> RewardOutput:
        return self.reward(batch)

    def name(self) -> str:
        return self.reward.name


class RayReward(Reward):
    """A reward hosted in a Ray actor with its own resources (num_cpus, num_gpus); batches split by batch_size."""

    def __init__(
        self,
        factory: Callable[..., Reward],
        args: dict | None = None,
        name: str = "reward",
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        batch_size: int = 0,
    ) -> None:
        super().__init__()
        self.factory = factory
        self.args = dict(args or {})
        self.name = name
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.batch_size = batch_size

    def load(self) -> Any:
        """Start the actor (Ray must already be initialised, e.g. by the trainer or `ray.init()`)."""
        import ray

        if not ray.is_initialized():
            raise RuntimeError(
                f"reward '{self.name}' is served on Ray (serve: ray) but Ray is not initialised; call ray.init() "
                "first or set serve: local"
            )
        cls = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus)(_RewardActor)
        return cls.remote(self.factory, self.args)

    def score_async(self, batch: RewardBatch) -> list:
        """Submit the batch (in chunks of batch_size) and return the Ray object references, one per chunk."""
        size = self.batch_size or len(batch)
        actor = self.model
        return [
            actor.score.remote(batch.select(list(range(i, min(i + size, len(batch))))))
            for i in range(0, len(batch), size)
        ]

    def score(self, batch: RewardBatch) -> RewardOutput:
        import ray

        return RewardOutput.concat(ray.get(self.score_async(batch)))

    def shutdown(self) -> None:
        """Kill the actor (a later call starts a new one)."""
        if self._loaded and self._model is not None:
            import ray

            ray.kill(self._model)
        self._model, self._loaded = None, False
