"""Group-normalised advantages and credit assignment over two-round IRG trajectories (pure functions).

GRPO: `A = (r - mean_group) / (std_group + eps)`. A group whose rewards all agree (std below a tolerance) carries
no signal: its advantages are set to 0, its samples are masked out (`valid = False`) and it is counted, so the
driver can drop those trajectories from the update and log the zero-std share.

NaN policy (the reward contract: NaN means "not applicable", never a silent 0): a NaN component is excluded from a
weighted sum of components (`skip`: it adds nothing; `renormalize`: weighted mean over the applicable components);
a sample for which every weighted component is NaN raises `ValueError` naming the sample. Rewards given directly
to `group_advantages` must be finite.

Credit modes (`CreditConfig.mode`):
- `shared` (T2I-R1): one reward per trajectory, `w2 * r(image_2) + reflection terms (+ w1 * r(image_1))`, one
  advantage for all segments.
- `per_round` (Janus-Pro-R1 style): round 1 (think_1 + image_1) gets the advantage of r(image_1); round 2
  (think_2 + image_2) gets the advantage of `w2 * r(image_2) + w_imp * improvement + w_noreg * no_regression +
  w_fmt * format`; each normalised within its group separately.

Self-verification (`verdict` weight > 0): think_2 states a keep / revise verdict on image_1, and the `verdict`
component scores its agreement with the image_1 reward. Under per-round credit it is added to the think_2 tokens'
round-2 reward only (`round_2_text`), since the image_2 steps do not choose the verdict.

Stopped trajectories (`continued` False: a keep verdict ended them, image_2 := image_1): they have no image_2
step, and the image_2 steps of the others are normalised among the group's continued samples only
(`round_2_image`), so a sampled image_2 is compared with other sampled image_2s, not with kept first images. A
continued sample alone in its group (or baseline stratum) gets no image credit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from irg_rl.train.credit_diagnostics import within_group_corr
from irg_rl.train.rl_config import CreditConfig

__all__ = ["GroupAdvantages", "CreditAdvantages", "group_advantages", "combine_rewards", "assign_credit"]

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


def _positions(mask: torch.Tensor, grouped: bool, limit: int = 5) -> str:
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
            f"non-finite reward at {_positions(bad, grouped)}; combine NaN (not applicable) components with "
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
            f"{_positions(none, grouped=len(shape) == 2)}; such a trajectory has no reward"
        )
    return total / weight_sum if missing == "renormalize" else total


def assign_credit(
    rewards: Mapping[str, torch.Tensor],
    cfg: CreditConfig,
    group_ids: torch.Tensor | None = None,
    *,
    eps: float = 1e-6,
    zero_std_tol: float = 1e-6,
    adv_clip: float = 0.0,
    branches: int = 1,
    continued: torch.Tensor | None = None,
) -> CreditAdvantages:
    """Advantages for the round-1 and round-2 segments of each trajectory.

    `branches`: round-2 continuations per first round (sampling.round2_branches); with
    `cfg.round_2_baseline == "image_1"` the round-2 reward is normalised within each run of `branches` consecutive
    samples of a group (`[num_groups, G]` rewards only), i.e. against the other continuations of the same image_1;
    with `"image_1_reward"` it is normalised within each group's samples of equal image_1 reward (any shape).
    `continued`: bool, the rewards' shape; False where a keep verdict stopped the trajectory before image_2 (None =
    every trajectory continued). The image_2 steps are then normalised among continued samples only.

    rewards: component name -> `[num_groups, G]` (or `[B]` with `group_ids` `[B]`); names `image_1`, `image_2`,
    `improvement`, `no_regression`, `format`, `verdict` (those with non-zero weight in `cfg` are required;
    `image_1` always in `per_round` mode). See the module docstring for the two modes and the NaN policy.
    """
    cfg.validate()
    kw = dict(group_ids=group_ids, eps=eps, zero_std_tol=zero_std_tol, adv_clip=adv_clip)
    weights = {name: getattr(cfg, name) for name in ROUND_2_COMPONENTS}
    stats: dict[str, float] = {
        f"nan_{k}": float(torch.isnan(v.float()).sum().item()) for k, v in rewards.items()
    }
    if cfg.mode == "shared":
        r = combine_rewards(
            rewards, {**weights, "image_1": cfg.shared_image_1, "verdict": cfg.verdict}, cfg.missing
        )
        res = group_advantages(r, **kw)
        stats.update(num_groups=res.num_groups, zero_std_groups=res.num_zero_std)
        stats["zero_std_share"] = res.num_zero_std / max(res.num_groups, 1)
        return _train_only(CreditAdvantages(res.advantages, res.advantages, res.valid, res.valid, stats), cfg)
    if "image_1" not in rewards:
        raise ValueError(f"per_round credit needs the 'image_1' reward; got components {sorted(rewards)}")
    r1 = rewards["image_1"].to(torch.float32)
    nan1 = torch.isnan(r1)
    if bool(nan1.any()):
        raise ValueError(
            f"image_1 reward is NaN (not applicable) for {_positions(nan1, grouped=r1.ndim == 2)}; per_round "
            f"credit scores round 1 on image_1 alone, so it must apply to every trajectory (or use mode: shared)"
        )
    r2 = combine_rewards(rewards, weights, cfg.missing)
    res1 = group_advantages(r1, **kw)
    if cfg.round_2_baseline == "image_1" and (
        group_ids is not None or r2.ndim != 2 or branches < 2 or r2.shape[1] % branches
    ):
        raise ValueError(
            f"round_2_baseline image_1 needs [num_groups, G] rewards with G a multiple of branches >= 2 "
            f"(sampling.round2_branches); got shape {tuple(r2.shape)}, branches {branches}"
        )
    ids2 = _round_2_ids(cfg.round_2_baseline, r1, group_ids, branches)
    norm = dict(eps=eps, zero_std_tol=zero_std_tol, adv_clip=adv_clip)
    res2 = _normalise(r2, ids2, **norm)
    credit = CreditAdvantages(res1.advantages, res2.advantages, res1.valid, res2.valid, stats)
    if cfg.verdict > 0:
        r2_text = combine_rewards(rewards, {**weights, "verdict": cfg.verdict}, cfg.missing)
        res_t = _normalise(r2_text, ids2, **norm)
        credit.round_2_text, credit.valid_2_text = res_t.advantages, res_t.valid
    if continued is not None and not bool(continued.all()):
        if continued.shape != r2.shape:
            raise ValueError(f"continued has shape {tuple(continued.shape)}, rewards {tuple(r2.shape)}")
        stop = ~continued.reshape(-1).to(ids2.device)
        # a stopped sample becomes a group of its own: zero-std, so no image credit, and out of the others' baseline
        ids_img = ids2.clone()
        ids_img[stop] = int(ids2.max().item()) + 1 + torch.arange(int(stop.sum().item()), device=ids2.device)
        res_i = _normalise(r2, ids_img, **norm)
        credit.round_2_image, credit.valid_2_image = res_i.advantages, res_i.valid
        stats["round_2_image_trained_share"] = float(res_i.valid.float().mean().item())
    stats.update(
        num_groups=res1.num_groups,
        zero_std_groups_round_1=res1.num_zero_std,
        zero_std_groups_round_2=res2.num_zero_std,
        round_2_baseline_groups=res2.num_groups,
        # share of samples whose round 2 carries signal (image_1_reward drops samples alone in their score)
        round_2_trained_share=float(res2.valid.float().mean().item()) if res2.valid.numel() else 0.0,
    )
    if group_ids is None:
        # how much the round-2 credit leans on image_1, an outcome round 2 did not choose (credit_diagnostics)
        stats["round_2_vs_image_1_corr"] = within_group_corr(r2, r1)
        # the same for the round-2 advantage actually used (~0 with round_2_baseline: image_1)
        stats["round_2_adv_vs_image_1_corr"] = within_group_corr(res2.advantages, r1)
    stats["zero_std_share"] = (res1.num_zero_std + res2.num_zero_std) / max(
        res1.num_groups + res2.num_groups, 1
    )
    return _train_only(credit, cfg)


def _round_2_ids(
    baseline: str, r1: torch.Tensor, group_ids: torch.Tensor | None, branches: int
) -> torch.Tensor:
    """Flat `[B]` labels of the sets the round-2 reward is normalised within (CreditConfig.round_2_baseline)."""
    if baseline == "image_1_reward":
        return _same_image_1_ids(r1, group_ids)
    if group_ids is not None:
        return group_ids.reshape(-1).long()
    n, g = r1.shape
    cols = g if baseline == "group" else branches
    # label = (row, column // cols): a whole row for "group", each run of `branches` for "image_1"
    return (torch.arange(n * g, device=r1.device) // cols).long()


def _normalise(r: torch.Tensor, ids: torch.Tensor, **kw) -> GroupAdvantages:
    """group_advantages of r (any shape) within the flat labels `ids` `[B]`, reshaped back to r's shape."""
    res = group_advantages(r.reshape(-1), group_ids=ids, **kw)
    res.advantages, res.valid = res.advantages.reshape(r.shape), res.valid.reshape(r.shape)
    return res


