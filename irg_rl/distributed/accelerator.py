"""The accelerate `Accelerator` both trainers use: mixed precision, DDP / gloo handlers, and the DeepSpeed config
values the recipe (not the accelerate file) owns."""

from __future__ import annotations

import os

import torch
from torch import nn

__all__ = ["AUTO_PRECISION", "PackedForward", "resolve_precision", "make_accelerator"]

# what mixed_precision "auto" becomes: "deepspeed_bf16" = bf16 only on CUDA under DeepSpeed (SFT: DeepSpeed runs a
# bf16 module with fp32 master weights, while plain autocast over BagelModel.forward_packed mixes dtypes: fp32
# buffers, bf16 expert outputs); "cuda_bf16" = bf16 whenever CUDA is there (RL re-scoring, measured on an H200)
AUTO_PRECISION = ("deepspeed_bf16", "cuda_bf16")


def resolve_precision(mixed_precision: str, auto: str) -> str:
    """accelerate's mixed_precision for a recipe value (auto | no | bf16 | fp16) under the `auto` policy."""
    if mixed_precision != "auto":
        return mixed_precision
    if auto not in AUTO_PRECISION:
        raise ValueError(f"auto precision policy must be one of {AUTO_PRECISION}, got {auto!r}")
    if not torch.cuda.is_available():
        return "no"
    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    return "bf16" if auto == "cuda_bf16" or deepspeed else "no"


def make_accelerator(
    mixed_precision: str, grad_clip: float, grad_accum: int = 1, auto: str = "deepspeed_bf16"
):
    """An Accelerator; under DeepSpeed one packed sequence is one micro-batch, and the accumulation and clipping
    are the recipe's (DeepSpeed clips inside its step; accelerate's clip_grad_norm_ then only reports the norm)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, InitProcessGroupKwargs

    handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)]
    if not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        handlers.append(InitProcessGroupKwargs(backend="gloo"))
    acc = Accelerator(
        mixed_precision=resolve_precision(mixed_precision, auto),
        gradient_accumulation_steps=grad_accum,
        kwargs_handlers=handlers,
    )
    ds = acc.state.deepspeed_plugin
    if ds is not None:
        conf = ds.deepspeed_config
        conf["train_micro_batch_size_per_gpu"] = 1
        conf["gradient_accumulation_steps"] = grad_accum
        conf["gradient_clipping"] = grad_clip
    return acc


class PackedForward(nn.Module):
    """`forward(seq) -> (ce_logits, velocity)` of `BagelModel.forward_packed`, so that the wrappers accelerate puts
    around it (DDP, DeepSpeed) see every forward and reduce / gather in it."""

    def __init__(self, bagel: nn.Module):
        super().__init__()
        self.bagel = bagel

    def forward(self, seq):
        out = self.bagel.forward_packed(seq)
        return out.ce_logits, out.velocity
