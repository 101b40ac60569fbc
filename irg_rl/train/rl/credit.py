"""Credit assignment: how a two-round trajectory's rewards become advantages for its segments (pure functions).

Credit modes (`CreditConfig.mode`):
- `shared` (T2I-R1): one reward per trajectory, `w2 * r(image_2) + reflection terms (+ w1 * r(image_1))`, one
  advantage for all segments.
- `per_round` (Janus-Pro-R1 style): round 1 (think_1 + image_1) gets the advantage of r(image_1); round 2
  (think_2 + image_2) gets the advantage of `w2 * r(image_2) + w_imp * improvement + w_noreg * no_regression +
  w_fmt * format`; each normalised within its group separately.

Self-verification (`verdict` weight > 0): think_2 states a keep / revise verdict on image_1, and the `verdict`
component scores its agreement with the image_1 reward. Under per-round credit it is added to the think_2 tokens'
round-2 reward only (`round_2_text`), since the image_2 steps do not choose the verdict. The `reading` component
(how think_2 reads image_1, `rewards.reading`) is credited the same way.

Stopped trajectories (`continued` False: a keep verdict ended them, image_2 := image_1): they have no image_2
step, and the image_2 steps of the others are normalised among the group's continued samples only
(`round_2_image`), so a sampled image_2 is compared with other sampled image_2s, not with kept first images. A
continued sample alone in its group (or baseline stratum) gets no image credit.

Registries (as verl registers advantage estimators): a credit rule (`CreditConfig.mode`) and a round-2 baseline
(`CreditConfig.round_2_baseline`) are functions registered by name with `register_credit_rule` /
`register_round_2_baseline`; a recipe names them, and a new one is added without touching `assign_credit`. What
the built-in variants measured on ShapesWorld is in docs/shapes_results.md (the `image_1` and `image_1_reward`
baselines were no better than `group` over five seeds; `shared` credit lost to `per_round`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from irg_rl.config import require as _require
from irg_rl.train.rl.advantages import (
    ROUND_2_COMPONENTS,
    CreditAdvantages,
    GroupAdvantages,
    combine_rewards,
    group_advantages,
    nan_positions,
)
from irg_rl.train.rl.credit_diagnostics import within_group_corr

__all__ = [
    "MISSING_POLICIES",
    "CREDIT_RULES",
    "ROUND_2_BASELINES",
    "CreditConfig",
    "CreditInputs",
    "register_credit_rule",
    "register_round_2_baseline",
    "assign_credit",
]

# what a NaN (not applicable) reward component does inside a weighted sum
MISSING_POLICIES = ("skip", "renormalize")


@dataclass
class CreditInputs:
    """What a credit rule reads: the reward components and the batch's layout."""

    # component name -> [num_groups, G] rewards (or [B] with group_ids)
    rewards: Mapping[str, torch.Tensor]
    # int [B] group labels for flat rewards; None = each row of the rewards is a group
    group_ids: torch.Tensor | None
    # eps / zero_std_tol / adv_clip of group_advantages
    norm: dict
    # round-2 continuations per first round (sampling.round2_branches)
    branches: int
    # bool, the rewards' shape: False where a keep verdict stopped the trajectory (None = all continued)
    continued: torch.Tensor | None
    # statistics the rule adds to (NaN counts already in)
    stats: dict[str, float] = field(default_factory=dict)


# name -> rule(inputs, cfg) -> CreditAdvantages
CREDIT_RULES: dict[str, Callable[[CreditInputs, CreditConfig], CreditAdvantages]] = {}
# name -> labels(r1, group_ids, branches) -> flat [B] ids of the sets the round-2 reward is normalised within
ROUND_2_BASELINES: dict[str, Callable[[torch.Tensor, torch.Tensor | None, int], torch.Tensor]] = {}


def register_credit_rule(name: str):
    """Decorator: register a credit rule under `name` (CreditConfig.mode); a name taken twice is an error."""

    def add(fn):
        if name in CREDIT_RULES:
            raise ValueError(f"credit rule {name!r} is registered twice")
        CREDIT_RULES[name] = fn
        return fn

    return add


def register_round_2_baseline(name: str):
    """Decorator: register a round-2 baseline under `name` (CreditConfig.round_2_baseline)."""

    def add(fn):
        if name in ROUND_2_BASELINES:
            raise ValueError(f"round-2 baseline {name!r} is registered twice")
        ROUND_2_BASELINES[name] = fn
        return fn

    return add


