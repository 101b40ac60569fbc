"""Composite reward: several rewards, each optionally z-scored, combined by weight; every component is reported.

NaN rules (a NaN component score means "not applicable to this sample"):
- z-scoring is NaN-aware: mean and std use only the applicable samples of the batch; NaN stays NaN. A component
  with fewer than two applicable samples, or zero spread, z-scores to 0 on its applicable samples (it carries no
  ranking information in this batch).
- the total is the weighted sum over the components applicable to that sample; it is NaN only when no component
  applies. With `renormalize=True` the sum is rescaled by (sum of all |w|) / (sum of applicable |w|), so samples
  missing a component stay on the same scale as the others.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from rewards.contract import Reward, RewardBatch, RewardOutput
from rewards.spec import RewardSpec

__all__ = ["CompositeReward", "nan_zscore", "weighted_nan_sum"]


def nan_zscore(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Z-score over the non-NaN entries. x: [B] -> [B]; NaN stays NaN; <2 valid or zero spread -> 0 where valid."""
    valid = ~torch.isnan(x)
    out = torch.full_like(x, math.nan)
    n = int(valid.sum())
    if n == 0:
        return out
    v = x[valid]
    std = v.std(unbiased=False) if n > 1 else torch.tensor(0.0)
    out[valid] = 0.0 if std < eps else (v - v.mean()) / (std + eps)
    return out


def weighted_nan_sum(values: torch.Tensor, weights: torch.Tensor, renormalize: bool = False) -> torch.Tensor:
    """Weighted sum over applicable components. values: [K, B], weights: [K] -> [B]; NaN only if all K are NaN."""
    valid = ~torch.isnan(values)
    w = weights[:, None].expand_as(values)
    total = torch.where(valid, values * w, torch.zeros_like(values)).sum(0)
    if renormalize:
        applicable = torch.where(valid, w.abs(), torch.zeros_like(w)).sum(0)
        total = total * weights.abs().sum() / applicable.clamp_min(1e-12)
    total[~valid.any(0)] = math.nan
    return total


class CompositeReward(Reward):
    """Weighted combination of rewards (optionally z-scored each); details carry every component."""

    name = "composite"

    def __init__(
        self,
        specs: list[RewardSpec | dict | str] | None = None,
        zscore: bool = False,
        renormalize: bool = False,
        components: list[tuple[str, Reward, float]] | None = None,
    ) -> None:
        super().__init__()
        from rewards.registry import build_reward

        parts: list[tuple[str, Reward, float]] = list(components or [])
        for i, raw in enumerate(specs or []):
            spec = RewardSpec.coerce(raw, where=f"rewards[{i}]")
            parts.append((spec.label, build_reward(spec), float(spec.weight)))
        if not parts:
            raise ValueError("CompositeReward needs at least one component (recipe 'rewards:' list is empty)")
        labels = [label for label, _, _ in parts]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"composite reward has duplicate labels {dupes}; give each an 'alias'")
        self.components = parts
        self.zscore = zscore
        self.renormalize = renormalize

    def score(self, batch: RewardBatch) -> RewardOutput:
        raw: dict[str, torch.Tensor] = {}
        details: list[dict[str, Any]] = [{} for _ in range(len(batch))]
        for label, reward, _ in self.components:
            out = reward(batch)
            raw[label] = out.scores
            for i, d in enumerate(out.details):
                details[i][label] = d
        used = {k: nan_zscore(v) if self.zscore else v for k, v in raw.items()}
        weights = torch.tensor([w for _, _, w in self.components], dtype=torch.float32)
        total = weighted_nan_sum(torch.stack(list(used.values())), weights, self.renormalize)
        for i in range(len(batch)):
            details[i]["components"] = {k: _num(v[i]) for k, v in raw.items()}
            if self.zscore:
                details[i]["zscored"] = {k: _num(v[i]) for k, v in used.items()}
        return RewardOutput(scores=total, details=details, components=raw)


def _num(x: torch.Tensor) -> float | None:
    v = float(x)
    return None if math.isnan(v) else v
