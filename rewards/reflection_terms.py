"""The reflection reward terms as pure functions of the two rounds' rewards: what the `improvement` and
`no_regression` plug-ins score and what the RL trainer's per-round credit reads (one definition for both)."""

from __future__ import annotations

import math

import torch

__all__ = ["improvement", "no_regression"]


def improvement(r1: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
    """r(image_2) - r(image_1). `[B]`, `[B]` -> `[B]` (NaN where either is NaN)."""
    return r2 - r1


def no_regression(r1: torch.Tensor, r2: torch.Tensor, threshold: float) -> torch.Tensor:
    """-(r1 - r2)+ where image_1 was already right (r1 >= threshold), else NaN (not applicable). `[B]` -> `[B]`."""
    return torch.where(r1 >= threshold, -(r1 - r2).clamp_min(0.0), torch.full_like(r1, math.nan))
