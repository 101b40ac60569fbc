"""Recipe sections that SFT and RL share: the `train:` section's common part (loop, checkpoints, resume), the
optimiser and schedule, freezing and LoRA, and logging."""

from __future__ import annotations

from dataclasses import dataclass, field

from irg_rl.config import MISSING

__all__ = [
    "SCHEDULERS",
    "PRECISIONS",
    "WANDB_MODES",
    "BaseTrainSection",
    "OptimSection",
    "LoraSection",
    "FreezeSection",
    "LogSection",
]

SCHEDULERS = ("constant", "cosine", "linear")
PRECISIONS = ("auto", "no", "bf16", "fp16")
WANDB_MODES = ("auto", "online", "offline", "disabled")


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


@dataclass
class OptimSection:
    """AdamW and the learning-rate schedule."""

    # peak learning rate
    lr: float = 2e-5
    # linear warmup steps from 0 to lr
    warmup_steps: int = 500
    # schedule after warmup: constant | cosine | linear (to min_lr_ratio * lr at train.max_steps)
    scheduler: str = "constant"
    # final learning rate as a fraction of lr (cosine, linear)
    min_lr_ratio: float = 0.0
    # AdamW beta1
    beta1: float = 0.9
    # AdamW beta2
    beta2: float = 0.95
    # AdamW epsilon
    eps: float = 1e-15
    # AdamW decoupled weight decay
    weight_decay: float = 0.0
    # gradient clipping by global norm (0 = off)
    grad_clip: float = 1.0


@dataclass
class LoraSection:
    """PEFT LoRA adapters on modules whose names match a pattern (the base weights are then frozen)."""

    # add LoRA adapters and train only them (plus modules_to_save)
    enabled: bool = False
    # regular expression matched (fully) against module names, e.g. '.*_moe_gen' for the generation expert
    target_modules: str = r".*(q_proj|k_proj|v_proj|o_proj)_moe_gen"
    # adapter rank
    r: int = 64
    # LoRA alpha (scale = alpha / r)
    alpha: float = 64.0
    # dropout on the adapter input
    dropout: float = 0.0


@dataclass
class FreezeSection:
    """Which parts are frozen (the VAE always is)."""

    # freeze the whole LLM (both experts, embeddings, head)
    llm: bool = False
    # freeze the SigLIP ViT and its connector
    vit: bool = False
    # freeze the understanding expert (LLM weights without the _moe_gen suffix, embeddings, lm_head)
    und_expert: bool = False
    # freeze the generation expert (*_moe_gen LLM weights, vae2llm, llm2vae, time embedder)
    gen_expert: bool = False
    # LoRA adapters
    lora: LoraSection = field(default_factory=LoraSection)


@dataclass
class LogSection:
    """Experiment tracking and the progress bar."""

    # wandb mode: auto (online with WANDB_API_KEY, offline otherwise; WANDB_MODE wins) | online | offline | disabled
    wandb_mode: str = "auto"
    # wandb project
    project: str = "irg-rl"
    # run name ("" = output_dir's name)
    run_name: str = ""
    # show a tqdm progress bar with loss, tokens/s and ETA on the main process
    progress_bar: bool = True