@dataclass
class CreditConfig:
    """How a two-round trajectory's rewards become advantages for think_1+image_1 and think_2+image_2."""

    # "shared": one advantage for every segment (T2I-R1); "per_round": each round its own (Janus-Pro-R1 style)
    mode: str = "per_round"
    # weight of the final image (image_2) reward in the round-2 (and shared) reward
    image_2: float = 1.0
    # weight of the improvement reward r(image_2) - r(image_1) in the round-2 (and shared) reward
    improvement: float = 0.5
    # weight of the no-regression reward (applies where image_1 was already right) in the round-2 reward
    no_regression: float = 0.5
    # weight of the reflection-format reward of think_2 in the round-2 (and shared) reward
    format: float = 0.1
    # shared mode only: weight of the image_1 reward added to the shared reward (0: only the outcome counts)
    shared_image_1: float = 0.0
    # weight of the verdict reward (1 where think_2's keep / revise verdict agrees with the image_1 reward's own
    # judgement, 0 where not; needs sampling.keep_pattern). per_round: credited to the think_2 tokens only (the
    # round-2 image steps do not choose the verdict); shared: added to the shared reward
    verdict: float = 0.0
    # weight of the reading reward (rewards.reading: how think_2 reads image_1, e.g. shapes_reading); credited
    # like the verdict, to the think_2 tokens only under per_round credit; needs rewards.reading
    reading: float = 0.0
    # NaN component: "skip" = contributes nothing; "renormalize" = weighted mean over the applicable components
    missing: str = "skip"
    # rounds whose segments are trained: [1, 2] both; [2] only think_2 + image_2 (the reflection and the refined
    # image; round 1 keeps its SFT behaviour); [1] only think_1 + image_1
    train_rounds: list[int] = field(default_factory=lambda: [1, 2])
    # per_round only: what the round-2 reward is compared with. "group": every sample of the prompt (so a good
    # image_1 raises the round-2 credit of whatever followed it); "image_1": the other continuations of the same
    # first round (needs sampling.round2_branches >= 2), so round 2 is credited only for what it added;
    # "image_1_reward": the samples of the prompt whose image_1 scored the same (no extra sampling; a sample alone
    # in its score is dropped from round 2's update)
    round_2_baseline: str = "group"

    def validate(self, section: str = "credit") -> None:
        _require(
            self.mode in CREDIT_RULES,
            section,
            "mode",
            f"must be a registered credit rule {sorted(CREDIT_RULES)}, got {self.mode!r}",
        )
        _require(
            self.missing in MISSING_POLICIES,
            section,
            "missing",
            f"must be one of {MISSING_POLICIES}, got {self.missing!r}",
        )
        for key in (
            "image_2",
            "improvement",
            "no_regression",
            "format",
            "shared_image_1",
            "verdict",
            "reading",
        ):
            _require(getattr(self, key) >= 0, section, key, f"weights must be >= 0, got {getattr(self, key)}")
        _require(self.image_2 > 0, section, "image_2", "the final image reward needs a positive weight")
        _require(
            self.round_2_baseline in ROUND_2_BASELINES,
            section,
            "round_2_baseline",
            f"must be a registered round-2 baseline {sorted(ROUND_2_BASELINES)}, got {self.round_2_baseline!r}",
        )
        _require(
            self.round_2_baseline == "group" or self.mode == "per_round",
            section,
            "round_2_baseline",
            f"{self.round_2_baseline} needs mode: per_round (shared credit has no separate round-2 advantage)",
        )
        rounds = list(self.train_rounds)
        _require(
            bool(rounds) and set(rounds) <= {1, 2} and len(set(rounds)) == len(rounds),
            section,
            "train_rounds",
            f"must be a non-empty list of distinct rounds from [1, 2], got {rounds}",
        )


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
    """Advantages for the round-1 and round-2 segments of each trajectory, by the registered rule `cfg.mode`.

    rewards: component name -> `[num_groups, G]` (or `[B]` with `group_ids` `[B]`); names `image_1`, `image_2`,
    `improvement`, `no_regression`, `format`, `verdict`, `reading` (those with non-zero weight in `cfg` are required;
    `image_1` always in `per_round` mode). `branches`: round-2 continuations per first round
    (sampling.round2_branches). `continued`: bool, the rewards' shape; False where a keep verdict stopped the
    trajectory before image_2 (None = every trajectory continued). Rounds not in `cfg.train_rounds` get
    advantage 0 and `valid` False.
    """
    cfg.validate()
    stats = {f"nan_{k}": float(torch.isnan(v.float()).sum().item()) for k, v in rewards.items()}
    norm = dict(eps=eps, zero_std_tol=zero_std_tol, adv_clip=adv_clip)
    inputs = CreditInputs(rewards, group_ids, norm, branches, continued, stats)
    return _train_only(CREDIT_RULES[cfg.mode](inputs, cfg), cfg)


def _round_2_weights(cfg: CreditConfig) -> dict[str, float]:
    return {name: getattr(cfg, name) for name in ROUND_2_COMPONENTS}


def _text_weights(cfg: CreditConfig) -> dict[str, float]:
    """Components only the reflection's text chooses (the verdict, the reading of image_1); zero weights left out
    so that a component that was not scored is not required."""
    return {name: w for name, w in (("verdict", cfg.verdict), ("reading", cfg.reading)) if w > 0}


