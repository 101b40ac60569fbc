"""`RolloutPool`: rollout worker actors on Ray, prompt chunks dispatched across them, dead workers replaced.

Every chunk of a `SampleRequest` is assigned to a worker slot and submitted at once (an actor runs its calls in
order). `sample_iter` yields each chunk as it finishes, so rewards can score it while the others still sample.
A worker whose call fails with `ray.exceptions.RayActorError` (process died, node lost, killed) is replaced by a
fresh actor that first receives the latest weights (the last full broadcast, then the last partial one), and
every chunk it had not returned is resubmitted to it. With `weight_sync: collective` (and `cuda_ipc`) the replacement's first
weights go through the object store and the weight group is re-formed before the next broadcast (see
`irg_rl/rollout/weight_sync.py`); a worker that died between updates is found by a ping before each broadcast,
since a dead member would stall the collective until its timeout. Results are keyed by chunk, accepted once,
and checked for completeness, so every trajectory is counted exactly once.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator

from irg_rl.inference.trajectory import TrajectoryBatch
from irg_rl.rollout.config import RolloutConfig
from irg_rl.rollout.weight_sync import make_weight_sync
from irg_rl.rollout.worker import RolloutWorker, SampleRequest, WorkerSpec

__all__ = ["init_ray", "RolloutPool", "merge_chunks"]

log = logging.getLogger(__name__)


def init_ray(cfg: RolloutConfig) -> None:
    """Join `cfg.address` or start a local Ray instance (no dashboard); no-op when Ray is already up."""
    import ray

    if ray.is_initialized():
        return
    if cfg.address:
        ray.init(address=cfg.address, include_dashboard=False, log_to_driver=True)
    else:
        ray.init(num_cpus=cfg.ray_num_cpus or None, include_dashboard=False)


def merge_chunks(request: SampleRequest, chunks: dict[int, TrajectoryBatch]) -> TrajectoryBatch:
    """Concatenate per-chunk batches in prompt order, checking each trajectory appears exactly once."""
    parts = [chunks[i] for i in sorted(chunks)]
    trajs = [t for b in parts for t in b.trajectories]
    G = request.samples_per_prompt
    want = [(p, k) for p in range(len(request.prompts)) for k in range(G)]
    got = [(t.prompt_index, t.sample_index) for t in trajs]
    if got != want:
        first = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), len(got))
        raise RuntimeError(
            f"rollout: trajectories do not match the request ({len(got)} received, {len(want)} expected; "
            f"first mismatch at position {first})"
        )
    stats: dict[str, float] = {}
    for b in parts:
        for k, v in b.stats.items():
            if k not in ("policy_version", "worker_pid"):
                stats[k] = stats.get(k, 0.0) + v
    versions = {b.stats.get("policy_version") for b in parts}
    if len(versions) > 1:
        raise RuntimeError(f"rollout: chunks were sampled with different policy versions {sorted(versions)}")
    stats["policy_version"] = versions.pop() if versions else -1.0
    merged = TrajectoryBatch(trajs, parts[0].settings, parts[0].mode, parts[0].branch_segments, stats)
    merged.settings = dict(merged.settings)
    return merged


class RolloutPool:
    """`num_workers` Ray actors running `RolloutWorker`; same interface as `LocalRollout`."""

    def __init__(self, spec: WorkerSpec, cfg: RolloutConfig):
        import ray

        init_ray(cfg)
        self.cfg = cfg
        self.sync = make_weight_sync(cfg)
        opts: dict = {"num_cpus": cfg.cpus_per_worker, "num_gpus": cfg.gpus_per_worker, "max_restarts": 0}
        if self.sync.kind == "cuda_ipc":  # workers must see the trainer's GPU, whichever one Ray assigns them
            from irg_rl.rollout.cuda_ipc import NOSET_CUDA_ENV

            spec = dataclasses.replace(spec, cuda_uuid=self.sync.uuid)
            opts["runtime_env"] = {"env_vars": dict(NOSET_CUDA_ENV)}
        self.spec = spec
        if cfg.colocate:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            node = ray.get_runtime_context().get_node_id()
            opts["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=node, soft=False)
        self._actor_cls = ray.remote(**opts)(RolloutWorker)
        self._spec_ref = ray.put(spec)
        self.workers = [self._actor_cls.remote(self._spec_ref) for _ in range(cfg.num_workers)]
        self._full: tuple[int, object] | None = None
        self._partial: tuple[int, object] | None = None
        self.version = -1
        self.restarts = 0
        # test / fault-injection hook: called with the pool after a request's chunks are submitted
        self.on_submitted: Callable[[RolloutPool], None] | None = None

    # ---- weights ---------------------------------------------------------------------------------------

    def set_weights(self, version: int, state: dict, full: bool) -> None:
        """Broadcast weights of policy `version` to every worker and wait for them to load."""
        import ray

        ref = self.sync.put(state)
        if self.sync.kind == "collective":
            self._replace_dead()
        if full:
            self._full, self._partial = (version, ref), None
        else:
            self._partial = (version, ref)
        pending = self.sync.broadcast(self.workers, version, ref, full)
        for i, p in enumerate(pending):
            try:
                ray.get(p)
            except ray.exceptions.RayActorError:
                self._replace(i, f"died while loading weights v{version}")
            except ray.exceptions.RayTaskError as err:
                if self.sync.kind != "collective":
                    raise
                # the collective failed (another member died): resend this update through the object store
                log.warning("rollout worker %d missed the broadcast of v%d (%s); resending", i, version, err)
                self.sync.invalidate()
                ray.get(self.workers[i].set_weights.remote(version, ref, full))
        self.version = version

    def _replace_dead(self) -> None:
        """Replace workers that died since the last call (found by a ping)."""
        import ray

        pings = [w.get_version.remote() for w in self.workers]
        for i, p in enumerate(pings):
            try:
                ray.get(p)
            except ray.exceptions.RayActorError:
                self._replace(i, "found dead before a weight broadcast")

    def _replace(self, slot: int, why: str) -> None:
        """Start a fresh actor in `slot` with the latest weights."""
        import ray

        if self._full is None:
            raise RuntimeError("rollout: cannot restart a worker before any weights were broadcast")
        self.restarts += 1
        log.warning("rollout worker %d %s; restarting it with policy v%d", slot, why, self.version)
        try:
            ray.kill(self.workers[slot])
        except Exception:  # noqa: BLE001 - the actor is already gone; killing is best effort
            pass
        actor = self._actor_cls.remote(self._spec_ref)
        ray.get(actor.set_weights.remote(self._full[0], self._full[1], True))
        if self._partial is not None:
            ray.get(actor.set_weights.remote(self._partial[0], self._partial[1], False))
        self.workers[slot] = actor
        self.sync.invalidate()  # a collective group must be re-formed with the new member

    # ---- sampling --------------------------------------------------------------------------------------

    def _chunks(self, request: SampleRequest) -> list[SampleRequest]:
        n = len(request.prompts)
        if self.cfg.chunk_prompts > 0:
            return [
                request.chunk(a, min(a + self.cfg.chunk_prompts, n))
                for a in range(0, n, self.cfg.chunk_prompts)
            ]
        return request.split(len(self.workers))

    def sample_iter(self, request: SampleRequest) -> Iterator[tuple[int, TrajectoryBatch]]:
        """Yield (chunk id, batch) as chunks finish; dead workers are replaced and their chunks resubmitted."""
        import ray

        if self.version < 0:
            raise RuntimeError("rollout: set_weights must be called before sampling")
        chunks = self._chunks(request)
        owner = {c: c % len(self.workers) for c in range(len(chunks))}
        inflight = {self.workers[owner[c]].sample.remote(chunks[c]): c for c in range(len(chunks))}
        if self.on_submitted is not None:
            self.on_submitted(self)
        done: set[int] = set()
        restarts_here = 0
        while inflight:
            ready, _ = ray.wait(list(inflight), num_returns=1)
            ref = ready[0]
            c = inflight.pop(ref)
            try:
                batch = ray.get(ref)
            except ray.exceptions.RayActorError as err:
                slot = owner[c]
                lost = [c] + [x for x in inflight.values() if owner[x] == slot]
                for r in [r for r, x in inflight.items() if owner[x] == slot]:
                    inflight.pop(r)
                restarts_here += 1
                if restarts_here > self.cfg.max_restarts:
                    raise RuntimeError(
                        f"rollout: {restarts_here} worker deaths in one sampling call (rollout.max_restarts="
                        f"{self.cfg.max_restarts}); last error: {err}"
                    ) from err
                self._replace(slot, f"died during sampling ({type(err).__name__})")
                for x in sorted(lost):
                    inflight[self.workers[slot].sample.remote(chunks[x])] = x
                continue
            if c in done:  # cannot happen with the bookkeeping above; refuse to double count
                raise RuntimeError(f"rollout: chunk {c} returned twice")
            done.add(c)
            yield c, batch
        if len(done) != len(chunks):
            raise RuntimeError(f"rollout: {len(chunks) - len(done)} chunks never returned")

    def sample(self, request: SampleRequest) -> TrajectoryBatch:
        return merge_chunks(request, dict(self.sample_iter(request)))

    def shutdown(self) -> None:
        import ray

        self.sync.close()
        for w in self.workers:
            ray.kill(w)
        self.workers = []
