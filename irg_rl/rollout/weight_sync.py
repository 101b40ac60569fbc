"""Getting the trainer's weights to the rollout workers.

`export_weights(model, keys)` gives the inference copy's state dict (LoRA deltas merged into the base weights,
so workers run a plain `BagelModel`), all on CPU; under DeepSpeed ZeRO-3 it gathers the partitioned parameters
chunk by chunk, collectively on every trainer rank. After the first full broadcast only `changing_keys(model)` (the
tensors an optimiser step can change) are sent: with LoRA on the generation expert that is the merged `*_moe_gen`
projections, a small share of the model.

Paths (`rollout.weight_sync`):
- `object_store`: one `ray.put` of the state dict per update; every worker's `set_weights` receives the same
  object (Ray resolves the reference in the worker, zero-copy for workers on the same node).
- `collective`: a torch.distributed broadcast from the trainer (rank 0) to the workers (ranks 1..N) over a
  dedicated group (`irg_rl/rollout/collective.py`), in flat per-dtype buckets. Backend `gloo` sends CPU tensors
  (tested on CPU); backend `nccl` sends CUDA tensors GPU to GPU (one GPU per process; NOT run: the GPU machines
  this project is lent have one GPU). `nccl` as a weight_sync value is an alias for `collective` with backend nccl.
  Order per update: the workers' `receive_weights` calls are started first, then the trainer broadcasts, then
  the pool waits on the calls, so no side waits on a collective the other has not reached.
  A replaced worker gets its first weights through the object store (the last full state, then the last
  partial one) and the group is re-formed, with a new key prefix, before the next broadcast: a collective needs
  every member idle, while a replacement is needed in the middle of sampling.
  The trainer keeps the last full and partial state dicts in memory for such replacements (the object store
  path keeps the same in the object store).
- `cuda_ipc`: workers on the trainer's own GPU map its bucket buffers and copy from them
  (`irg_rl/rollout/cuda_ipc.py`); the path for colocated workers, which NCCL cannot serve (tested on one H200).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch
from torch import nn

from irg_rl.distributed.weight_export import merged_state_dict
from irg_rl.rollout.collective import (
    BACKENDS,
    GroupInfo,
    WeightGroup,
    host_store,
    pack,
    plan_buckets,
    require_cuda,
)
from irg_rl.rollout.config import WEIGHT_SYNCS, RolloutConfig

__all__ = [
    "changing_keys",
    "export_weights",
    "ObjectStoreWeightSync",
    "CollectiveWeightSync",
    "resolve_backend",
    "make_weight_sync",
]

log = logging.getLogger(__name__)


def changing_keys(model: nn.Module) -> set[str]:
    """Names (in the merged, adapter-free layout) of the tensors an optimiser step can change."""
    keys: set[str] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if ".lora_" in name:  # an adapter: its delta is merged into the base layer's weight
            keys.add(name.split(".lora_")[0] + ".weight")
        else:
            keys.add(name.replace(".base_layer.", "."))
    return keys


def export_weights(
    model: nn.Module, keys: Iterable[str] | None = None, keep: bool = True
) -> dict[str, torch.Tensor]:
    """CPU state dict for the inference copies (LoRA merged); only `keys` when given.

    Under DeepSpeed ZeRO-3 this is a collective (every trainer rank must call it): parameters are gathered whole
    one chunk of modules at a time and copied to the CPU, so a 7B model is never whole twice on one GPU;
    `keep=False` ranks take part in the gathers and return {}.
    """
    return merged_state_dict(model, keys, gather=True, keep=keep)


class ObjectStoreWeightSync:
    """Broadcast through the Ray object store (CPU tensors)."""

    kind = "object_store"

    def put(self, state: dict[str, torch.Tensor]):
        import ray

        return ray.put(state)

    def broadcast(self, workers: list, version: int, ref, full: bool) -> list:
        """Start `set_weights` on every worker; returns the Ray references to wait on."""
        return [w.set_weights.remote(version, ref, full) for w in workers]

    def invalidate(self) -> None:
        """Nothing to rebuild when a worker is replaced."""

    def close(self) -> None:
        pass


class CollectiveWeightSync:
    """Broadcast over a dedicated torch.distributed group (trainer rank 0, workers 1..N); see module docstring."""

    kind = "collective"

    def __init__(self, backend: str, bucket_mb: float = 256.0, timeout_s: float = 600.0, host: str = ""):
        if backend not in BACKENDS:
            raise ValueError(f"collective weight sync backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "nccl":
            require_cuda(backend)
        self.backend, self.timeout_s, self.host = backend, float(timeout_s), host
        self.bucket_bytes = int(bucket_mb * 2**20)
        self._store = None
        self._group: WeightGroup | None = None
        self._members: list | None = None
        self.memberships = 0  # how many times the group was formed

    def put(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The state itself: the pool keeps it for replacements (sent to them through the object store)."""
        return state

    def invalidate(self) -> None:
        """Drop the trainer's side of the group; the next broadcast forms a new membership."""
        if self._group is not None:
            self._group.close()
        self._group, self._members = None, None

    def close(self) -> None:
        self.invalidate()
        self._store = None

    def _form(self, workers: list) -> None:
        import ray

        self.invalidate()
        if self._store is None:
            self.host = self.host or ray.util.get_node_ip_address()
            self._store = host_store(self.host, self.timeout_s)
        self.memberships += 1
        info = GroupInfo(
            self.backend,
            self.host,
            self._store.port,
            f"irg_rl_weights/{self.memberships}",
            len(workers) + 1,
            self.timeout_s,
        )
        joins = [w.join_weight_group.remote(info, rank) for rank, w in enumerate(workers, start=1)]
        try:  # blocks until every worker has joined
            group = WeightGroup(info, 0, store=self._store)
        except Exception as err:
            done, _ = ray.wait(joins, num_returns=len(joins), timeout=0)
            for r in done:
                ray.get(r)  # a worker's own error says more than the trainer's timeout
            raise RuntimeError(f"weight sync: forming the {self.backend} group failed: {err}") from err
        ray.get(joins)
        self._group, self._members = group, [w._actor_id for w in workers]

    def broadcast(self, workers: list, version: int, state: dict[str, torch.Tensor], full: bool) -> list:
        """Start every worker's `receive_weights`, then broadcast the buckets; returns the Ray references.

        A failed broadcast (a worker died) drops the group and returns normally: the references then say which
        workers failed, and the pool replaces the dead and resends to the living through the object store."""
        if self._group is None or self._members != [w._actor_id for w in workers]:
            self._form(workers)
        buckets = plan_buckets(state, self.bucket_bytes)
        refs = [w.receive_weights.remote(version, buckets, full) for w in workers]
        try:
            for b in buckets:
                self._group.broadcast(pack(state, b, self._group.device))
        except Exception as err:  # noqa: BLE001 - reported through the workers' references
            log.warning(
                "weight sync: %s broadcast of v%d failed (%s); dropping the group", self.backend, version, err
            )
            self.invalidate()
        return refs


def resolve_backend(cfg: RolloutConfig) -> str:
    """The collective backend `cfg` asks for: `nccl` for weight_sync nccl, `auto` -> nccl iff workers have GPUs."""
    if cfg.weight_sync == "nccl":
        return "nccl"
    if cfg.collective_backend == "auto":
        return "nccl" if cfg.gpus_per_worker > 0 else "gloo"
    return cfg.collective_backend


def make_weight_sync(cfg: RolloutConfig):
    """The weight sync `cfg.weight_sync` asks for (object_store | collective | nccl | cuda_ipc)."""
    if cfg.weight_sync == "object_store":
        return ObjectStoreWeightSync()
    if cfg.weight_sync in ("collective", "nccl"):
        return CollectiveWeightSync(
            resolve_backend(cfg), cfg.collective_bucket_mb, cfg.collective_timeout_s, cfg.collective_host
        )
    if cfg.weight_sync == "cuda_ipc":
        from irg_rl.rollout.cuda_ipc import CudaIpcWeightSync

        return CudaIpcWeightSync(cfg.collective_bucket_mb)
    raise ValueError(f"rollout.weight_sync must be one of {WEIGHT_SYNCS}, got {cfg.weight_sync!r}")
