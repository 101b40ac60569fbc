"""Batched flow-matching image sampling over the CFG branches: Euler (eval) or an SDE window (RL).

The branches (main, text-CFG, image-CFG) are KV caches built by the engine from shared prefixes; for the guided
steps they are stacked once with `KVCache.cat` and every step evaluates all of them in one `predict_velocity`
call. Steps outside the CFG interval evaluate the main branch only. The SDE maths (`sde.py`) is in float32;
latents are kept in float32 whatever the model dtype. Each sample draws its initial noise and SDE noise from its
own generator, so results do not depend on batch composition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from irg_rl.models import BagelModel, KVCache

from .cfg import cfg_active, combine_cfg, uses_img_branch, uses_text_branch
from .engine_config import TurnConfig
from .sde import euler_step, gaussian_log_prob, sde_step_mean_std

__all__ = ["ImageSample", "initial_noise", "guided_velocity", "sample_image"]


@dataclass
class ImageSample:
    """Result of sampling one image per sample."""

    # final latent tokens x_0 [N, n, P] (float32)
    latents: torch.Tensor
    # recorded (stochastic) step indices [K]
    step_index: torch.Tensor
    # latents before each recorded step [N, K, n, P]
    x_t: torch.Tensor
    # latents after each recorded step [N, K, n, P]
    x_next: torch.Tensor
    # times of the recorded steps [K]
    t: torch.Tensor
    # next times of the recorded steps [K]
    t_next: torch.Tensor
    # Gaussian log-prob of each recorded transition [N, K]
    logprobs: torch.Tensor


def initial_noise(
    n: int, dim: int, generators: Sequence[torch.Generator], device: torch.device | str
) -> torch.Tensor:
    """x_1 ~ N(0, I) per sample from its own generator -> [N, n, dim] float32."""
    return torch.stack([torch.randn(n, dim, generator=g, device=device) for g in generators])


def guided_velocity(
    model: BagelModel,
    branches: list[KVCache],
    stacked: KVCache | None,
    x: torch.Tensor,
    t: float,
    grid_hw: tuple[int, int],
    turn: TurnConfig,
) -> torch.Tensor:
    """CFG-combined velocity [N, n, P] for x [N, n, P] at time t; branches = [main, text_neg?, img_neg?]."""
    guided = uses_text_branch(turn.cfg_text_scale) and cfg_active(t, turn.cfg_interval)
    if not guided:
        return model.predict_velocity(branches[0], x, t, grid_hw).float()
    k = len(branches)
    v_all = model.predict_velocity(stacked, x.repeat(k, 1, 1), t, grid_hw).float().chunk(k)
    v_img = v_all[2] if len(v_all) > 2 else None
    return combine_cfg(
        v_all[0],
        v_all[1],
        v_img,
        turn.cfg_text_scale,
        turn.cfg_img_scale,
        turn.cfg_renorm_type,
        turn.cfg_renorm_min,
    )


def needed_branches(turn: TurnConfig) -> tuple[bool, bool]:
    """(text-CFG branch used, image-CFG branch used) for this turn's scales."""
    return uses_text_branch(turn.cfg_text_scale), uses_img_branch(turn.cfg_text_scale, turn.cfg_img_scale)


@torch.no_grad()
def sample_image(
    model: BagelModel,
    branches: list[KVCache],
    turn: TurnConfig,
    grid_hw: tuple[int, int],
    timesteps: torch.Tensor,
    sde_mask: torch.Tensor,
    noise_level: float,
    generators: Sequence[torch.Generator],
    start_generators: Sequence[torch.Generator] | None = None,
) -> ImageSample:
    """Denoise one image per sample from t = 1 to 0.

    branches: [main] + [text_neg] (if text CFG is used) + [img_neg] (if image CFG is used), each with N samples.
    timesteps: decreasing grid [S + 1]; sde_mask: bool [S], True = stochastic recorded step. The starting noise
    x_1 comes from `start_generators` when given (N of them), else from `generators` like the SDE noise.
    """
    main = branches[0]
    N, dev = main.batch_size, model.device
    n = grid_hw[0] * grid_hw[1]
    x = initial_noise(n, model.config.patch_latent_dim, start_generators or generators, dev)
    any_guided = uses_text_branch(turn.cfg_text_scale) and any(
        cfg_active(float(t), turn.cfg_interval) for t in timesteps[:-1]
    )
    stacked = KVCache.cat(branches) if any_guided and len(branches) > 1 else None
    rec_x, rec_next, rec_lp, rec_i = [], [], [], []
    for i in range(len(timesteps) - 1):
        t, t_next = float(timesteps[i]), float(timesteps[i + 1])
        v = guided_velocity(model, branches, stacked, x, t, grid_hw, turn)
        if bool(sde_mask[i]):
            mean, std = sde_step_mean_std(x, v, t, t_next, noise_level)
            noise = initial_noise(n, x.shape[-1], generators, dev)
            x_next = mean + std * noise
            rec_x.append(x)
            rec_next.append(x_next)
            rec_lp.append(gaussian_log_prob(x_next, mean, std))
            rec_i.append(i)
            x = x_next
        else:
            x = euler_step(x, v, t, t_next)
    idx = torch.tensor(rec_i, dtype=torch.long)
    empty = x.new_zeros(N, 0, *x.shape[1:])
    return ImageSample(
        latents=x,
        step_index=idx,
        x_t=torch.stack(rec_x, 1) if rec_x else empty,
        x_next=torch.stack(rec_next, 1) if rec_next else empty,
        t=timesteps[:-1][idx].float().cpu(),
        t_next=timesteps[1:][idx].float().cpu(),
        logprobs=torch.stack(rec_lp, 1) if rec_lp else x.new_zeros(N, 0),
    )
