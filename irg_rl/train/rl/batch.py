"""From re-scored trajectories to loss inputs (pure functions): per-element log-probs, masks and advantages for
the text tokens (think_1 | think_2) and the SDE steps (image_1 | image_2), each segment taking its advantage from
`CreditAdvantages.for_segment` (round 1, round 2, or round 2's text / image variants; identical in shared mode).
SDE steps a trajectory did not record (stopped before image_2) are masked out."""

from __future__ import annotations

import torch

from irg_rl.inference.rescoring import RescoreOutput
from irg_rl.inference.trajectory import TrajectoryBatch
from irg_rl.train.rl.advantages import CreditAdvantages
from irg_rl.train.rl.policy_loss import PolicyTerms, guard_log_ratio

__all__ = ["ROUND_OF", "text_terms", "flow_terms", "ratio_deviation", "sequence_logps"]

# which round's advantage each segment takes
ROUND_OF = {"think_1": 1, "image_1": 1, "think_2": 2, "image_2": 2}


def _round(credit: CreditAdvantages, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    adv, valid = credit.for_segment(name)
    return adv.reshape(-1), valid.reshape(-1)


def text_terms(
    batch: TrajectoryBatch,
    out: RescoreOutput,
    credit: CreditAdvantages,
    ref: RescoreOutput | None = None,
) -> PolicyTerms | None:
    """PolicyTerms over `[N, L_1 + L_2]` think tokens (None when nothing was scored). Advantages `[N, L]`."""
    names = [n for n in ("think_1", "think_2") if n in out.text_logprobs]
    if not names:
        return None
    logp, old, mask, adv, ref_lp = [], [], [], [], []
    for name in names:
        _, recorded, m = batch.text_tensors(name)
        a, valid = _round(credit, name)
        dev = out.text_logprobs[name].device
        logp.append(out.text_logprobs[name])
        old.append(recorded.to(dev))
        mask.append(m.to(dev) & valid.to(dev)[:, None])
        adv.append(a.to(dev)[:, None].expand_as(recorded).float())
        if ref is not None:
            ref_lp.append(ref.text_logprobs[name].detach().to(dev))
    return PolicyTerms(
        logp=torch.cat(logp, 1),
        old_logp=torch.cat(old, 1),
        advantages=torch.cat(adv, 1),
        mask=torch.cat(mask, 1),
        ref_logp=torch.cat(ref_lp, 1) if ref is not None else None,
    )


def _step_kl(out: RescoreOutput, ref: RescoreOutput, name: str) -> torch.Tensor:
    """Closed-form Gaussian KL per recorded step `[N, K]` (same std under both models)."""
    mean, mean_ref, std = out.sde_mean[name], ref.sde_mean[name].detach(), out.sde_std[name].detach()
    kl = (mean.float() - mean_ref.float()) ** 2 / (2.0 * std.float()[..., None, None] ** 2)
    return kl.flatten(2).mean(-1)


def _step_dt(batch: TrajectoryBatch, name: str, K: int) -> torch.Tensor:
    """Step sizes `t - t_next` of every recorded SDE step `[N, K]` (1 where a trajectory recorded fewer)."""
    out = torch.ones(len(batch), K)
    for i, tr in enumerate(batch.trajectories):
        seg = tr.segment(name)
        out[i, : seg.t.numel()] = (seg.t - seg.t_next).float()
    return out


def flow_terms(
    batch: TrajectoryBatch,
    out: RescoreOutput,
    credit: CreditAdvantages,
    ref: RescoreOutput | None = None,
    guard_old_mean: dict[str, torch.Tensor] | None = None,
) -> PolicyTerms | None:
    """PolicyTerms over `[N, K_1 + K_2]` SDE steps (None when no step was stochastic). With `guard_old_mean`
    (image name -> the old policy's transition means `[N, K, n, P]`) the ratio is GRPO-Guard's
    (`policy_loss.guard_log_ratio`) and each step's term is weighted by 1 / dt."""
    names = [n for n in ("image_1", "image_2") if n in out.sde_logprobs]
    if not names:
        return None
    logp, old, mask, adv, kl, log_ratio, weight = [], [], [], [], [], [], []
    for name in names:
        lp = out.sde_logprobs[name]
        dev = lp.device
        a, valid = _round(credit, name)
        logp.append(lp)
        old.append(batch.sde_logprobs(name).to(dev))
        # only steps that were sampled: a trajectory stopped by a keep verdict has no image_2 step
        mask.append(valid.to(dev)[:, None].expand_as(lp) & out.sde_mask[name].to(dev))
        adv.append(a.to(dev)[:, None].expand_as(lp).float())
        if ref is not None:
            kl.append(_step_kl(out, ref, name))
        if guard_old_mean is not None:
            log_ratio.append(
                guard_log_ratio(
                    lp, old[-1], out.sde_mean[name], guard_old_mean[name].to(dev), out.sde_std[name]
                )
            )
            weight.append(1.0 / _step_dt(batch, name, lp.shape[1]).to(dev))
    return PolicyTerms(
        logp=torch.cat(logp, 1),
        old_logp=torch.cat(old, 1),
        advantages=torch.cat(adv, 1),
        mask=torch.cat(mask, 1),
        kl=torch.cat(kl, 1) if ref is not None else None,
        log_ratio=torch.cat(log_ratio, 1) if log_ratio else None,
        weight=torch.cat(weight, 1) if weight else None,
    )


def ratio_deviation(batch: TrajectoryBatch, out: RescoreOutput) -> dict[str, float]:
    """max |exp(logp - recorded) - 1| over every sampled think token and every recorded SDE step, per kind."""
    res = {"text": 0.0, "flow": 0.0}
    with torch.no_grad():
        for name, lp in out.text_logprobs.items():
            _, recorded, m = batch.text_tensors(name)
            d = (torch.exp(lp.float().cpu() - recorded) - 1).abs()[m]
            if d.numel():
                res["text"] = max(res["text"], float(d.max()))
        for name, lp in out.sde_logprobs.items():
            d = (torch.exp(lp.float().cpu() - batch.sde_logprobs(name)) - 1).abs()[batch.sde_mask(name)]
            if d.numel():
                res["flow"] = max(res["flow"], float(d.max()))
    return res


def sequence_logps(
    batch: TrajectoryBatch, out: RescoreOutput
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(text `[N]`, flow `[N]`) sums of log-probs of each trajectory's think tokens and SDE steps (None if absent)."""
    text = None
    for name, lp in out.text_logprobs.items():
        s = (lp.float() * out.text_mask[name].float()).sum(1)
        text = s if text is None else text + s
    flow = None
    for name, lp in out.sde_logprobs.items():
        s = (lp.float() * out.sde_mask[name].float()).sum(1)
        flow = s if flow is None else flow + s
    return text, flow
