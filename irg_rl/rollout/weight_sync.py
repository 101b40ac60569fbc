"""Getting the trainer's weights to the rollout workers.

`export_weights(model, keys)` gives the inference copy's state dict (LoRA deltas merged into the base weights,
so workers run a plain `BagelModel`), all on CPU. After the first full broadcast only `changing_keys(model)` (the
tensors an optimiser step can change) are sent: with LoRA on the generation expert that is the merged `*_moe_gen`
projections, a small share of the model.

Paths:
- `object_store` (implemented, CPU): one `ray.put` of the state dict per update; every worker's `set_weights`
  receives the same object (Ray resolves the reference in the worker, zero-copy for workers on the same node).
- `nccl` (NOT implemented): a GPU broadcast from trainer rank 0 to the workers over a NCCL group (or CUDA-IPC
  handles for workers colocated on the trainer's GPU), as OpenRLHF/verl do. It needs GPUs to test, which this
  project's CI does not have; `NcclWeightSync` raises NotImplementedError saying so. On GPU nodes use
  `object_store` (tensors move device -> host -> object store -> device).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from irg_rl.train.freeze import merged_state_dict

__all__ = ["changing_keys", "export_weights", "ObjectStoreWeightSync", "NcclWeightSync", "make_weight_sync"]


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


def export_weights(model: nn.Module, keys: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """CPU state dict for the inference copies (LoRA merged); only `keys` when given."""
    state = merged_state_dict(model)
    if keys is not None:
        wanted = set(keys)
        missing = wanted - state.keys()
        if missing:
            raise KeyError(f"export_weights: model has no tensors {sorted(missing)[:5]}")
        state = {k: v for k, v in state.items() if k in wanted}
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}


class ObjectStoreWeightSync:
    """Broadcast through the Ray object store (CPU tensors)."""

    kind = "object_store"

    def put(self, state: dict[str, torch.Tensor]):
        import ray

        return ray.put(state)

    def broadcast(self, workers: list, version: int, ref, full: bool) -> list:
        """Start `set_weights` on every worker; returns the Ray references to wait on."""
        return [w.set_weights.remote(version, ref, full) for w in workers]


class NcclWeightSync:
    """GPU broadcast over NCCL / CUDA-IPC: documented design, not implemented (see module docstring)."""

    kind = "nccl"

    def __init__(self) -> None:
        raise NotImplementedError(
            "rollout.weight_sync=nccl is not implemented: the NCCL / CUDA-IPC broadcast needs GPUs to build and "
            "test. Use rollout.weight_sync=object_store (works on CPU and GPU nodes)."
        )


def make_weight_sync(kind: str):
    if kind == "object_store":
        return ObjectStoreWeightSync()
    if kind == "nccl":
        return NcclWeightSync()
    raise ValueError(f"rollout.weight_sync must be object_store or nccl, got {kind!r}")
