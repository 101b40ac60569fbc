"""Group-normalised advantages and weighted reward sums over two-round IRG trajectories (pure functions).

GRPO: `A = (r - mean_group) / (std_group + eps)`. A group whose rewards all agree (std below a tolerance) carries
no signal: its advantages are set to 0, its samples are masked out (`valid = False`) and it is counted, so the
driver can drop those trajectories from the update and log the zero-std share.

NaN policy (the reward contract: NaN means "not applicable", never a silent 0): a NaN component is excluded from a
weighted sum of components (`skip`: it adds nothing; `renormalize`: weighted mean over the applicable components);
a sample for which every weighted component is NaN raises `ValueError` naming the sample. Rewards given directly
to `group_advantages` must be finite.
Credit assignment over the two rounds (`assign_credit`, the credit rules and round-2 baselines) is in
`irg_rl.train.rl.credit`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

__all__ = [
    "ROUND_2_COMPONENTS",
    "GroupAdvantages",
    "CreditAdvantages",
    "group_advantages",
    "combine_rewards",
    "nan_positions",
]

# reward component names used by credit assignment (the reward registry's names for the reflection rewards)
ROUND_2_COMPONENTS = ("image_2", "improvement", "no_regression", "format")


@dataclass
class GroupAdvantages:
    """Result of `group_advantages`; tensors have the shape of the rewards given."""

    # normalised advantages; 0 in dropped (zero-std) groups
    advantages: torch.Tensor
    # bool: True where the sample's group has a non-zero reward std (use it to mask the loss)
    valid: torch.Tensor
    # number of groups seen
    num_groups: int
    # number of zero-std groups dropped
    num_zero_std: int


@dataclass
class CreditAdvantages:
    """Per-segment advantages of a batch of two-round trajectories; tensors have the rewards' shape."""

    # advantage for think_1 and image_1 tokens/steps
    round_1: torch.Tensor
    # advantage for think_2 (reflection) and image_2 tokens/steps
    round_2: torch.Tensor
    # bool mask: round-1 segment carries signal
    valid_1: torch.Tensor
    # bool mask: round-2 segment carries signal
    valid_2: torch.Tensor
    # scalar statistics for logging (zero-std counts and share, NaN counts per component)
    stats: dict[str, float] = field(default_factory=dict)
    # advantage / mask for the think_2 tokens when they differ from round_2 (the verdict reward); None = round_2
    round_2_text: torch.Tensor | None = None
    valid_2_text: torch.Tensor | None = None
    # advantage / mask for the image_2 steps when they differ from round_2 (stopped trajectories); None = round_2
    round_2_image: torch.Tensor | None = None
    valid_2_image: torch.Tensor | None = None

    def for_segment(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(advantage, valid) of segment think_1 | image_1 | think_2 | image_2, in the rewards' shape."""
        if name in ("think_1", "image_1"):
            return self.round_1, self.valid_1
        if name == "think_2" and self.round_2_text is not None:
            return self.round_2_text, self.valid_2_text
        if name == "image_2" and self.round_2_image is not None:
            return self.round_2_image, self.valid_2_image
        if name in ("think_2", "image_2"):
            return self.round_2, self.valid_2
        raise KeyError(f"no credit for segment {name!r}; segments: think_1, image_1, think_2, image_2")

    def select(self, index: list[int]) -> CreditAdvantages:
        """The credit of samples `index` (flat positions), every tensor flattened to `[len(index)]`."""
        i = torch.tensor(index, dtype=torch.long)

        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.reshape(-1)[i]

        return CreditAdvantages(
            pick(self.round_1),
            pick(self.round_2),
            pick(self.valid_1),
            pick(self.valid_2),
            self.stats,
            pick(self.round_2_text),
            pick(self.valid_2_text),
            pick(self.round_2_image),
            pick(self.valid_2_image),
        )


def nan_positions(mask: torch.Tensor, grouped: bool, limit: int = 5) -> str:
    idx = mask.nonzero().tolist()
    if grouped and mask.ndim == 2:
        names = [f"group {g} member {i}" for g, i in idx[:limit]]
    else:
        names = [f"sample {i[0] if isinstance(i, list) else i}" for i in idx[:limit]]
    more = f" and {len(idx) - limit} more" if len(idx) > limit else ""
    return ", ".join(names) + more


def group_advantages(
    rewards: torch.Tensor,
    group_ids: torch.Tensor | None = None,
    *,
    eps: float = 1e-6,
    zero_std_tol: float = 1e-6,
    adv_clip: float = 0.0,
    unbiased: bool = False,
) -> GroupAdvantages:
    """Group-normalised advantages.

    rewards: `[num_groups, G]` (each row a group) or `[B]` with `group_ids` `[B]` (any integer labels, groups of
    any size). std is the population std (`unbiased=False`, as Flow-GRPO) or the sample std (as trl). A group of
    one sample is zero-std. `adv_clip > 0` clamps the result to `[-adv_clip, adv_clip]`. Returns float32 tensors.
    """
    grouped = group_ids is None
    if grouped:
        if rewards.ndim != 2:
            raise ValueError(
                f"rewards must be [num_groups, G] (or pass group_ids for flat [B]), got {tuple(rewards.shape)}"
            )
        n, g = rewards.shape
        ids = torch.arange(n, device=rewards.device).repeat_interleave(g)
    else:
        if rewards.ndim != 1 or group_ids.shape != rewards.shape:
            raise ValueError(
                f"flat rewards [B] need group_ids [B]; got {tuple(rewards.shape)}, {tuple(group_ids.shape)}"
            )
        ids = group_ids
    bad = ~torch.isfinite(rewards)
    if bool(bad.any()):
        raise ValueError(
            f"non-finite reward at {nan_positions(bad, grouped)}; combine NaN (not applicable) components with "
            f"combine_rewards first, and check the reward plug-in"
        )
    r = rewards.reshape(-1).to(torch.float32)
    _, inv = torch.unique(ids, return_inverse=True)
    k = int(inv.max().item()) + 1 if inv.numel() else 0
    counts = torch.bincount(inv, minlength=k).to(torch.float32)
    mean = torch.zeros(k, device=r.device).index_add_(0, inv, r) / counts
    sq = torch.zeros(k, device=r.device).index_add_(0, inv, (r - mean[inv]) ** 2)
    denom = (counts - 1.0).clamp(min=1.0) if unbiased else counts
    std = torch.sqrt(sq / denom)
    zero = (std <= zero_std_tol) | (counts < 2)
    adv = (r - mean[inv]) / (std[inv] + eps)
    if adv_clip > 0:
        adv = adv.clamp(-adv_clip, adv_clip)
    valid = ~zero[inv]
    adv = torch.where(valid, adv, torch.zeros_like(adv))
    return GroupAdvantages(
        advantages=adv.reshape(rewards.shape),
        valid=valid.reshape(rewards.shape),
        num_groups=k,
        num_zero_std=int(zero.sum().item()),
    )


def combine_rewards(
    components: Mapping[str, torch.Tensor], weights: Mapping[str, float], missing: str = "skip"
) -> torch.Tensor:
    """Weighted sum of reward components where NaN means "not applicable".

    components: name -> tensor, all the same shape (`[B]` or `[num_groups, G]`); weights: name -> float (a
    component with weight 0 or absent from `weights` is ignored). `missing="skip"`: NaN components add nothing;
    `"renormalize"`: the sum is divided by the total weight of the applicable components. Raises `ValueError`
    naming the sample(s) for which every weighted component is NaN. Returns float32, the components' shape.
    """
    if missing not in ("skip", "renormalize"):
        raise ValueError(f"missing must be 'skip' or 'renormalize', got {missing!r}")
    used = [(name, float(w)) for name, w in weights.items() if w != 0]
    absent = [name for name, _ in used if name not in components]
    if absent:
        raise ValueError(
            f"reward component(s) {absent} have non-zero weights but were not computed; available: "
            f"{sorted(components)} (set their weight to 0 or add the reward)"
        )
    if not used:
        raise ValueError("combine_rewards: every weight is 0; give at least one component a positive weight")
    shape = components[used[0][0]].shape
    total = None
    weight_sum = None
    for name, w in used:
        c = components[name].to(torch.float32)
        if c.shape != shape:
            raise ValueError(f"reward component '{name}' has shape {tuple(c.shape)}, expected {tuple(shape)}")
        ok = ~torch.isnan(c)
        term = torch.where(ok, c * w, torch.zeros_like(c))
        wt = ok.to(torch.float32) * w
        total = term if total is None else total + term
        weight_sum = wt if weight_sum is None else weight_sum + wt
    none = weight_sum == 0
    if bool(none.any()):
        names = ", ".join(n for n, _ in used)
        raise ValueError(
            f"every weighted reward component ({names}) is NaN (not applicable) for "
            f"{nan_positions(none, grouped=len(shape) == 2)}; such a trajectory has no reward"
        )
    return total / weight_sum if missing == "renormalize" else total
