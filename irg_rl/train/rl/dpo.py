"""DPO driver: best vs worst trajectory of each group, sigmoid DPO on think tokens and Diffusion-DPO on SDE steps.

Online (`dpo.pair_mode: online`): each step samples `prompts.per_step` groups of `pairs.group_size` trajectories,
scores them, ranks each group by one scalar (`pairs.ranking` weights over image_1, image_2, improvement,
no_regression, format) and trains on its (best, worst) pair, or on `pairs.pairs_per_group` ranked pairs (i-th
best vs i-th worst), for `pairs.inner_updates` optimiser steps per batch. Offline (`offline`): each step reads
one saved rollout batch (`<grpo output_dir>/rollouts/step-*.pt` with its rewards) instead of sampling. The
reference is the adapter-disabled model under LoRA, else a frozen copy of the starting weights.
`accelerate launch --config_file recipes/accelerate/<cfg>.yaml scripts/dpo.py --config recipes/shapes/dpo.yaml`
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from irg_rl.distributed.zero3 import index_chunks
from irg_rl.inference.rescoring import rescore
from irg_rl.inference.trajectory import TrajectoryBatch
from irg_rl.rollout.rewards import TrajectoryRewards
from irg_rl.train.rl.advantages import ROUND_2_COMPONENTS, combine_rewards
from irg_rl.train.rl.batch import sequence_logps
from irg_rl.train.rl.dpo_loss import DPOTerms, dpo_loss, ranked_pairs
from irg_rl.train.rl.loop import RLLoop
from irg_rl.train.rl.outputs import load_rollout
from irg_rl.train.rl.recipe import DPORecipe, sync_group_size

__all__ = ["DPOTrainer", "ranking_rewards", "train", "main"]


def ranking_rewards(components: dict[str, torch.Tensor], cfg) -> torch.Tensor:
    """One scalar per trajectory `[N]` from the credit components (weights of `cfg`, a CreditConfig)."""
    weights = {name: getattr(cfg, name) for name in ROUND_2_COMPONENTS}
    weights["image_1"] = cfg.shared_image_1
    weights["verdict"] = cfg.verdict
    weights["reading"] = cfg.reading
    return combine_rewards(components, weights, cfg.missing)


class DPOTrainer(RLLoop):
    """Builds everything from a `DPORecipe`; `run()` trains and returns the per-step history."""

    name = "dpo"

    def __init__(self, recipe: DPORecipe):
        recipe.validate()
        sync_group_size(recipe.sampling, recipe.pairs.group_size, "pairs.group_size")
        super().__init__(recipe, recipe.pairs.group_size, needs_reference=True)
        self.offline_files: list[Path] = []
        if recipe.dpo.pair_mode == "offline":
            root = Path(recipe.pairs.rollouts_dir)
            files = sorted(p for p in root.glob("step-*.pt") if not p.name.endswith(".rewards.pt"))
            if not files:
                raise FileNotFoundError(f"pairs.rollouts_dir={root}: no saved rollouts (step-*.pt)")
            self.offline_files = files * recipe.pairs.epochs

    def pair_loss(
        self, batch: TrajectoryBatch, components: dict[str, torch.Tensor], G: int
    ) -> dict[str, float]:
        s, d, pc = self.setup, self.recipe.dpo, self.recipe.pairs
        r = ranking_rewards(components, pc.ranking).reshape(-1, G)
        pairs = ranked_pairs(r, pc.pairs_per_group, d.min_reward_margin)
        stats = {"pairs/num": float(pairs.group.numel()), "pairs/skipped_groups": float(pairs.num_skipped)}
        # every rank runs the passes while any rank has a pair (see RLSetup.lockstep); the skipping ones train on
        # a zero-weight stand-in pair (trajectory 0 against itself)
        if s.lockstep(int(pairs.group.numel() > 0)) == 0:
            stats["update/skipped_no_signal"] = 1.0
            return stats
        has_pairs = pairs.group.numel() > 0
        chosen, rejected = pairs.flat(G) if has_pairs else (torch.zeros(1, dtype=torch.long),) * 2
        P = chosen.numel()
        # `train.micro_batch` counts trajectories and a pair's two share a pass: micro_batch // 2 pairs (>= 1)
        mb = self.recipe.train.micro_batch
        chunks = index_chunks(P, max(1, mb // 2) if mb else 0)
        sched = s.micro_batches(chunks)
        if not has_pairs:
            sched = [(idx, 0.0) for idx, _ in sched]
        subs = [batch.subset(torch.cat([chosen[c], rejected[c]]).tolist()) for c, _ in sched]
        with s.reference() as ref_model:
            refs = [sequence_logps(sub, rescore(ref_model, sub)) for sub in subs]
        stats["update/passes"] = float(len(sched))

        def terms(pol, ref, n):
            if pol is None:
                return None
            return DPOTerms(pol[:n], pol[n:], ref[:n].detach(), ref[n:].detach())

        for inner in range(pc.inner_updates):
            s.opt.zero_grad(set_to_none=True)
            agg: dict[str, float] = {}
            for j, ((c, weight), sub, (ref_text, ref_flow)) in enumerate(zip(sched, subs, refs, strict=True)):
                pol_text, pol_flow = sequence_logps(sub, rescore(s.view, sub))
                text = terms(pol_text, ref_text, len(c)) if d.text_loss_weight > 0 else None
                flow = terms(pol_flow, ref_flow, len(c)) if d.flow_loss_weight > 0 else None
                loss, ls = dpo_loss(text, flow, d)
                # the loss and every logged stat are means over pairs: a pass's share is its pair count over P
                share = weight * len(c) / P
                s.backward(loss * share, boundary=j == len(sched) - 1)
                for k, v in ls.items():
                    agg[k] = agg.get(k, 0.0) + share * v
            if self.recipe.optim.grad_clip > 0:
                gn = s.acc.clip_grad_norm_(s.module.parameters(), self.recipe.optim.grad_clip)
                agg["grad_norm"] = float(gn) if gn is not None else float("nan")
            s.opt.step()
            s.opt.zero_grad(set_to_none=True)
            if inner == 0 and has_pairs:  # the first inner step's stats describe the batch as sampled
                stats.update(
                    {f"first/{k}": v for k, v in agg.items() if k in ("loss", "text/loss", "flow/loss")}
                )
        if not has_pairs:
            stats["update/skipped_no_signal"] = 1.0
            return stats
        stats.update(agg)
        stats["pairs/reward_gap_mean"] = float(
            (r[pairs.group, pairs.chosen] - r[pairs.group, pairs.rejected]).mean()
        )
        stats["update/skipped_no_signal"] = 0.0
        return stats

    def update(self, batch: TrajectoryBatch, rewards: TrajectoryRewards) -> dict[str, float]:
        return self.pair_loss(batch, rewards.components, self.G)

    def train_step(self) -> dict[str, float]:
        if not self.offline_files:
            return super().train_step()
        s = self.setup
        t0 = time.perf_counter()
        path = self.offline_files[s.step % len(self.offline_files)]
        batch, comps = load_rollout(path)
        G = max(t.sample_index for t in batch.trajectories) + 1
        stats = {"offline/file": float(s.step % len(self.offline_files))}
        stats.update(self.pair_loss(batch, comps, G))
        s.scheduler.step()
        s.step += 1
        stats["time/sync_s"] = s.rollouts.sync_weights()
        stats.update(
            {"step": s.step, "time/step_s": time.perf_counter() - t0, "trajectories": float(len(batch))}
        )
        return stats

    def run(self) -> list[dict]:
        try:
            return self.run_loop()
        finally:
            self.close()


def train(recipe: DPORecipe) -> list[dict]:
    return DPOTrainer(recipe).run()


def main(argv: list[str] | None = None) -> None:
    from irg_rl.config import parse_cli

    recipe = parse_cli(
        DPORecipe, argv, description="DPO on best/worst IRG trajectory pairs (online or offline)."
    )
    history = train(recipe)
    if history:
        print(json.dumps({"final_step": history[-1]["step"], "final_loss": history[-1].get("loss")}))
