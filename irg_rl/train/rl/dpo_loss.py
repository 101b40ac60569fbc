"""DPO over best/worst trajectory pairs: sigmoid DPO on text tokens, Diffusion-DPO on SDE flow steps (pure maths).

Both use `loss = -(1 - eps) log sigmoid(beta * delta) - eps log sigmoid(-beta * delta)` (eps = label smoothing,
conservative DPO; eps = 0 is plain DPO) with `delta = (logp_c - ref_c) - (logp_r - ref_r)` on sequence-level
log-probs of the chosen (c) and rejected (r) trajectory:
- text: the sum of the trajectory's token log-probs (think_1 and think_2);
- flow: the sum over the stochastic steps of the per-step Gaussian transition log-probs (each averaged over latent
  dims, `irg_rl.inference.sde`). As policy and reference share the step std, a step's log-ratio is the
  Diffusion-DPO "MSE form" `-(|x_next - mean|^2 - |x_next - mean_ref|^2) / (2 std^2)` (`flow_step_log_ratio`).
The implicit rewards `beta * (logp - ref)` give the logged accuracies and margins.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from irg_rl.train.rl.config import DPOConfig

__all__ = [
    "PairIndices",
    "DPOTerms",
    "best_worst_pairs",
    "ranked_pairs",
    "sequence_log_probs",
    "flow_step_log_ratio",
    "sigmoid_dpo_loss",
    "dpo_pair_stats",
    "dpo_loss",
]


@dataclass
class PairIndices:
    """Best/worst pairs picked from groups of G trajectories; all tensors `[P]` (long)."""

    # group (row) of each pair
    group: torch.Tensor
    # member index within the group of the chosen (highest reward) trajectory
    chosen: torch.Tensor
    # member index within the group of the rejected (lowest reward) trajectory
    rejected: torch.Tensor
    # groups with no pair (all rewards tied, or best - worst within the margin)
    num_skipped: int

    def flat(self, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(chosen, rejected) as indices into the flattened `[num_groups * G]` batch."""
        return self.group * group_size + self.chosen, self.group * group_size + self.rejected


@dataclass
class DPOTerms:
    """Sequence-level log-probs of a batch of pairs for one kind (text or flow); all `[P]` float32."""

    # policy log-prob of the chosen trajectories (with grad)
    policy_chosen: torch.Tensor
    # policy log-prob of the rejected trajectories (with grad)
    policy_rejected: torch.Tensor
    # reference log-prob of the chosen trajectories
    ref_chosen: torch.Tensor
    # reference log-prob of the rejected trajectories
    ref_rejected: torch.Tensor


def best_worst_pairs(rewards: torch.Tensor, min_margin: float = 0.0) -> PairIndices:
    """One (best, worst) pair per group: `ranked_pairs(rewards, 1, min_margin)`."""
    return ranked_pairs(rewards, 1, min_margin)


def ranked_pairs(rewards: torch.Tensor, pairs_per_group: int = 1, min_margin: float = 0.0) -> PairIndices:
    """Up to k pairs per group: the i-th best against the i-th worst, i < k. rewards `[num_groups, G]` (finite).

    k = 1 is the best/worst pair; k = G // 2 uses every trajectory once (more pairs per sampled group, each with a
    smaller reward gap). A pair whose reward gap is <= min_margin (always a tie) is dropped; `num_skipped` counts
    the groups left with no pair. Among equal rewards the lowest member index ranks first (stable sorts), so the
    choice is deterministic. Pairs are ordered group-major, then by rank.
    """
    if rewards.ndim != 2 or rewards.shape[1] < 2:
        raise ValueError(f"rewards must be [num_groups, G >= 2], got {tuple(rewards.shape)}")
    G = rewards.shape[1]
    if not 1 <= pairs_per_group <= G // 2:
        raise ValueError(f"pairs_per_group must be in [1, G // 2 = {G // 2}], got {pairs_per_group}")
    bad = ~torch.isfinite(rewards)
    if bool(bad.any()):
        g, i = bad.nonzero()[0].tolist()
        raise ValueError(
            f"non-finite reward at group {g} member {i} ({int(bad.sum())} in all); pairs need a finite scalar "
            f"reward per trajectory (combine NaN components with advantages.combine_rewards first)"
        )
    r = rewards.float()
    k = pairs_per_group
    best = torch.sort(r, dim=1, descending=True, stable=True).indices[:, :k]
    worst = torch.sort(r, dim=1, stable=True).indices[:, :k]
    margin = r.gather(1, best) - r.gather(1, worst)
    keep = margin > min_margin
    groups = torch.arange(r.shape[0], device=r.device)[:, None].expand(-1, k)
    return PairIndices(
        group=groups[keep],
        chosen=best[keep],
        rejected=worst[keep],
        num_skipped=int((~keep.any(dim=1)).sum().item()),
    )


