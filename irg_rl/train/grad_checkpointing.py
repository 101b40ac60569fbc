"""Activation (gradient) checkpointing of BAGEL's decoder and ViT layers, shared by SFT and RL updates."""

from __future__ import annotations

import functools

from torch import nn


def enable_grad_checkpointing(bagel: nn.Module) -> int:
    """Recompute each LLM and ViT layer in the backward pass (non-reentrant checkpoints); returns layers wrapped.

    Without gradients (rollout sampling, no_grad re-scoring) the wrapped layers run as before. Idempotent.
    """
    from torch.utils.checkpoint import checkpoint

    n = 0
    for module in bagel.modules():
        layers = getattr(module, "layers", None)
        if isinstance(layers, nn.ModuleList):
            for layer in layers:
                if not getattr(layer, "_irg_ckpt", False):
                    layer.forward = functools.partial(checkpoint, layer.forward, use_reentrant=False)
                    layer._irg_ckpt = True
                    n += 1
    return n