@register_credit_rule("shared")
def shared_credit(x: CreditInputs, cfg: CreditConfig) -> CreditAdvantages:
    """T2I-R1: one reward per trajectory, one advantage for every segment."""
    weights = {**_round_2_weights(cfg), "image_1": cfg.shared_image_1, **_text_weights(cfg)}
    res = group_advantages(combine_rewards(x.rewards, weights, cfg.missing), group_ids=x.group_ids, **x.norm)
    x.stats.update(num_groups=res.num_groups, zero_std_groups=res.num_zero_std)
    x.stats["zero_std_share"] = res.num_zero_std / max(res.num_groups, 1)
    return CreditAdvantages(res.advantages, res.advantages, res.valid, res.valid, x.stats)


@register_credit_rule("per_round")
def per_round_credit(x: CreditInputs, cfg: CreditConfig) -> CreditAdvantages:
    """Janus-Pro-R1 style: round 1 on r(image_1), round 2 on its own weighted reward, each group-normalised; the
    verdict reward goes to the think_2 tokens only, and stopped trajectories leave the image_2 baseline."""
    rewards, stats, norm = x.rewards, x.stats, x.norm
    if "image_1" not in rewards:
        raise ValueError(f"per_round credit needs the 'image_1' reward; got components {sorted(rewards)}")
    r1 = rewards["image_1"].to(torch.float32)
    nan1 = torch.isnan(r1)
    if bool(nan1.any()):
        raise ValueError(
            f"image_1 reward is NaN (not applicable) for {nan_positions(nan1, grouped=r1.ndim == 2)}; per_round "
            f"credit scores round 1 on image_1 alone, so it must apply to every trajectory (or use mode: shared)"
        )
    weights = _round_2_weights(cfg)
    r2 = combine_rewards(rewards, weights, cfg.missing)
    res1 = group_advantages(r1, group_ids=x.group_ids, **norm)
    ids2 = ROUND_2_BASELINES[cfg.round_2_baseline](r1, x.group_ids, x.branches)
    res2 = _normalise(r2, ids2, **norm)
    credit = CreditAdvantages(res1.advantages, res2.advantages, res1.valid, res2.valid, stats)
    if cfg.verdict > 0 or cfg.reading > 0:
        r2_text = combine_rewards(rewards, {**weights, **_text_weights(cfg)}, cfg.missing)
        res_t = _normalise(r2_text, ids2, **norm)
        credit.round_2_text, credit.valid_2_text = res_t.advantages, res_t.valid
    continued = x.continued
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
    if x.group_ids is None:
        # how much the round-2 credit leans on image_1, an outcome round 2 did not choose (credit_diagnostics)
        stats["round_2_vs_image_1_corr"] = within_group_corr(r2, r1)
        # the same for the round-2 advantage actually used (~0 with round_2_baseline: image_1)
        stats["round_2_adv_vs_image_1_corr"] = within_group_corr(res2.advantages, r1)
    stats["zero_std_share"] = (res1.num_zero_std + res2.num_zero_std) / max(
        res1.num_groups + res2.num_groups, 1
    )
    return credit


@register_round_2_baseline("group")
def group_baseline(r1: torch.Tensor, group_ids: torch.Tensor | None, branches: int) -> torch.Tensor:
    """Every sample of the prompt. r1 `[num_groups, G]` (or `[B]` with group_ids) -> flat `[B]` labels."""
    if group_ids is not None:
        return group_ids.reshape(-1).long()
    n, g = r1.shape
    return (torch.arange(n * g, device=r1.device) // g).long()


@register_round_2_baseline("image_1")
def same_image_1_baseline(r1: torch.Tensor, group_ids: torch.Tensor | None, branches: int) -> torch.Tensor:
    """The other continuations of the same first round: each run of `branches` consecutive samples of a row."""
    if group_ids is not None or r1.ndim != 2 or branches < 2 or r1.shape[1] % branches:
        raise ValueError(
            f"round_2_baseline image_1 needs [num_groups, G] rewards with G a multiple of branches >= 2 "
            f"(sampling.round2_branches); got shape {tuple(r1.shape)}, branches {branches}"
        )
    n, g = r1.shape
    return (torch.arange(n * g, device=r1.device) // branches).long()


@register_round_2_baseline("image_1_reward")
def same_image_1_reward_baseline(
    r1: torch.Tensor, group_ids: torch.Tensor | None, branches: int
) -> torch.Tensor:
    """The samples of the prompt whose image_1 scored the same: flat `[B]` labels of (group, image_1 reward)."""
    groups = (
        torch.arange(r1.shape[0], device=r1.device).repeat_interleave(r1.shape[1])
        if group_ids is None
        else group_ids
    )
    # rounded so that float noise in a reward plug-in cannot split equal scores
    score = torch.round(r1.reshape(-1).double() * 1e6).long()
    return torch.unique(torch.stack([groups.reshape(-1).long(), score], dim=1), dim=0, return_inverse=True)[1]


def _normalise(r: torch.Tensor, ids: torch.Tensor, **kw) -> GroupAdvantages:
    """group_advantages of r (any shape) within the flat labels `ids` `[B]`, reshaped back to r's shape."""
    res = group_advantages(r.reshape(-1), group_ids=ids, **kw)
    res.advantages, res.valid = res.advantages.reshape(r.shape), res.valid.reshape(r.shape)
    return res


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
