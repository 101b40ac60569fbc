"""AdamW and the learning-rate schedule of an `OptimSection` (SFT and RL alike)."""

from __future__ import annotations

import math

import torch

from irg_rl.train.sections import OptimSection

__all__ = ["make_optimizer", "lr_factor", "make_scheduler"]


def make_optimizer(params: list[torch.nn.Parameter], o: OptimSection) -> torch.optim.Optimizer:
    if not params:
        raise ValueError("no trainable parameters (check the freeze section)")
    return torch.optim.AdamW(
        params, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps, weight_decay=o.weight_decay, foreach=False
    )


def lr_factor(step: int, o: OptimSection, max_steps: int) -> float:
    """Learning-rate multiplier at optimiser step `step` (0-based): linear warmup, then the schedule."""
    if o.warmup_steps > 0 and step < o.warmup_steps:
        return (step + 1) / o.warmup_steps
    if o.scheduler == "constant":
        return 1.0
    span = max(1, max_steps - o.warmup_steps)
    frac = min(1.0, (step - o.warmup_steps) / span)
    if o.scheduler == "linear":
        return 1.0 - (1.0 - o.min_lr_ratio) * frac
    return o.min_lr_ratio + (1.0 - o.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * frac))


def make_scheduler(opt: torch.optim.Optimizer, o: OptimSection, max_steps: int):
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, o, max_steps))
