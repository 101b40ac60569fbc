"""SFT loss maths: text cross-entropy and flow-matching MSE (pure functions).

Both losses are returned as *sums* together with their element counts so the trainer can divide by the count over
every micro-batch of a step and every rank (a token mean over the whole global batch): that is what makes
batch 4 x accumulation 1 equal batch 1 x accumulation 4, and N processes equal one.

Flow matching (BAGEL convention): `x_t = (1 - t) x0 + t eps`, target velocity `eps - x0`, t = 1 is pure noise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sample_timesteps(n: int, shift: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Logit-normal timesteps with a shift: `u = sigmoid(N(0,1))`, `t = s*u / (1 + (s-1)*u)`.

    Returns t `[n]` float32 in (0, 1). A shift s > 1 moves mass towards t = 1 (high noise), where layout is decided.
    """
    u = torch.sigmoid(torch.randn(n, generator=generator))
    return shift_timesteps(u, shift)


def shift_timesteps(u: torch.Tensor, shift: float) -> torch.Tensor:
    """`t = s*u / (1 + (s-1)*u)` elementwise; u `[...]` in [0, 1] -> t `[...]` in [0, 1]."""
    return shift * u / (1.0 + (shift - 1.0) * u)


def noise_latents(x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Noised tokens and velocity target.

    x0 `[N, D]` clean latent tokens, t `[N]` per-token timestep (tokens of one image share it), eps `[N, D]` noise.
    Returns `(x_t [N, D], target [N, D])` with `x_t = (1 - t) x0 + t eps` and `target = eps - x0`.
    """
    tt = t.to(x0.dtype).unsqueeze(-1)
    return (1.0 - tt) * x0 + tt * eps, eps - x0


def ce_per_token(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy in fp32 per target token: logits `[N, V]` at the label positions, labels `[N]` -> `[N]`."""
    return F.cross_entropy(logits.float(), labels, reduction="none")


def mse_per_token(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over latent dims of the squared error in fp32: pred, target `[N, D]` -> `[N]`."""
    if pred.shape != target.shape:
        raise ValueError(f"mse_per_token: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    return (pred.float() - target.float()).pow(2).mean(dim=-1)


def ce_sum(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy and the number of target tokens: logits `[N, V]`, labels `[N]` -> `(scalar, N)`."""
    if labels.numel() == 0:
        return logits.sum() * 0.0, 0
    return ce_per_token(logits, labels).sum(), int(labels.numel())


def mse_sum(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed per-token MSE and the number of tokens: pred, target `[N, D]` -> `(scalar, N)`."""
    if pred.shape[0] == 0:
        return pred.sum() * 0.0, 0
    return mse_per_token(pred, target).sum(), int(pred.shape[0])


def normalised_loss(
    loss_sum: torch.Tensor, global_count: int, world_size: int, grad_accum: int, weight: float = 1.0
) -> torch.Tensor:
    """The micro-batch loss to back-propagate so that gradients equal `weight * d(global token mean)`.

    `global_count` is the element count over all micro-batches of the step on all ranks. Data-parallel backends
    average gradients over ranks and accelerate divides each micro-batch loss by `grad_accum`; multiplying by both
    undoes that averaging so the sum over ranks and micro-batches is exactly the global mean.
    """
    if global_count <= 0:
        return loss_sum * 0.0
    return loss_sum * (weight * world_size * grad_accum / global_count)
