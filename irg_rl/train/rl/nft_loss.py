"""DiffusionNFT maths for the image rounds (pure functions): forward-process RL on clean generated latents.

DiffusionNFT (Zheng et al., 2025) needs no SDE, no likelihood and no CFG. The sampling ("old") policy generates
images with any solver; each clean latent `x0` is noised on the *forward* process, `x_t = (1 - t) x0 + t eps`,
and the policy is trained by flow matching towards the velocity target `eps - x0` through two implicit policies
built from the current velocity `v` and the old one `v_old`:

    v_pos = (1 - beta) v_old + beta v          (the implicit positive policy)
    v_neg = (1 + beta) v_old - beta v          (the implicit negative policy, mirrored about v_old)

    loss = r * ||x0_pos - x0||^2 / w + (1 - r) * ||x0_neg - x0||^2 / w,   x0_. = x_t - t v_.

`r` in [0, 1] is the probability that the sample is "positive": its group advantage clipped to
`[-adv_clip_max, adv_clip_max]` and mapped linearly, `r = 1/2 + A / (2 adv_clip_max)`. The loss lives in x0 space
(`x0_pred - x0 = t (v_pred - target)`); `w` is the old policy's mean absolute x0 error on that sample, detached
(the adaptive weighting; 1 when disabled). At `v == v_old` (the first inner update) both implicit policies equal
the old one and the gradient w.r.t. `v` is `2 beta t^2 (2r - 1) (v_old - target) / (w D)` per element: a positive
sample pulls the velocity towards its own target, a negative one pushes it away, and r = 1/2 does nothing.

Convention (BAGEL rectified flow): t = 1 is pure noise, target velocity `eps - x0`. Shapes: one row per noised
copy of an image; latents `[B, n, P]` (n tokens of P dims), times `[B]`.
"""

from __future__ import annotations

import torch

__all__ = ["reward_probability", "implicit_velocities", "nft_image_loss", "velocity_kl"]


def reward_probability(advantages: torch.Tensor, clip_max: float) -> torch.Tensor:
    """`r = 1/2 + clamp(A, -c, c) / (2c)`: advantages `[...]` -> optimality probabilities `[...]` in [0, 1]."""
    if not clip_max > 0:
        raise ValueError(f"reward_probability: clip_max must be > 0, got {clip_max}")
    return 0.5 + advantages.float().clamp(-clip_max, clip_max) / (2.0 * clip_max)


def implicit_velocities(
    v: torch.Tensor, v_old: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(v_pos, v_neg) = ((1 - beta) v_old + beta v, (1 + beta) v_old - beta v); any equal shapes."""
    v_old = v_old.detach().float()
    v = v.float()
    return v_old + beta * (v - v_old), v_old - beta * (v - v_old)


def _per_sample_mean(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).mean(dim=1)


def nft_image_loss(
    v: torch.Tensor,
    v_old: torch.Tensor,
    x_t: torch.Tensor,
    x0: torch.Tensor,
    t: torch.Tensor,
    r: torch.Tensor,
    beta: float,
    adaptive_weight: bool = True,
    min_weight: float = 1e-5,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-sample NFT loss (see the module docstring).

    v `[B, n, P]` (with grad), v_old `[B, n, P]` (detached here), x_t, x0 `[B, n, P]`, t `[B]`, r `[B]`.
    Returns (loss `[B]` float32, parts: `positive` `[B]`, `negative` `[B]`, `weight` `[B]`, `old_mse` `[B]` = the
    old policy's flow-matching MSE in velocity space, for logging).
    """
    if not (v.shape == v_old.shape == x_t.shape == x0.shape) or v.ndim < 2:
        raise ValueError(
            f"nft_image_loss: v {tuple(v.shape)}, v_old {tuple(v_old.shape)}, x_t {tuple(x_t.shape)} and x0 "
            f"{tuple(x0.shape)} must share one [B, ...] shape"
        )
    if t.shape != (v.shape[0],) or r.shape != (v.shape[0],):
        raise ValueError(
            f"nft_image_loss: t {tuple(t.shape)} and r {tuple(r.shape)} must be [B={v.shape[0]}]"
        )
    tt = t.float().reshape(-1, *([1] * (v.ndim - 1)))
    x_t, x0 = x_t.float(), x0.float()
    v_pos, v_neg = implicit_velocities(v, v_old, beta)
    pos = _per_sample_mean((x_t - tt * v_pos - x0) ** 2)
    neg = _per_sample_mean((x_t - tt * v_neg - x0) ** 2)
    with torch.no_grad():
        x0_old = x_t - tt * v_old.float()
        w = _per_sample_mean((x0_old - x0).abs()).clamp(min=min_weight)
        if not adaptive_weight:
            w = torch.ones_like(w)
        target = (x_t - x0) / tt.clamp(min=1e-12)  # = eps - x0
        old_mse = _per_sample_mean((v_old.float() - target) ** 2)
    r = r.float()
    loss = (r * pos + (1.0 - r) * neg) / w
    return loss, {"positive": pos.detach(), "negative": neg.detach(), "weight": w, "old_mse": old_mse}


def velocity_kl(v: torch.Tensor, v_ref: torch.Tensor) -> torch.Tensor:
    """Velocity-space penalty to the reference, `mean((v - v_ref)^2)` per sample: `[B, ...]` -> `[B]` float32.

    For two Gaussian transitions of one Euler-Maruyama step with the same std this is the KL up to a positive
    per-step factor, which is why flow RL methods use it as their KL term (UniGRPO, DiffusionNFT)."""
    return _per_sample_mean((v.float() - v_ref.detach().float()) ** 2)
