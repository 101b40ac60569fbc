"""GRPO driver: generate -> reward -> log-probs -> advantage -> update, over think-image-reflect-image trajectories.

`accelerate launch --config_file recipes/accelerate/<cfg>.yaml scripts/grpo.py --config recipes/shapes/grpo.yaml`
(or plain `python scripts/grpo.py ...`). Each step samples `prompts.per_step` x G trajectories (SDE window on
both images, log-probs recorded), scores them, turns rewards into per-round (or shared) group advantages, and runs
`grpo.inner_updates` optimiser steps of the clipped objective over think tokens and SDE steps. Before the first
inner step's update, the re-scored log-probs must equal the recorded ones (ratio == 1): checked and logged every
step (`ratio_check/*`), and fatal with `train.strict_ratio_check`. With `grpo.old_logprobs: trainer` the old
log-probs are the trainer's own first-pass ones (ratio 1 by construction) and `ratio_check/*` only measures the
sampler/trainer gap (bf16 rollout workers against an fp32-master trainer). The maths lives in `advantages`,
`policy_loss` and `rl_batch`; the loop in `rl_loop`.
"""

from __future__ import annotations

import json
import logging

from irg_rl.distributed.zero3 import index_chunks
from irg_rl.inference.rescoring import rescore
from irg_rl.inference.sde import sliding_window_start
from irg_rl.inference.trajectory import TrajectoryBatch
from irg_rl.rollout.rewards import TrajectoryRewards
from irg_rl.train.rl.batch import flow_terms, ratio_deviation, text_terms
from irg_rl.train.rl.credit import assign_credit
from irg_rl.train.rl.loop import RLLoop
from irg_rl.train.rl.policy_loss import grpo_loss
from irg_rl.train.rl.recipe import GRPORecipe, sync_group_size

__all__ = ["GRPOTrainer", "train", "main"]

log = logging.getLogger(__name__)


def _sync_sampling(recipe: GRPORecipe) -> None:
    """The engine samples grpo.group_size trajectories per prompt (sync_group_size)."""
    sync_group_size(recipe.sampling, recipe.grpo.group_size, "grpo.group_size")


