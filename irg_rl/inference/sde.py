"""Flow-matching sampler maths shared by the IRG engine (sampling) and GRPO/DPO training (re-scoring).

Convention (BAGEL / SD3 rectified flow): `x_t = (1 - t) * x0 + t * eps`, velocity `v = eps - x0`; sampling runs
from t = 1 (noise) to t = 0 (data) on a decreasing grid `t_0 = 1 > t_1 > ... > t_N = 0`. Every function here takes
the *positive* step size `dt = t - t_next > 0`, so the Euler step is `x_next = x - v * dt`.

Flow-GRPO turns the ODE into a reverse-time SDE with the same marginals. In the signed form used here
the mean is `x + (v + std_t^2 / (2t) * (x + (1 - t) v)) * dt_signed` with `dt_signed = t_next - t < 0`; with our
positive dt this is `x - (v + std_t^2 / (2t) * (x + (1 - t) v)) * dt`. `std_t = a * sqrt(t / (1 - t))` (a = noise
level) and the transition std is `std_t * sqrt(dt)`. The term `x + (1 - t) v` equals `E[eps | x_t]`, i.e.
`-t * score`, so the correction is the usual `-(g^2 / 2) * score` drift of a reverse SDE.

At t = 1 `std_t` is infinite; as in Flow-GRPO the denominator `1 - t` then uses `t_next` instead, which makes the
first step's correction `a^2 / 2` times the step (finite). `std_t^2 / (2t)` is computed as `a^2 / (2 (1 - t))` so
that it never divides by t.

Times `t`, `t_next` may be Python floats, 0-d tensors or `[B]` tensors (one time per sample). All SDE maths and
log-probs are in float32 whatever the dtype of `x` and `v` (bf16 log-probs are too coarse for ratios near 1).
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "timestep_grid",
    "sde_window_mask",
    "euler_step",
    "sde_step_mean_std",
    "sde_sample_step",
    "sde_step_log_prob",
    "gaussian_log_prob",
]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def timestep_grid(num_steps: int, shift: float = 1.0) -> torch.Tensor:
    """Decreasing float32 grid `[num_steps + 1]` from 1 to 0, shifted by `t' = s t / (1 + (s - 1) t)`.

    shift > 1 spends more steps at high noise (BAGEL uses 3.0 for 1024^2 generation).
    """
    if num_steps < 1:
        raise ValueError(f"timestep_grid: num_steps must be >= 1, got {num_steps}")
    if not shift > 0:
        raise ValueError(f"timestep_grid: shift must be > 0, got {shift}")
    t = torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64)
    t = shift * t / (1.0 + (shift - 1.0) * t)
    return t.to(torch.float32)


def sde_window_mask(
    num_steps: int,
    size: int,
    start: int | None = None,
    max_start: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Bool mask `[num_steps]`: which denoising steps are stochastic (SDE, log-prob recorded and trained).

    Steps outside the window use the deterministic Euler step (Flow-GRPO-Fast / MixGRPO). `start=None` draws the
    window start uniformly from `[0, max_start]` (default: `num_steps - size`) with `generator`; `size=0` gives
    an all-ODE trajectory; `size >= num_steps` makes every step stochastic.
    """
    if size < 0:
        raise ValueError(f"sde_window_mask: size must be >= 0, got {size}")
    size = min(size, num_steps)
    last = num_steps - size
    if start is None:
        hi = last if max_start is None else min(max_start, last)
        if hi < 0:
            raise ValueError(f"sde_window_mask: max_start must be >= 0, got {max_start}")
        start = int(torch.randint(0, hi + 1, (1,), generator=generator).item())
    if not 0 <= start <= last:
        raise ValueError(
            f"sde_window_mask: start={start} with size={size} does not fit in {num_steps} steps "
            f"(need 0 <= start <= {last})"
        )
    mask = torch.zeros(num_steps, dtype=torch.bool)
    mask[start : start + size] = True
    return mask


def _batch_time(t: float | torch.Tensor, x: torch.Tensor, name: str) -> torch.Tensor:
    """`t` as float32 `[B, 1, ..., 1]` on x's device (broadcasts against x `[B, ...]`)."""
    t = torch.as_tensor(t, dtype=torch.float32, device=x.device)
    if t.ndim == 0:
        t = t.expand(x.shape[0])
    if t.ndim != 1 or t.shape[0] != x.shape[0]:
        raise ValueError(
            f"{name} must be a float, a 0-d tensor or a [B={x.shape[0]}] tensor, got {tuple(t.shape)}"
        )
    return t.reshape(-1, *([1] * (x.ndim - 1)))


def _times(x: torch.Tensor, t, t_next) -> tuple[torch.Tensor, torch.Tensor]:
    tb, nb = _batch_time(t, x, "t"), _batch_time(t_next, x, "t_next")
    if not bool(((nb < tb) & (nb >= 0) & (tb <= 1)).all()):
        raise ValueError(
            f"need 0 <= t_next < t <= 1 (sampling goes from t=1 to t=0); got t={tb.flatten().tolist()}, "
            f"t_next={nb.flatten().tolist()}"
        )
    return tb, nb


