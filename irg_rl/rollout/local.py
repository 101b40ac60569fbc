"""`LocalRollout`: the `rollout.engine: local` path - the same worker class and interface, in this process.

It samples with its own full inference copy (fed by `export_weights`), never with the trainer's module, so it is
safe under DeepSpeed ZeRO-3 with several processes: generation lengths differ per rank, but sampling runs no
collective. The price is a whole model per trainer rank; at 7B scale use `engine: ray`.
"""

from __future__ import annotations

from collections.abc import Iterator

from irg_rl.inference.trajectory import TrajectoryBatch
from irg_rl.rollout.config import RolloutConfig
from irg_rl.rollout.pool import merge_chunks
from irg_rl.rollout.worker import RolloutWorker, SampleRequest, WorkerSpec

__all__ = ["LocalRollout"]


class LocalRollout:
    """One in-process `RolloutWorker` (its own inference copy of the policy); chunks run one after another."""

    def __init__(self, spec: WorkerSpec, cfg: RolloutConfig):
        self.cfg = cfg
        self.worker = RolloutWorker(spec)
        self.version = -1
        self.restarts = 0

    def set_weights(self, version: int, state: dict, full: bool) -> None:
        self.version = self.worker.set_weights(version, state, full)

    def sample_iter(self, request: SampleRequest) -> Iterator[tuple[int, TrajectoryBatch]]:
        n = len(request.prompts)
        step = self.cfg.chunk_prompts or n
        for c, a in enumerate(range(0, n, step)):
            yield c, self.worker.sample(request.chunk(a, min(a + step, n)))

    def sample(self, request: SampleRequest) -> TrajectoryBatch:
        return merge_chunks(request, dict(self.sample_iter(request)))

    def shutdown(self) -> None:
        pass
