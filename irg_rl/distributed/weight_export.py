"""The model's weights in the loader layout with LoRA deltas merged: what checkpoints save and weight sync sends.

ZeRO-3-safe: with partitioned parameters the export gathers whole modules a chunk at a time on every rank.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch
from torch import nn

from irg_rl.distributed.zero3 import gathered, is_partitioned

__all__ = ["GATHER_CHUNK_NUMEL", "merged_state_dict"]


# parameter elements gathered at once by `merged_state_dict(gather=True)` (a module bigger than this goes alone)
GATHER_CHUNK_NUMEL = 1 << 27


def _export_units(model: nn.Module) -> list[tuple[str, nn.Module, bool]]:
    """(prefix, module, is_lora) per module owning exported tensors; a LoRA layer is one unit with its adapters."""
    from peft.tuners.lora import LoraLayer

    units, inside = [], None
    for name, mod in model.named_modules(remove_duplicate=False):
        if inside is not None and name.startswith(inside + "."):
            continue  # the base layer and adapters of a LoRA unit already listed
        inside = None
        if isinstance(mod, LoraLayer):
            units.append((name, mod, True))
            inside = name
        elif mod._parameters or mod._buffers:
            units.append((name, mod, False))
    return units


def _own_tensors(prefix: str, mod: nn.Module) -> dict[str, torch.Tensor]:
    """A module's own parameters and persistent buffers under their state-dict names."""
    pre = f"{prefix}." if prefix else ""
    out = {pre + n: p for n, p in mod._parameters.items() if p is not None}
    skip = mod._non_persistent_buffers_set
    out.update({pre + n: b for n, b in mod._buffers.items() if b is not None and n not in skip})
    return out


def _unit_keys(prefix: str, mod: nn.Module, is_lora: bool) -> list[str]:
    return list(_own_tensors(prefix, mod.base_layer if is_lora else mod))


def _unit_params(mod: nn.Module, is_lora: bool) -> list[nn.Parameter]:
    """What must be whole to compute the unit: a LoRA layer's every parameter, else the module's own."""
    return list(mod.parameters()) if is_lora else [p for p in mod._parameters.values() if p is not None]


def _unit_tensors(prefix: str, mod: nn.Module, is_lora: bool) -> dict[str, torch.Tensor]:
    """The unit's merged tensors (call with its parameters whole)."""
    if not is_lora:
        return {k: v.detach() for k, v in _own_tensors(prefix, mod).items()}
    out = {k: v.detach() for k, v in _own_tensors(prefix, mod.base_layer).items()}
    key = f"{prefix}.weight"
    delta = sum(mod.get_delta_weight(a) for a in mod.active_adapters)
    out[key] = out[key] + delta.to(out[key].dtype)
    return out


def merged_state_dict(
    model: nn.Module,
    keys: Iterable[str] | None = None,
    *,
    gather: bool = False,
    keep: bool = True,
    chunk_numel: int = GATHER_CHUNK_NUMEL,
) -> dict[str, torch.Tensor]:
    """The model's state dict in its original names with LoRA deltas merged (what the loader layout holds).

    `keys` restricts the result (unknown names are a KeyError). `gather=True` is the ZeRO-3-safe form: modules are
    gathered whole a chunk of about `chunk_numel` elements at a time (so the model is never whole twice on one
    device) and every tensor returned is a fresh CPU copy; with partitioned parameters it is a collective that
    every rank must call, and `keep=False` ranks take part without keeping anything (they return {}).
    Without `gather` the tensors are detached views (merged weights new tensors) on the model's device.
    """
    if not gather and is_partitioned(model):
        raise RuntimeError(
            "merged_state_dict: the model's parameters are DeepSpeed ZeRO-3 partitions; call it with "
            "gather=True on every rank (a collective) to read whole weights"
        )
    wanted = None if keys is None else set(keys)
    units = []
    for prefix, mod, is_lora in _export_units(model):
        names = _unit_keys(prefix, mod, is_lora)
        if wanted is None or wanted.intersection(names):
            units.append((prefix, mod, is_lora, names))
    if wanted is not None:
        missing = wanted - {k for u in units for k in u[3]}
        if missing:
            raise KeyError(f"merged_state_dict: model has no tensors {sorted(missing)[:5]}")
    partitioned = is_partitioned(model)
    out: dict[str, torch.Tensor] = {}
    for chunk in _chunks(units, chunk_numel):
        if gather and not keep and not partitioned:
            break  # no collective to take part in, nothing to keep
        params = list({id(p): p for _, mod, lo, _ in chunk for p in _unit_params(mod, lo)}.values())
        with gathered(params) if gather else contextlib.nullcontext(), torch.no_grad():
            for prefix, mod, is_lora, _ in chunk if keep else ():
                for k, v in _unit_tensors(prefix, mod, is_lora).items():
                    out[k] = v.to("cpu", copy=True).contiguous() if gather else v
    if wanted is not None:
        out = {k: v for k, v in out.items() if k in wanted}
    return out


def _chunks(units: list, chunk_numel: int) -> list[list]:
    """Consecutive units grouped up to about `chunk_numel` parameter elements (ZeRO-3 sizes: `ds_numel`)."""
    chunks, cur, size = [], [], 0
    for u in units:
        n = sum(getattr(p, "ds_numel", p.numel()) for p in _unit_params(u[1], u[2]))
        if cur and size + n > chunk_numel:
            chunks.append(cur)
            cur, size = [], 0
        cur.append(u)
        size += n
    if cur:
        chunks.append(cur)
    return chunks