def euler_step(x: torch.Tensor, v: torch.Tensor, t, t_next) -> torch.Tensor:
    """Deterministic ODE step `x - v * (t - t_next)`. x, v `[B, ...]` -> `[B, ...]` in x's dtype."""
    tb, nb = _times(x, t, t_next)
    out = x.float() - v.float() * (tb - nb)
    return out.to(x.dtype)


def sde_step_mean_std(
    x: torch.Tensor, v: torch.Tensor, t, t_next, noise_level: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of the Flow-GRPO SDE transition `p(x_next | x)`.

    x, v: `[B, ...]` latent and predicted velocity at time t. Returns `mean` float32 `[B, ...]` and the per-step
    `std = std_t * sqrt(t - t_next)` float32 `[B, 1, ..., 1]`. With noise_level = 0 the mean is the Euler step and
    std is 0 (no log-prob then).
    """
    if noise_level < 0:
        raise ValueError(f"noise_level must be >= 0, got {noise_level}")
    tb, nb = _times(x, t, t_next)
    dt = tb - nb
    # Flow-GRPO's guard: at t = 1 use t_next in 1 - t (std_t and the correction are infinite otherwise)
    t_den = torch.where(tb >= 1.0, nb, tb)
    std_t = noise_level * torch.sqrt(tb / (1.0 - t_den))
    coef = noise_level**2 / (2.0 * (1.0 - t_den))  # = std_t^2 / (2 t), without dividing by t
    xf, vf = x.float(), v.float()
    mean = xf - (vf + coef * (xf + (1.0 - tb) * vf)) * dt
    return mean, std_t * torch.sqrt(dt)


def gaussian_log_prob(x_next: torch.Tensor, mean: torch.Tensor, std: torch.Tensor | float) -> torch.Tensor:
    """Log-density of `x_next` under `N(mean, std^2)`, averaged over all non-batch dims, in float32.

    x_next, mean: `[B, ...]`; std: broadcastable to them (`[B, 1, ..., 1]` from `sde_step_mean_std`, or a float),
    all > 0. Returns `[B]`.
    """
    std = torch.as_tensor(std, dtype=torch.float32, device=mean.device)
    if not bool((std > 0).all()):
        raise ValueError("gaussian_log_prob: std must be > 0 (a step with noise_level=0 has no log-prob)")
    diff = x_next.float() - mean.float()
    lp = -(diff**2) / (2.0 * std**2) - torch.log(std) - _LOG_SQRT_2PI
    return lp.flatten(1).mean(dim=1) if lp.ndim > 1 else lp


def sde_sample_step(
    x: torch.Tensor,
    v: torch.Tensor,
    t,
    t_next,
    noise_level: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample `x_next = mean + std * noise` and its log-prob. x, v `[B, ...]` -> (x_next `[B, ...]`, log_prob `[B]`).

    x_next is returned in x's dtype and the log-prob is of that stored (rounded) value, so re-scoring the stored
    latent during training reproduces it exactly. The noise is drawn in float32 from `generator` on x's device.
    """
    if not noise_level > 0:
        raise ValueError(
            f"sde_sample_step needs noise_level > 0 (got {noise_level}); use euler_step for ODE steps"
        )
    mean, std = sde_step_mean_std(x, v, t, t_next, noise_level)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=torch.float32)
    x_next = (mean + std * noise).to(x.dtype)
    return x_next, gaussian_log_prob(x_next.detach(), mean, std)


def sde_step_log_prob(
    x: torch.Tensor, v: torch.Tensor, t, t_next, noise_level: float, x_next: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Re-score a recorded transition under a (new) velocity: returns (log_prob `[B]`, mean `[B, ...]`, std).

    Used in training: gradients flow through `v` (and so the mean); `x`, `x_next` are the stored latents. The mean
    and std are returned for the closed-form KL to a reference (`policy_loss.gaussian_kl_same_std`).
    """
    mean, std = sde_step_mean_std(x, v, t, t_next, noise_level)
    return gaussian_log_prob(x_next.detach(), mean, std), mean, std


def sliding_window_start(rl_step: int, max_start: int, shift_every: int = 1, stride: int = 1) -> int:
    """MixGRPO's sliding SDE window: the first stochastic denoising step at RL step `rl_step` (0-based).

    The window starts at denoising step 0 (highest noise) and moves `stride` steps later every `shift_every` RL
    steps, wrapping back to 0 once it would start past `max_start`: ((rl_step // shift_every) * stride) mod
    (max_start + 1)."""
    if max_start < 0 or shift_every < 1 or stride < 1:
        raise ValueError("sliding_window_start: need max_start >= 0, shift_every >= 1, stride >= 1")
    return (rl_step // shift_every) * stride % (max_start + 1)
