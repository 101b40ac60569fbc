"""Top-level typed RL recipes: `GRPORecipe` (scripts/grpo.py) and `DPORecipe` (scripts/dpo.py).

Both start from a model checkpoint (an SFT run directory, a training checkpoint or a BAGEL-layout directory),
sample two-round IRG trajectories with the rollout section's backend, score them with the rewards section, and
train with the optimiser / freeze (LoRA) sections shared with SFT. `validate()` names the field to fix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from irg_rl.config import ConfigError
from irg_rl.data.task_plugin import BALANCES as PROMPT_BALANCES
from irg_rl.inference.engine_config import IRGSamplingConfig, tiny_sampling
from irg_rl.models.configs import ModelRecipe
from irg_rl.rollout.config import RolloutConfig
from irg_rl.rollout.rewards import RewardsConfig
from irg_rl.train.rl.config import CreditConfig, DPOConfig, GRPOConfig, NFTConfig
from irg_rl.train.sections import PRECISIONS, BaseTrainSection, FreezeSection, LogSection, OptimSection

__all__ = [
    "PromptSection",
    "RLTrainSection",
    "EvalSection",
    "GRPORecipe",
    "NFTRecipe",
    "DPORecipe",
    "REFERENCES",
]

# what the KL / DPO reference model is
REFERENCES = ("auto", "adapter_disabled", "frozen_copy")


def _rl_optim() -> OptimSection:
    return OptimSection(lr=1e-5, warmup_steps=0, grad_clip=1.0)


@dataclass
class PromptSection:
    """Where training prompts come from."""

    # a task plug-in's train split (generated; the project ships "shapes" = ShapesWorld), or a JSONL file with one
    # {"prompt": ..., ...metadata} per line
    source: str = "shapes"
    # task: distinct training prompts drawn from the train split
    num_train: int = 2000
    # task: the plug-in's options (ShapesWorld: world fields; must match the world the SFT data was built with)
    options: dict[str, Any] = field(default_factory=dict)
    # prompts per rollout step on each process (each sampled G times)
    per_step: int = 8
    # task: "tag" = tags take turns (ShapesWorld: each tag 1/6 of the prompts); "prompt" = every train prompt
    # equally likely, so tags weigh as in the held-out evaluation
    balance: str = "tag"


@dataclass
class RLTrainSection(BaseTrainSection):
    """The RL loop, outputs, checkpoints and resume (shared settings in BaseTrainSection)."""

    # trajectories per re-scoring forward pass (gradients accumulate across them; 0 = all at once). DPO keeps a
    # pair's two trajectories in one pass: micro_batch // 2 pairs per pass (at least one)
    micro_batch: int = 0
    # raise (instead of logging a warning) when the first inner step's ratio is not 1 within grpo.ratio_check_tol
    strict_ratio_check: bool = False
    # save every this many steps's trajectories to <output_dir>/rollouts (0 = never); offline DPO reads them
    save_trajectories_every: int = 1
    # log an image grid (image_1 | image_2, prompt, reflection, rewards) every this many steps (0 = never)
    image_grid_every: int = 10
    # trajectories shown in an image grid
    image_grid_rows: int = 8


@dataclass
class EvalSection:
    """Held-out evaluation (deterministic Euler images, scored by the metric rewards)."""

    # evaluate every this many steps (0 = only before training and at the end)
    every: int = 0
    # held-out prompts (ShapesWorld heldout split; a JSONL file for other sources)
    num_prompts: int = 200
    # held-out prompt file for non-ShapesWorld sources ("" = none: no evaluation)
    file: str = ""
    # evaluate before the first step
    at_start: bool = True
    # seed of the held-out prompts and of the sampling noise
    seed: int = 12345


@dataclass
class _RLBase:
    # the model: a checkpoint directory (SFT run dir, training checkpoint or BAGEL layout) or a preset
    model: ModelRecipe = field(default_factory=ModelRecipe)
    # engine settings used for rollouts (SDE noise and window included; samples_per_prompt = the group size)
    sampling: IRGSamplingConfig = field(default_factory=tiny_sampling)
    # rollout backend and placement
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    # rewards
    rewards: RewardsConfig = field(default_factory=RewardsConfig)
    # training prompts
    prompts: PromptSection = field(default_factory=PromptSection)
    # optimiser (AdamW) and schedule
    optim: OptimSection = field(default_factory=_rl_optim)
    # frozen parts and LoRA (PEFT) adapters
    freeze: FreezeSection = field(default_factory=FreezeSection)
    # reference model for KL / DPO: auto (adapter-disabled under LoRA, else a frozen copy) | adapter_disabled | frozen_copy
    reference: str = "auto"
    # loop and outputs
    train: RLTrainSection = field(default_factory=RLTrainSection)
    # held-out evaluation
    eval: EvalSection = field(default_factory=EvalSection)
    # wandb and progress bar
    log: LogSection = field(default_factory=LogSection)

    def _validate_common(self, group_size: int) -> None:
        self.sampling.validate("sampling")
        self.rollout.validate("rollout")
        if not self.rewards.verdict_wrong_weight > 0:
            raise ConfigError(
                f"rewards.verdict_wrong_weight must be > 0, got {self.rewards.verdict_wrong_weight}"
            )
        if self.sampling.parity != "none":
            raise ConfigError(
                f"sampling.parity={self.sampling.parity!r} is an evaluation mode: re-tokenized thinks no longer "
                "match the recorded token ids, so RL could not re-score them; set sampling.parity: none"
            )
        if self.sampling.rounds != 2:
            raise ConfigError(
                "sampling.rounds: RL over IRG trajectories needs 2 rounds (think-image-reflect-image)"
            )
        if self.reference not in REFERENCES:
            raise ConfigError(f"reference must be one of {REFERENCES}, got {self.reference!r}")
        if self.reference == "adapter_disabled" and not self.freeze.lora.enabled:
            raise ConfigError(
                "reference=adapter_disabled needs freeze.lora.enabled=true (or use frozen_copy)"
            )
        if self.train.mixed_precision not in PRECISIONS:
            raise ConfigError(f"train.mixed_precision must be one of {PRECISIONS}")
        if self.prompts.per_step < 1 or self.train.max_steps < 1:
            raise ConfigError("prompts.per_step and train.max_steps must be >= 1")
        if self.prompts.balance not in PROMPT_BALANCES:
            raise ConfigError(
                f"prompts.balance must be one of {PROMPT_BALANCES}, got {self.prompts.balance!r}"
            )
        if group_size < 2:
            raise ConfigError(f"group size must be >= 2, got {group_size}")
        if self.train.micro_batch < 0:
            raise ConfigError(f"train.micro_batch must be >= 0, got {self.train.micro_batch}")

    def _validate_verdict(self, credit, section: str) -> None:
        """A verdict weight needs verdicts (sampling.keep_pattern); a reading weight needs rewards.reading."""
        if credit.verdict > 0 and not self.sampling.keep_pattern:
            raise ConfigError(
                f"{section}.verdict={credit.verdict} needs sampling.keep_pattern (the regular expression of a keep "
                f"verdict in think_2), or set {section}.verdict: 0"
            )
        if credit.reading > 0 and not self.rewards.reading:
            raise ConfigError(
                f"{section}.reading={credit.reading} needs rewards.reading (e.g. [{{name: shapes_reading}}]), "
                f"or set {section}.reading: 0"
            )


@dataclass
class GRPORecipe(_RLBase):
    """GRPO over full think-image-reflect-image trajectories."""

    # GRPO maths: group size, clip ranges, KL, credit assignment, inner updates, SDE window schedule
    grpo: GRPOConfig = field(default_factory=GRPOConfig)

    def validate(self) -> None:
        self.grpo.validate("grpo")
        self._validate_common(self.grpo.group_size)
        if self.sampling.sde_window_size > 0 and not self.sampling.noise_level > 0:
            raise ConfigError(
                f"sampling.noise_level must be > 0 for SDE log-probs (sde_window_size "
                f"{self.sampling.sde_window_size}), got {self.sampling.noise_level}"
            )
        self._validate_verdict(self.grpo.credit, "grpo.credit")
        b = self.sampling.round2_branches
        if self.grpo.group_size % b:
            raise ConfigError(
                f"grpo.group_size={self.grpo.group_size} must be a multiple of sampling.round2_branches={b}"
            )
        if self.grpo.credit.round_2_baseline == "image_1" and b < 2:
            raise ConfigError(
                "grpo.credit.round_2_baseline: image_1 compares continuations of the same first round; set "
                "sampling.round2_branches >= 2 (e.g. 2 with group_size 8: 4 first rounds x 2 continuations)"
            )


def sync_group_size(sampling: IRGSamplingConfig, group_size: int, key: str) -> None:
    """The engine samples `group_size` trajectories per prompt: the algorithm's group size (`key`) is the one home
    of `sampling.samples_per_prompt` in an RL recipe; a different value set there is refused, not replaced."""
    mine = sampling.samples_per_prompt
    if mine not in (group_size, IRGSamplingConfig.samples_per_prompt):
        raise ConfigError(
            f"sampling.samples_per_prompt={mine} conflicts with {key}={group_size}: an RL recipe samples {key} "
            f"trajectories per prompt; set it there (and leave sampling.samples_per_prompt out)"
        )
    sampling.samples_per_prompt = group_size


def _nft_sampling() -> IRGSamplingConfig:
    return dataclasses.replace(tiny_sampling(), sde_window_size=0)


@dataclass
class NFTRecipe(GRPORecipe):
    """DiffusionNFT on the images, GRPO's clipped objective on the thinks, over the same trajectories.

    Images are sampled with the deterministic solver (`sampling.sde_window_size: 0`, no SDE steps recorded): the
    forward-process objective needs only the clean latents."""

    # engine settings used for rollouts: the ODE solver only (sde_window_size 0)
    sampling: IRGSamplingConfig = field(default_factory=_nft_sampling)
    # text objective, group size, credit and inner updates (the flow-clip and window-schedule keys are unused)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    # the image objective
    nft: NFTConfig = field(default_factory=NFTConfig)

    def validate(self) -> None:
        super().validate()
        self.nft.validate("nft")
        if self.sampling.sde_window_size != 0:
            raise ConfigError(
                f"sampling.sde_window_size={self.sampling.sde_window_size}: DiffusionNFT samples images with the "
                "deterministic solver and trains on their clean latents; set sampling.sde_window_size: 0"
            )
        if self.grpo.text_loss_weight == 0 and self.nft.loss_weight == 0:
            raise ConfigError("grpo.text_loss_weight and nft.loss_weight are both 0: nothing to train")


@dataclass
class DPOSection:
    """Where DPO pairs come from, on top of `DPOConfig`."""

    # trajectories sampled per prompt when pairs are made online
    group_size: int = 4
    # offline: directory of saved rollouts (<grpo output_dir>/rollouts or a folder of step-*.pt files)
    rollouts_dir: str = ""
    # offline: passes over the saved rollouts
    epochs: int = 1
    # how the reward components become the one scalar that ranks a group (mode is ignored: always one scalar).
    # A pair trains both rounds of its trajectories, so image_1 counts too (shared_image_1 = 1): with it at 0 the
    # improvement term ranks a trajectory higher for a worse image_1 (docs/shapes_results.md, DPO ranking)
    ranking: CreditConfig = field(default_factory=lambda: CreditConfig(mode="shared", shared_image_1=1.0))
    # pairs per group: the i-th best against the i-th worst for i < this (1 = best/worst; at most group_size // 2)
    pairs_per_group: int = 1
    # optimiser steps on each batch of pairs (the reference log-probs are computed once per batch)
    inner_updates: int = 1


@dataclass
class DPORecipe(_RLBase):
    """DPO on best/worst trajectory pairs (online from fresh groups, or offline from saved rollouts)."""

    # DPO maths (betas, label smoothing, pair mode, margin)
    dpo: DPOConfig = field(default_factory=DPOConfig)
    # pair sources
    pairs: DPOSection = field(default_factory=DPOSection)

    def validate(self) -> None:
        self.dpo.validate("dpo")
        self._validate_common(self.pairs.group_size)
        self._validate_verdict(self.pairs.ranking, "pairs.ranking")
        if not 1 <= self.pairs.pairs_per_group <= self.pairs.group_size // 2:
            raise ConfigError(
                f"pairs.pairs_per_group must be in [1, pairs.group_size // 2 = {self.pairs.group_size // 2}], "
                f"got {self.pairs.pairs_per_group}"
            )
        if self.pairs.inner_updates < 1:
            raise ConfigError(f"pairs.inner_updates must be >= 1, got {self.pairs.inner_updates}")
        if self.dpo.pair_mode == "offline" and not self.pairs.rollouts_dir:
            raise ConfigError("dpo.pair_mode=offline needs pairs.rollouts_dir (a folder of saved rollouts)")
