"""The trainer's side of the rollout backend: the worker spec, policy versions and weight pushes, requests."""

from __future__ import annotations

import copy
import time

from torch import nn

from irg_rl.rollout import SampleRequest, WorkerSpec, make_rollout
from irg_rl.rollout.config import worker_placement
from irg_rl.rollout.weight_sync import changing_keys, export_weights

__all__ = ["RolloutClient"]


class RolloutClient:
    """Builds the rollout backend (`rollout.engine`: local or Ray workers) for a policy and keeps it in sync."""

    def __init__(self, recipe, bagel: nn.Module, config, tokenizer, vae, trainer_device):
        self.cfg = recipe.rollout
        device, dtype = worker_placement(recipe.rollout, trainer_device)
        self.spec = WorkerSpec(
            config, tokenizer, vae, copy.deepcopy(recipe.sampling), recipe.rollout.threads, device, dtype
        )
        self.backend = make_rollout(self.spec, recipe.rollout)
        self.bagel = bagel
        # the keys that change during training (trainable, incl. LoRA-merged weights): what a partial sync sends
        self.sync_keys = changing_keys(bagel)
        self.policy_version = -1

    def sync_weights(self, full: bool = False) -> float:
        """Send the current policy to the rollout backend; returns seconds spent. A collective under ZeRO-3: every
        rank exports (and keeps the copy for its own backend)."""
        t0 = time.perf_counter()
        keys = None if full or not self.cfg.sync_trainable_only else self.sync_keys
        self.policy_version += 1
        self.backend.set_weights(self.policy_version, export_weights(self.bagel, keys), full or keys is None)
        return time.perf_counter() - t0

    @staticmethod
    def request(metas: list[dict], G: int, seed: int, mode: str, window_start: int | None) -> SampleRequest:
        return SampleRequest(
            [m["prompt"] for m in metas], [dict(m) for m in metas], G, seed, mode, window_start
        )

    def sample_iter(self, req: SampleRequest):
        return self.backend.sample_iter(req)

    @property
    def restarts(self) -> int:
        return int(getattr(self.backend, "restarts", 0))

    def shutdown(self) -> None:
        self.backend.shutdown()
