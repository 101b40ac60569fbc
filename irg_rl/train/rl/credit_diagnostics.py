"""How much of a round's credit comes from an earlier round's outcome (pure function, logged by GRPO).

Under per-round credit the round-2 tokens (think_2 + image_2) should be judged by what they did. A round-2 reward
that contains `improvement = r(image_2) - r(image_1)` also carries `-r(image_1)`, an outcome the round-2 tokens did
not choose: within a group, trajectories whose first image was bad get a larger round-2 advantage for the same
second image. `within_group_corr` measures that leak as the pooled within-group correlation between the round-2
reward and the image_1 reward (0: none; its square is the share of round-2 advantage variance image_1 explains).
"""

from __future__ import annotations

import math

import torch

__all__ = ["within_group_corr"]


def within_group_corr(outcome: torch.Tensor, state: torch.Tensor, tol: float = 1e-12) -> float:
    """Pooled within-group Pearson correlation of `outcome` with `state`.

    outcome, state: `[num_groups, G]`, finite. Each group is centred on its own mean (what GRPO's baseline removes),
    then one correlation is taken over all centred values: `sum(x*y) / sqrt(sum(x*x) * sum(y*y))`. One slope for
    the whole batch, so a group of G samples cannot "explain" variance by chance the way a per-group fit would.
    Returns NaN when either centred tensor has no variance (e.g. every group zero-std).
    """
    if outcome.shape != state.shape or outcome.ndim != 2:
        raise ValueError(
            f"outcome and state must both be [num_groups, G]; got {tuple(outcome.shape)} and {tuple(state.shape)}"
        )
    y = outcome.to(torch.float64)
    x = state.to(torch.float64)
    y = y - y.mean(dim=1, keepdim=True)
    x = x - x.mean(dim=1, keepdim=True)
    sxx, syy = float((x * x).sum()), float((y * y).sum())
    if sxx <= tol or syy <= tol:
        return math.nan
    return float((x * y).sum()) / math.sqrt(sxx * syy)
