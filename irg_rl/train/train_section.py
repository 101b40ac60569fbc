"""The loop, checkpoint and resume settings that SFT and RL share (the `train:` section's common part)."""

from __future__ import annotations

from dataclasses import dataclass

from irg_rl.config import MISSING

__all__ = ["BaseTrainSection"]


@dataclass
class BaseTrainSection:
    """Settings every trainer's `train:` section has; SFT and RL add their own (sft_config, rl_recipe)."""

    # output directory (checkpoints under <output_dir>/checkpoints, logs, the resolved recipe; RL also
    # trajectories and image grids)
    output_dir: str = MISSING
    # steps to run (SFT: optimiser steps; RL: rollout + update steps)
    max_steps: int = 100
    # random seed (SFT: model init, sampling, noise, dropout; RL: prompt order, rollout noise, SDE windows)
    seed: int = 0
    # mixed precision: auto (bf16 on GPU, with DeepSpeed for SFT; none on CPU) | no | bf16 | fp16
    mixed_precision: str = "auto"
    # recompute each layer's activations in the backward pass (less memory, more time)
    grad_checkpointing: bool = False
    # save a checkpoint every this many steps (and at the end; 0 = only at the end)
    save_every: int = 50
    # keep this many most recent checkpoints (0 = all)
    keep_last: int = 2
    # resume: "never" (fresh start), "auto" (latest complete checkpoint in output_dir, if any) or a checkpoint path
    resume_from: str = "auto"
    # log every this many steps
    log_every: int = 1
    # torch threads per process on CPU (0 = torch's default)
    cpu_threads: int = 0
    # stop after this many steps of this run even if max_steps is not reached (0 = off; for tests)
    stop_after_steps: int = 0
    # on resume, accept recipe changes that change what a step means (data, model, lr, group size, rewards, ...);
    # off: such a change is refused with the key and both values (irg_rl.train.resume)
    allow_recipe_change: bool = False