def _same_image_1_ids(r1: torch.Tensor, group_ids: torch.Tensor | None) -> torch.Tensor:
    """Flat `[B]` labels of (group, image_1 reward) strata. r1 `[num_groups, G]`, or `[B]` with group_ids `[B]`."""
    groups = (
        torch.arange(r1.shape[0], device=r1.device).repeat_interleave(r1.shape[1])
        if group_ids is None
        else group_ids
    )
    # rounded so that float noise in a reward plug-in cannot split equal scores
    score = torch.round(r1.reshape(-1).double() * 1e6).long()
    return torch.unique(torch.stack([groups.reshape(-1).long(), score], dim=1), dim=0, return_inverse=True)[1]


def _train_only(credit: CreditAdvantages, cfg: CreditConfig) -> CreditAdvantages:
    """Mask out the segments of rounds not in `cfg.train_rounds` (advantage 0, `valid` False)."""
    if 1 not in cfg.train_rounds:
        credit.round_1 = torch.zeros_like(credit.round_1)
        credit.valid_1 = torch.zeros_like(credit.valid_1)
    if 2 not in cfg.train_rounds:
        credit.round_2 = torch.zeros_like(credit.round_2)
        credit.valid_2 = torch.zeros_like(credit.valid_2)
        for adv, valid in (("round_2_text", "valid_2_text"), ("round_2_image", "valid_2_image")):
            if getattr(credit, adv) is not None:
                setattr(credit, adv, torch.zeros_like(getattr(credit, adv)))
                setattr(credit, valid, torch.zeros_like(getattr(credit, valid)))
    return credit
