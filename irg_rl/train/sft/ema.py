"""Exponential moving average of the trainable weights (the EMA weights are what gets evaluated).

Shadows are fp32 copies of the trainable parameters, keyed by parameter name. Under DeepSpeed ZeRO-3 a parameter's
data is only this rank's partition (`param.ds_tensor`); the EMA then tracks that partition, so nothing is gathered
per step, and `swapped_into(model)` lets the ordinary gathered save path write the EMA weights.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


def _local(param: nn.Parameter) -> torch.Tensor:
    """The tensor this rank owns for `param` (ZeRO-3 partition or the full data)."""
    return param.ds_tensor if hasattr(param, "ds_tensor") else param.data


class EMA:
    """EMA of `model`'s trainable parameters: `shadow <- decay * shadow + (1 - decay) * param`."""

    def __init__(self, model: nn.Module, decay: float = 0.995):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.shadow: dict[str, torch.Tensor] = {
            name: _local(p).detach().float().clone()
            for name, p in model.named_parameters()
            if p.requires_grad
        }

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for name, p in model.named_parameters():
            if name in self.shadow:
                self.shadow[name].lerp_(_local(p).detach().float(), 1.0 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self.shadow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = sorted(set(self.shadow) - set(state))
        if missing:
            raise KeyError(f"EMA state lacks {len(missing)} trainable parameters, e.g. {missing[:3]}")
        for k in self.shadow:
            if state[k].shape != self.shadow[k].shape:
                raise ValueError(
                    f"EMA state '{k}': shape {tuple(state[k].shape)} != {tuple(self.shadow[k].shape)}"
                )
            self.shadow[k].copy_(state[k])

    def full_state_dict(self, model_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A full model state dict with the EMA values for trainable tensors (frozen ones from `model_state`).

        Only valid when parameters are not partitioned (ZeRO-0/1/2); use `swapped_into` under ZeRO-3.
        """
        out = dict(model_state)
        for k, v in self.shadow.items():
            if k in out:
                if out[k].shape != v.shape:
                    raise RuntimeError(f"EMA '{k}' is a partition; gather with EMA.swapped_into under ZeRO-3")
                out[k] = v.to(out[k].dtype)
        return out

    @contextlib.contextmanager
    def swapped_into(self, model: nn.Module) -> Iterator[None]:
        """Temporarily put the EMA values into the model's (local) parameters; restores them on exit."""
        backup = {}
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in self.shadow:
                    t = _local(p)
                    backup[name] = t.clone()
                    t.copy_(self.shadow[name].to(t.dtype))
        try:
            yield
        finally:
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if name in backup:
                        _local(p).copy_(backup[name])
