"""Clipped-ratio GRPO/PPO objective over text tokens and SDE flow steps (pure functions).

Both kinds of "action" are scored the same way: a log-prob per element (`[B, L]`: a text token, or one stochastic
denoising step whose Gaussian log-prob is averaged over latent dims, see `irg_rl.inference.sde`), the log-prob
recorded at sampling time, and an advantage per trajectory (`[B]`) or per element (`[B, L]`, e.g. per round).
They differ in the clip range (text ~0.2; flow steps ~1e-4, their ratios live very close to 1) and in the KL to the
reference: a sampled estimator for tokens, the exact Gaussian KL for flow steps (same std under both models).

Per element: `ratio = exp(logp - old_logp)`, `loss = max(-ratio * A, -clip(ratio, 1 - lo, 1 + hi) * A)
+ kl_coef * kl`, then reduced by one of `AGGREGATIONS`. On the first inner update `logp == old_logp` must hold up
to numerics (`ratio_is_one`): a mismatch means the sampler and the trainer compute different log-probs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from irg_rl.train.rl.config import AGGREGATIONS, KL_KINDS, GRPOConfig

__all__ = [
    "PolicyTerms",
    "token_log_probs",
    "ratio_is_one",
    "kl_penalty",
    "gaussian_kl_same_std",
    "aggregate",
    "clipped_surrogate",
    "guard_log_ratio",
    "policy_loss",
    "grpo_loss",
]


@dataclass
class PolicyTerms:
    """Inputs of the clipped objective for one kind of action (text tokens or flow steps)."""

    # log-probs under the current policy, float32 [B, L] (with grad)
    logp: torch.Tensor
    # log-probs recorded at sampling time, [B, L]
    old_logp: torch.Tensor
    # advantages, [B] (one per trajectory) or [B, L] (e.g. per round)
    advantages: torch.Tensor
    # which elements count (padding, other segments and dropped zero-std groups are 0), bool or float [B, L]
    mask: torch.Tensor
    # text only: log-probs under the reference model [B, L], for the sampled KL estimator
    ref_logp: torch.Tensor | None = None
    # flow only (or any precomputed KL): per-element KL to the reference [B, L], e.g. gaussian_kl_same_std
    kl: torch.Tensor | None = None
    # optional log-ratio used instead of logp - old_logp [B, L] (GRPO-Guard's re-centred, rescaled ratio)
    log_ratio: torch.Tensor | None = None
    # optional per-element weight of the clipped term [B, L] (GRPO-Guard's 1 / dt step rescaling)
    weight: torch.Tensor | None = None


def token_log_probs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Log-prob of each target token. logits `[B, T, V]`, tokens `[B, T]` -> float32 `[B, T]`.

    Uses trl's `selective_log_softmax` (row-looped logsumexp, or its fused Triton kernel on GPU) on float32
    logits: bf16 log-softmax is too coarse for ratios that must equal 1. Logits must already be shifted so that
    `logits[:, i]` predicts `tokens[:, i]`; `temperature` must be the sampling temperature.
    """
    # imported here: trl pulls in transformers/accelerate/datasets (~4 s), which the pure maths does not need
    from trl.trainer.utils import selective_log_softmax

    if logits.shape[:-1] != tokens.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and tokens {tuple(tokens.shape)} do not line up")
    return selective_log_softmax(logits.float(), tokens.long(), temperature=temperature)