class GRPOTrainer(RLLoop):
    """Builds everything from a `GRPORecipe`; `run()` trains and returns the per-step history."""

    name = "grpo"

    def __init__(self, recipe: GRPORecipe):
        _sync_sampling(recipe)
        recipe.validate()
        super().__init__(recipe, recipe.grpo.group_size, needs_reference=self.needs_reference(recipe))
        self.last_ratio: dict[str, float] = {}

    @staticmethod
    def needs_reference(recipe) -> bool:
        """A reference model is built only when a KL term uses it."""
        return recipe.grpo.kl_coef > 0

    def window_start(self) -> int | None:
        """The step's SDE window start: fixed, drawn (random schedule), or sliding over RL steps (MixGRPO)."""
        g, s = self.recipe.grpo, self.recipe.sampling
        if g.sde_window_schedule != "sliding" or s.sde_window_start is not None or s.sde_window_size <= 0:
            return super().window_start()
        return sliding_window_start(
            self.setup.step, self.window_max_start(), g.sde_window_shift_every, g.sde_window_stride
        )

    def advantages(self, batch: TrajectoryBatch, rewards: TrajectoryRewards):
        g = self.recipe.grpo
        P = len(batch) // self.G
        comps = {k: v.reshape(P, self.G) for k, v in rewards.components.items()}
        return assign_credit(
            comps,
            g.credit,
            eps=g.adv_eps,
            zero_std_tol=g.zero_std_tol,
            adv_clip=g.adv_clip,
            branches=self.recipe.sampling.round2_branches,
            continued=~batch.stopped().reshape(P, self.G),
        )

    def _micro_batches(self, n: int) -> list[list[int]]:
        return index_chunks(n, self.recipe.train.micro_batch)

    def update(self, batch: TrajectoryBatch, rewards: TrajectoryRewards) -> dict[str, float]:
        s, g = self.setup, self.recipe.grpo
        credit = self.advantages(batch, rewards)
        stats = {f"adv/{k}": float(v) for k, v in credit.stats.items()}
        n = len(batch)
        sched, any_valid = self._schedule(n, credit)
        refs = [None] * len(sched)
        if g.kl_coef > 0:
            with s.reference() as ref_model:
                refs = [rescore(ref_model, batch.subset(idx)) for idx, _ in sched]
        olds: list[tuple] = [()] * len(sched)  # old_logprobs "trainer": first-pass log-probs per micro-batch
        old_means: list[dict | None] = [None] * len(sched)  # flow_ratio "guard": first-pass transition means
        for u in range(g.inner_updates):
            s.opt.zero_grad(set_to_none=True)
            agg: dict[str, float] = {}
            dev = {"text": 0.0, "flow": 0.0}
            for j, ((idx, weight), ref) in enumerate(zip(sched, refs, strict=True)):
                sub = batch.subset(idx)
                out = rescore(s.view, sub)
                if u == 0 and weight > 0:
                    d = ratio_deviation(sub, out)
                    dev = {k: max(dev[k], d[k]) for k in dev}
                sub_credit = credit.select(idx)
                text = text_terms(sub, out, sub_credit, ref) if g.text_loss_weight > 0 else None
                if g.flow_ratio == "guard" and u == 0:
                    old_means[j] = {k: v.detach() for k, v in out.sde_mean.items()}
                flow = (
                    flow_terms(sub, out, sub_credit, ref, old_means[j] if g.flow_ratio == "guard" else None)
                    if g.flow_loss_weight > 0
                    else None
                )
                if text is None and flow is None:
                    raise ValueError(
                        "grpo: nothing to train (no think tokens and no SDE steps); set sampling.sde_window_size > 0 "
                        "or sampling.think: true, and a positive text/flow loss weight"
                    )
                if g.old_logprobs == "trainer":
                    if u == 0:
                        olds[j] = tuple(None if t is None else t.logp.detach() for t in (text, flow))
                    for t, old in zip((text, flow), olds[j], strict=True):
                        if t is not None:
                            t.old_logp = old
                loss, ls = grpo_loss(text, flow, g)
                s.backward(loss * (weight * len(idx) / n), boundary=j == len(sched) - 1)
                for k, v in ls.items():
                    agg[k] = agg.get(k, 0.0) + weight * v * len(idx) / n
            self._end_inner_update(u, dev, agg, any_valid, stats)
        return self._final_stats(stats, any_valid)

    def _schedule(self, n: int, credit) -> tuple[list[tuple[list[int], float]], bool]:
        """(micro-batch schedule, whether any group has a signal) for a batch of `n` trajectories."""
        s = self.setup
        micro = self._micro_batches(n)
        # every rank runs as many passes as the busiest one (zero-weight repeats; RLSetup.micro_batches)
        sched = s.micro_batches(micro)
        # one decision for all ranks: a rank stepping alone would leave DDP replicas apart
        any_valid = s.lockstep(int(bool(credit.valid_1.any() or credit.valid_2.any()))) > 0
        return sched, any_valid

    def _end_inner_update(self, u: int, dev: dict, agg: dict, any_valid: bool, stats: dict) -> None:
        """After the backward passes of inner update `u`: the ratio check (first update), the optimiser step
        (clipped; skipped when no group has a signal), and the first / last update's stats."""
        s, inner = self.setup, self.recipe.grpo.inner_updates
        if u == 0:
            self._check_ratio(dev, stats)
        if any_valid:
            if self.recipe.optim.grad_clip > 0:
                gn = s.acc.clip_grad_norm_(s.module.parameters(), self.recipe.optim.grad_clip)
                agg["grad_norm"] = float(gn) if gn is not None else float("nan")
            s.opt.step()
        s.opt.zero_grad(set_to_none=True)
        tag = "first" if u == 0 else "last"
        if u == 0 or u == inner - 1:
            stats.update({(f"{tag}/{k}" if inner > 1 else k): v for k, v in agg.items()})

    @staticmethod
    def _final_stats(stats: dict, any_valid: bool) -> dict:
        stats["update/skipped_no_signal"] = float(not any_valid)
        # the headline loss is the last inner update's (what the progress bar and final summary show)
        stats.setdefault("loss", stats.get("last/loss", stats.get("first/loss", float("nan"))))
        return stats

    def _check_ratio(self, dev: dict[str, float], stats: dict) -> None:
        """Log the sampler-vs-trainer deviation; a failure warns (or raises) only when the recorded log-probs
        are the PPO old log-probs (`grpo.old_logprobs: rollout`)."""
        tol = self.recipe.grpo.ratio_check_tol
        stats["ratio_check/text_max_dev"] = dev["text"]
        stats["ratio_check/flow_max_dev"] = dev["flow"]
        ok = dev["text"] < tol and dev["flow"] < tol
        stats["ratio_check/ok"] = float(ok)
        self.last_ratio = dict(dev)
        if not ok and self.recipe.grpo.old_logprobs == "rollout":
            msg = (
                f"GRPO ratio check failed at step {self.setup.step}: max |ratio - 1| text {dev['text']:.2e}, flow "
                f"{dev['flow']:.2e} > grpo.ratio_check_tol={tol} at the first inner step: the rollout workers and "
                f"the trainer compute different log-probs (stale weights, dtype or sampler/rescoring mismatch)"
            )
            if self.recipe.train.strict_ratio_check:
                raise RuntimeError(msg)
            log.warning(msg)

    def run(self) -> list[dict]:
        try:
            return self.run_loop()
        finally:
            self.close()


def train(recipe: GRPORecipe) -> list[dict]:
    return GRPOTrainer(recipe).run()


def main(argv: list[str] | None = None) -> None:
    from irg_rl.config import parse_cli

    recipe = parse_cli(GRPORecipe, argv, description="GRPO over IRG think-image-reflect-image trajectories.")
    history = train(recipe)
    if history:
        print(json.dumps({"final_step": history[-1]["step"], "final_loss": history[-1].get("loss")}))