def sequence_log_probs(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of per-element log-probs (tokens or flow steps) under mask. `[B, L]`, `[B, L]` -> float32 `[B]`."""
    if logps.shape != mask.shape:
        raise ValueError(f"logps {tuple(logps.shape)} and mask {tuple(mask.shape)} must match")
    return (logps.float() * mask.float()).sum(dim=1)


def flow_step_log_ratio(
    x_next: torch.Tensor, mean: torch.Tensor, mean_ref: torch.Tensor, std: torch.Tensor | float
) -> torch.Tensor:
    """log p(x_next) - log p_ref(x_next) for Gaussian steps with the same std, averaged over non-batch dims.

    x_next, mean, mean_ref `[B, ...]`, std broadcastable (> 0) -> float32 `[B]`. Equal to the difference of
    `sde.gaussian_log_prob` values, without the cancelling constants.
    """
    std = torch.as_tensor(std, dtype=torch.float32, device=mean.device)
    x = x_next.detach().float()
    lr = -((x - mean.float()) ** 2 - (x - mean_ref.float()) ** 2) / (2.0 * std**2)
    return lr.flatten(1).mean(dim=1)


def sigmoid_dpo_loss(
    terms: DPOTerms, beta: float, label_smoothing: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair DPO loss. Returns (losses `[P]`, chosen_rewards `[P]`, rejected_rewards `[P]`) with
    rewards = beta * (policy - ref), detached. At delta = 0 the loss is log 2."""
    if not 0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    chosen = terms.policy_chosen.float() - terms.ref_chosen.float()
    rejected = terms.policy_rejected.float() - terms.ref_rejected.float()
    logits = beta * (chosen - rejected)
    losses = -(1.0 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)
    return losses, beta * chosen.detach(), beta * rejected.detach()


def dpo_pair_stats(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor, prefix: str = "") -> dict:
    """Logging stats of implicit rewards `[P]`: accuracy (chosen > rejected), margin, chosen and rejected means."""
    if chosen_rewards.numel() == 0:
        return {
            f"{prefix}{k}": 0.0
            for k in ("reward_accuracy", "reward_margin", "chosen_reward", "rejected_reward")
        }
    return {
        f"{prefix}reward_accuracy": float((chosen_rewards > rejected_rewards).float().mean().item()),
        f"{prefix}reward_margin": float((chosen_rewards - rejected_rewards).mean().item()),
        f"{prefix}chosen_reward": float(chosen_rewards.mean().item()),
        f"{prefix}rejected_reward": float(rejected_rewards.mean().item()),
    }


def dpo_loss(
    text: DPOTerms | None, flow: DPOTerms | None, cfg: DPOConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """`text_loss_weight * mean(text DPO) + flow_loss_weight * mean(flow DPO)` over the pairs, with beta_text and
    beta_flow. Either part may be None. Stats prefixed `text/`, `flow/`, plus `loss`."""
    if text is None and flow is None:
        raise ValueError("dpo_loss: nothing to optimise (both text and flow terms are None)")
    total: torch.Tensor | None = None
    stats: dict[str, float] = {}
    for terms, prefix, beta, weight in (
        (text, "text/", cfg.beta_text, cfg.text_loss_weight),
        (flow, "flow/", cfg.beta_flow, cfg.flow_loss_weight),
    ):
        if terms is None:
            continue
        losses, cr, rr = sigmoid_dpo_loss(terms, beta, cfg.label_smoothing)
        loss = losses.mean() if losses.numel() else terms.policy_chosen.sum() * 0.0
        stats[f"{prefix}loss"] = float(loss.item())
        stats.update(dpo_pair_stats(cr, rr, prefix))
        total = weight * loss if total is None else total + weight * loss
    assert total is not None
    stats["loss"] = float(total.item())
    return total, stats