def _masked(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return values[mask.bool()]


def ratio_is_one(
    logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor | None = None, tol: float = 1e-3
) -> tuple[bool, float]:
    """First-inner-step self-test: (max |ratio - 1| < tol over the masked elements, that max). `[B, L]` inputs."""
    dev = (torch.exp(logp.detach().float() - old_logp.detach().float()) - 1.0).abs()
    if mask is not None:
        dev = _masked(dev, mask)
    worst = float(dev.max().item()) if dev.numel() else 0.0
    return worst < tol, worst


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "k3") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from tokens sampled by the policy. `[B, L]` -> `[B, L]`.

    k1 = logp - ref (unbiased, can be negative); k2 = (logp - ref)^2 / 2; k3 = exp(ref - logp) - (ref - logp) - 1
    (unbiased, always >= 0; the GRPO paper's choice).
    """
    if kind not in KL_KINDS:
        raise ValueError(f"kl kind must be one of {KL_KINDS}, got {kind!r}")
    d = logp.float() - ref_logp.float()
    if kind == "k1":
        return d
    if kind == "k2":
        return 0.5 * d**2
    return torch.exp(-d) + d - 1.0


def gaussian_kl_same_std(
    mean: torch.Tensor, mean_ref: torch.Tensor, std: torch.Tensor | float
) -> torch.Tensor:
    """Exact KL between `N(mean, std^2)` and `N(mean_ref, std^2)` per dim, averaged over non-batch dims.

    mean, mean_ref `[B, ...]`, std broadcastable (`[B, 1, ..., 1]`) and > 0 -> float32 `[B]`; averaging over dims
    matches the per-dim averaged step log-probs of `irg_rl.inference.sde`.
    """
    std = torch.as_tensor(std, dtype=torch.float32, device=mean.device)
    kl = (mean.float() - mean_ref.float()) ** 2 / (2.0 * std**2)
    return kl.flatten(1).mean(dim=1)


def aggregate(values: torch.Tensor, mask: torch.Tensor, mode: str = "token_mean") -> torch.Tensor:
    """Reduce per-element values `[B, L]` under `mask` `[B, L]` to a scalar.

    token_mean: sum / number of masked elements; seq_mean_token_mean: mean over sequences (with at least one
    element) of each sequence's mean; seq_mean_token_sum: mean over such sequences of each sequence's sum;
    seq_mean_token_sum_norm: sum / (B * L), a normaliser independent of lengths (Dr. GRPO). An all-zero mask gives
    0 (still connected to the graph).
    """
    if mode not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {mode!r}")
    if values.shape != mask.shape or values.ndim != 2:
        raise ValueError(
            f"values and mask must both be [B, L]; got {tuple(values.shape)}, {tuple(mask.shape)}"
        )
    m = mask.to(values.dtype)
    vm = values * m
    if mode == "token_mean":
        return vm.sum() / m.sum().clamp(min=1.0)
    if mode == "seq_mean_token_sum_norm":
        return vm.sum() / values.numel()
    count = m.sum(dim=1)
    per_seq = vm.sum(dim=1)
    if mode == "seq_mean_token_mean":
        per_seq = per_seq / count.clamp(min=1.0)
    nonempty = (count > 0).to(values.dtype)
    return (per_seq * nonempty).sum() / nonempty.sum().clamp(min=1.0)


def guard_log_ratio(
    logp: torch.Tensor, old_logp: torch.Tensor, mean: torch.Tensor, old_mean: torch.Tensor, std: torch.Tensor
) -> torch.Tensor:
    """GRPO-Guard's ratio normalisation for Gaussian SDE steps: `(logp - old_logp + b) * std` with the drift bias
    `b = mean((mean - old_mean)^2) / (2 std^2)`.

    Under the old policy the step log-ratio has mean `-b` (always negative: clipping then acts mostly on one side)
    and a spread that grows as `1 / std`; adding `b` re-centres it and multiplying by the transition std makes its
    scale the same at every noise level. logp, old_logp `[B, K]`; mean, old_mean `[B, K, ...]` (the transition
    means; gradient flows through `mean` only); std `[B, K]` the transition std (`std_t * sqrt(dt)`) -> `[B, K]`.
    Equal inputs give 0 (ratio 1).
    """
    std = std.detach().float()
    bias = (mean.float() - old_mean.detach().float()).pow(2).flatten(2).mean(-1) / (2.0 * std**2)
    return (logp.float() - old_logp.detach().float() + bias) * std


def clipped_surrogate(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    clip_low: float,
    clip_high: float,
    log_ratio: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-element PPO loss. logp, old_logp `[B, L]`, advantages `[B]` or `[B, L]`; `log_ratio` `[B, L]`, when
    given, replaces `logp - old_logp`.

    Returns (loss `[B, L]`, ratio `[B, L]`, clipped_low, clipped_high bool `[B, L]`): an element is clipped when
    the clipped term is the active one, i.e. ratio < 1 - clip_low with A < 0 or ratio > 1 + clip_high with A > 0
    (its gradient is then zero).
    """
    if advantages.ndim == 1:
        advantages = advantages[:, None]
    adv = advantages.to(torch.float32).expand_as(logp)
    ratio = torch.exp(logp.float() - old_logp.detach().float() if log_ratio is None else log_ratio.float())
    clipped = ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    loss = torch.maximum(-ratio * adv, -clipped * adv)
    low = (ratio < 1.0 - clip_low) & (adv < 0)
    high = (ratio > 1.0 + clip_high) & (adv > 0)
    return loss, ratio, low, high


def _mean(values: torch.Tensor) -> float:
    return float(values.mean().item()) if values.numel() else 0.0


def policy_loss(
    terms: PolicyTerms,
    *,
    clip_low: float,
    clip_high: float,
    aggregation: str = "token_mean",
    kl_coef: float = 0.0,
    kl_kind: str = "k3",
    prefix: str = "",
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped objective (plus optional KL penalty) for one kind of action. Returns (scalar loss, stats).

    The KL is `terms.kl` when given (flow steps), else `kl_penalty(logp, ref_logp, kl_kind)` (text); kl_coef > 0
    without either is an error. Stats (prefixed by `prefix`): loss, pg_loss, kl, approx_kl (k3 of old vs new),
    clip_frac, clip_frac_low, clip_frac_high, ratio_mean, ratio_min, ratio_max, ratio_max_dev, num_elements.
    """
    if terms.logp.shape != terms.old_logp.shape or terms.logp.shape != terms.mask.shape:
        raise ValueError(
            f"{prefix or 'policy_loss'}: logp {tuple(terms.logp.shape)}, old_logp {tuple(terms.old_logp.shape)} "
            f"and mask {tuple(terms.mask.shape)} must have the same [B, L] shape"
        )
    pg, ratio, low, high = clipped_surrogate(
        terms.logp, terms.old_logp, terms.advantages, clip_low, clip_high, terms.log_ratio
    )
    if terms.weight is not None:
        pg = pg * terms.weight.float()
    kl = terms.kl
    if kl is None and terms.ref_logp is not None:
        kl = kl_penalty(terms.logp, terms.ref_logp, kl_kind)
    if kl_coef > 0 and kl is None:
        raise ValueError(
            f"{prefix or 'policy_loss'}: kl_coef={kl_coef} > 0 but no reference was given "
            f"(set PolicyTerms.ref_logp for text or PolicyTerms.kl for flow steps, or kl_coef: 0)"
        )
    per_elem = pg if kl is None or kl_coef == 0 else pg + kl_coef * kl
    loss = aggregate(per_elem, terms.mask, aggregation)

    with torch.no_grad():
        m = terms.mask.bool()
        r = ratio[m]
        log_ratio = terms.logp.detach().float()[m] - terms.old_logp.float()[m]
        stats = {
            "loss": float(loss.item()),
            "pg_loss": float(aggregate(pg.detach(), terms.mask, aggregation).item()),
            "kl": float(aggregate(kl.detach(), terms.mask, aggregation).item()) if kl is not None else 0.0,
            # k3 estimate of KL(old || new) from the old policy's samples: (r - 1) - log r
            "approx_kl": _mean(torch.exp(log_ratio) - 1.0 - log_ratio),
            "clip_frac": _mean((low | high)[m].float()),
            "clip_frac_low": _mean(low[m].float()),
            "clip_frac_high": _mean(high[m].float()),
            "ratio_mean": _mean(r),
            "ratio_min": float(r.min().item()) if r.numel() else 1.0,
            "ratio_max": float(r.max().item()) if r.numel() else 1.0,
            "ratio_max_dev": float((r - 1.0).abs().max().item()) if r.numel() else 0.0,
            "num_elements": float(m.sum().item()),
        }
    return loss, {f"{prefix}{k}": v for k, v in stats.items()}


def grpo_loss(
    text: PolicyTerms | None, flow: PolicyTerms | None, cfg: GRPOConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """GRPO loss over a batch: `text_loss_weight * L_text + flow_loss_weight * L_flow` with per-kind clip ranges
    and aggregation from `cfg`. Either part may be None (text-only or image-only training). Stats are prefixed
    `text/` and `flow/`, plus `loss`."""
    if text is None and flow is None:
        raise ValueError("grpo_loss: nothing to optimise (both text and flow terms are None)")
    total: torch.Tensor | None = None
    stats: dict[str, float] = {}
    parts = (
        (text, "text/", cfg.text_clip_low, cfg.text_clip_high, cfg.text_aggregation, cfg.text_loss_weight),
        (flow, "flow/", cfg.flow_clip_low, cfg.flow_clip_high, cfg.flow_aggregation, cfg.flow_loss_weight),
    )
    for terms, prefix, lo, hi, agg, weight in parts:
        if terms is None:
            continue
        loss, s = policy_loss(
            terms,
            clip_low=lo,
            clip_high=hi,
            aggregation=agg,
            kl_coef=cfg.kl_coef,
            kl_kind=cfg.kl_kind,
            prefix=prefix,
        )
        stats.update(s)
        total = weight * loss if total is None else total + weight * loss
    assert total is not None
    stats["loss"] = float(total.item())
    return total, stats
