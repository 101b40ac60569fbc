"""Typed configs for the GRPO / DPO maths (advantages, credit assignment, clipped objective, DPO losses).

These are the `grpo:` / `dpo:` sections of an RL recipe; the drivers and rollout settings live in their own schemas.
Defaults follow the literature where there is a number to follow (see each comment); `validate()` runs when a
recipe is loaded through `irg_rl.config` and raises `ConfigError` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from irg_rl.config import require as _require
from irg_rl.train.rl.credit import CreditConfig

__all__ = [
    "AGGREGATIONS",
    "KL_KINDS",
    "OLD_LOGPROBS",
    "CreditConfig",
    "GRPOConfig",
    "DPOConfig",
    "NFTConfig",
    "NFT_TIMESTEPS",
]

# how per-token / per-step losses become one number (see policy_loss.aggregate)
AGGREGATIONS = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum", "seq_mean_token_sum_norm")
# estimator of KL(policy || reference) on text tokens (flow steps always use the closed form)
KL_KINDS = ("k3", "k1", "k2")
# where GRPO's old (behaviour) log-probs come from (GRPOConfig.old_logprobs)
OLD_LOGPROBS = ("rollout", "trainer")
# where DiffusionNFT draws its forward-process times (NFTConfig.timesteps)
NFT_TIMESTEPS = ("grid", "uniform")
# how GRPO's SDE window start moves over RL steps (GRPOConfig.sde_window_schedule)
WINDOW_SCHEDULES = ("random", "sliding")
# the flow-step importance ratio (GRPOConfig.flow_ratio)
FLOW_RATIOS = ("standard", "guard")


@dataclass
class GRPOConfig:
    """Group-relative policy optimisation over text tokens and SDE flow steps."""

    # keys that moved to their one home (the loader names the new key instead of "unknown key")
    MOVED_KEYS: ClassVar[dict[str, str]] = {
        "noise_level": "sampling.noise_level",
        "sde_window_size": "sampling.sde_window_size",
        "sde_window_start": "sampling.sde_window_start",
        "sde_window_max_start": "sampling.sde_window_max_start",
    }

    # trajectories sampled per prompt (G); advantages are normalised within each group
    group_size: int = 8
    # epsilon added to the group std in (r - mean) / (std + eps)
    adv_eps: float = 1e-6
    # a group whose reward std is below this is "zero-std": no signal, dropped and counted
    zero_std_tol: float = 1e-6
    # clamp advantages to [-adv_clip, adv_clip] after normalisation (Flow-GRPO uses 5); 0 disables
    adv_clip: float = 5.0
    # lower clip range for text-token ratios: ratio >= 1 - text_clip_low (PPO/GRPO 0.2)
    text_clip_low: float = 0.2
    # upper clip range for text-token ratios: ratio <= 1 + text_clip_high (DAPO's clip-higher uses 0.28)
    text_clip_high: float = 0.2
    # lower clip range for flow-step ratios (tiny: step log-probs are averaged over latent dims; Flow-GRPO 1e-4)
    flow_clip_low: float = 1e-4
    # upper clip range for flow-step ratios (Flow-GRPO 1e-4; 1e-5 for large latents)
    flow_clip_high: float = 1e-4
    # coefficient of the KL-to-reference penalty (0: no reference forward pass at all)
    kl_coef: float = 0.0
    # KL estimator for text tokens: k3 = exp(ref - logp) - (ref - logp) - 1 (GRPO), k1 = logp - ref, k2 = half sq
    kl_kind: str = "k3"
    # reduction over text tokens, one of AGGREGATIONS
    text_aggregation: str = "token_mean"
    # reduction over SDE flow steps, one of AGGREGATIONS
    flow_aggregation: str = "token_mean"
    # weight of the text-token loss in the total
    text_loss_weight: float = 1.0
    # weight of the flow-step loss in the total
    flow_loss_weight: float = 1.0
    # optimiser steps on each rollout batch (the ratio must be exactly 1 before the first)
    inner_updates: int = 1
    # max |ratio - 1| tolerated at the first inner step before it is reported as a sampler/trainer mismatch
    ratio_check_tol: float = 1e-3
    # the PPO "old" log-probs: "rollout" = recorded by the sampler (exact when sampler and trainer compute alike,
    # e.g. fp32 on CPU); "trainer" = the trainer's own first-inner-step log-probs, detached (verl's recompute),
    # for bf16 rollout workers against an fp32-master trainer (measured on an H200: text |ratio - 1| up to 1.6e-2)
    old_logprobs: str = "rollout"
    # how the SDE window (sampling.sde_window_size / _start / _max_start, with sampling.noise_level) moves when
    # sampling.sde_window_start is null: "random" = drawn uniformly per step (Flow-GRPO-Fast); "sliding" =
    # MixGRPO's sliding window, starting at step 0 of the denoising and moving sde_window_stride steps later every
    # sde_window_shift_every RL steps, wrapping past sampling.sde_window_max_start
    sde_window_schedule: str = "random"
    # sliding schedule: RL steps between two moves of the window
    sde_window_shift_every: int = 1
    # sliding schedule: denoising steps the window moves at each shift
    sde_window_stride: int = 1
    # flow-step ratio: "standard" = exp(logp - old) (Flow-GRPO); "guard" = GRPO-Guard's re-centred ratio
    # exp((logp - old + b) * std) with each step's loss scaled by 1 / dt (policy_loss.guard_log_ratio); its ratios
    # sit much closer to 1, so it takes far smaller flow clip ranges (verl-omni uses 2e-6)
    flow_ratio: str = "standard"
    # how rewards are assigned to the rounds' segments
    credit: CreditConfig = field(default_factory=CreditConfig)

    def validate(self, section: str = "grpo") -> None:
        _require(
            self.group_size >= 2,
            section,
            "group_size",
            f"needs >= 2 samples per group, got {self.group_size}",
        )
        _require(self.adv_eps >= 0, section, "adv_eps", f"must be >= 0, got {self.adv_eps}")
        _require(self.zero_std_tol >= 0, section, "zero_std_tol", f"must be >= 0, got {self.zero_std_tol}")
        _require(self.adv_clip >= 0, section, "adv_clip", f"must be >= 0 (0 disables), got {self.adv_clip}")
        for key in ("text_clip_low", "text_clip_high", "flow_clip_low", "flow_clip_high"):
            val = getattr(self, key)
            _require(0 < val < 1, section, key, f"must be in (0, 1), got {val}")
        _require(self.kl_coef >= 0, section, "kl_coef", f"must be >= 0, got {self.kl_coef}")
        _require(
            self.kl_kind in KL_KINDS, section, "kl_kind", f"must be one of {KL_KINDS}, got {self.kl_kind!r}"
        )
        for key in ("text_aggregation", "flow_aggregation"):
            val = getattr(self, key)
            _require(val in AGGREGATIONS, section, key, f"must be one of {AGGREGATIONS}, got {val!r}")
        for key in ("text_loss_weight", "flow_loss_weight"):
            _require(getattr(self, key) >= 0, section, key, f"must be >= 0, got {getattr(self, key)}")
        _require(self.inner_updates >= 1, section, "inner_updates", f"must be >= 1, got {self.inner_updates}")
        _require(
            self.sde_window_schedule in WINDOW_SCHEDULES,
            section,
            "sde_window_schedule",
            f"must be one of {WINDOW_SCHEDULES}, got {self.sde_window_schedule!r}",
        )
        _require(
            self.flow_ratio in FLOW_RATIOS,
            section,
            "flow_ratio",
            f"must be one of {FLOW_RATIOS}, got {self.flow_ratio!r}",
        )
        for key in ("sde_window_shift_every", "sde_window_stride"):
            _require(getattr(self, key) >= 1, section, key, f"must be >= 1, got {getattr(self, key)}")
        _require(
            self.ratio_check_tol > 0, section, "ratio_check_tol", f"must be > 0, got {self.ratio_check_tol}"
        )
        _require(
            self.old_logprobs in OLD_LOGPROBS,
            section,
            "old_logprobs",
            f"must be one of {OLD_LOGPROBS}, got {self.old_logprobs!r}",
        )
        self.credit.validate(f"{section}.credit")


@dataclass
class DPOConfig:
    """DPO on best/worst trajectory pairs: sigmoid DPO on text tokens, Diffusion-DPO on SDE flow steps."""

    # inverse temperature of the text DPO loss on summed token log-ratios (DPO paper 0.1)
    beta_text: float = 0.1
    # inverse temperature on summed per-step flow log-ratios (unverified starting point; step log-probs are
    # averaged over latent dims, so their ratios are small and beta_flow is much larger than beta_text)
    beta_flow: float = 1000.0
    # "online": pairs from the groups just sampled; "offline": pairs read from saved rollouts
    pair_mode: str = "online"
    # conservative-DPO label smoothing: assumed probability that a preference label is flipped (0 = plain DPO)
    label_smoothing: float = 0.0
    # skip a group unless best - worst reward exceeds this (ties are always skipped)
    min_reward_margin: float = 0.0
    # weight of the text DPO loss in the total
    text_loss_weight: float = 1.0
    # weight of the flow DPO loss in the total
    flow_loss_weight: float = 1.0

    def validate(self, section: str = "dpo") -> None:
        _require(self.beta_text > 0, section, "beta_text", f"must be > 0, got {self.beta_text}")
        _require(self.beta_flow > 0, section, "beta_flow", f"must be > 0, got {self.beta_flow}")
        _require(
            self.pair_mode in ("online", "offline"),
            section,
            "pair_mode",
            f"must be 'online' or 'offline', got {self.pair_mode!r}",
        )
        _require(
            0 <= self.label_smoothing < 0.5,
            section,
            "label_smoothing",
            f"must be in [0, 0.5), got {self.label_smoothing}",
        )
        _require(
            self.min_reward_margin >= 0,
            section,
            "min_reward_margin",
            f"must be >= 0, got {self.min_reward_margin}",
        )
        for key in ("text_loss_weight", "flow_loss_weight"):
            _require(getattr(self, key) >= 0, section, key, f"must be >= 0, got {getattr(self, key)}")


@dataclass
class NFTConfig:
    """DiffusionNFT on the image rounds (forward-process flow matching between implicit positive and negative
    policies; see `irg_rl.train.rl.nft_loss`). The text rounds use the `grpo:` section's clipped objective."""

    # strength of the implicit policies v_pos/neg = v_old +/- beta (v - v_old) (DiffusionNFT uses 1.0 for most runs)
    beta: float = 1.0
    # advantages are clipped to [-adv_clip_max, adv_clip_max] and mapped to r = 1/2 + A / (2 adv_clip_max)
    adv_clip_max: float = 5.0
    # noised copies (t, eps) of each generated image per update
    timesteps_per_image: int = 2
    # "grid": t drawn from the sampling grid's points (t_0 = 1 ... t_{N-1}, as the sampler visited them);
    # "uniform": t ~ U(min_t, max_t)
    timesteps: str = "grid"
    # lowest time drawn (a clamp on "grid" ones too): at t = 0 the copy is the clean latent, no signal
    min_t: float = 0.02
    # highest time drawn: at t = 1 the copy is pure noise and x0_pred = -v, no signal either
    max_t: float = 0.98
    # divide each sample's x0-space errors by the old policy's mean absolute x0 error (DiffusionNFT's adaptive
    # weighting); false: plain x0-space MSE
    adaptive_weight: bool = True
    # velocity-MSE penalty to the reference model (0: no reference pass for the images)
    kl_coef: float = 0.0
    # weight of the image (NFT) loss in the total; the text loss uses grpo.text_loss_weight
    loss_weight: float = 1.0

    def validate(self, section: str = "nft") -> None:
        _require(self.beta > 0, section, "beta", f"must be > 0, got {self.beta}")
        _require(self.adv_clip_max > 0, section, "adv_clip_max", f"must be > 0, got {self.adv_clip_max}")
        _require(
            self.timesteps_per_image >= 1,
            section,
            "timesteps_per_image",
            f"must be >= 1, got {self.timesteps_per_image}",
        )
        _require(
            self.timesteps in NFT_TIMESTEPS,
            section,
            "timesteps",
            f"must be one of {NFT_TIMESTEPS}, got {self.timesteps!r}",
        )
        _require(
            0 < self.min_t < self.max_t < 1,
            section,
            "min_t",
            f"needs 0 < min_t < max_t < 1, got min_t={self.min_t}, max_t={self.max_t}",
        )
        _require(self.kl_coef >= 0, section, "kl_coef", f"must be >= 0, got {self.kl_coef}")
        _require(self.loss_weight >= 0, section, "loss_weight", f"must be >= 0, got {self.loss_weight}")
