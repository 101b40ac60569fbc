"""DiffusionNFT driver: generate -> reward -> advantages -> forward-process update, over IRG trajectories.

`accelerate launch --config_file recipes/accelerate/<cfg>.yaml scripts/nft.py --config recipes/shapes/nft.yaml`
(or plain `python scripts/nft.py ...`). Each step samples `prompts.per_step` x G trajectories with the
deterministic image solver (no SDE steps; think log-probs recorded), scores them, and turns rewards into the same
per-round group advantages as GRPO (`grpo.credit`). The update trains
- the thinks with GRPO's clipped objective (`grpo.text_*`; the ratio must be 1 at the first inner update), and
- the images with DiffusionNFT (`irg_rl.train.rl.nft_loss`): each generated image that counts (image_1 always,
  image_2 only where the trajectory continued past a keep verdict) is noised `nft.timesteps_per_image` times on
  the forward process, and the conditional velocity at those points, `v`, is pulled towards the positive
  implicit policy and pushed from the negative one according to its round's advantage.

The old velocity `v_old` is the sampling policy's: the weights before the step's first update, i.e. `v` of the
first inner update, detached (one forward pass, no second model). The same noise draws serve every inner update.
No CFG branch is built in training (the objective is CFG-free); guidance stays a sampling-time choice.
"""

from __future__ import annotations

import json

import numpy as np
import torch

from irg_rl.inference.engine_config import IRGSamplingConfig
from irg_rl.inference.rescoring import NoisedBatch, NoisedLatents, RescoreOutput, rescore_noised
from irg_rl.inference.sde import timestep_grid
from irg_rl.inference.trajectory import TrajectoryBatch
from irg_rl.rollout.rewards import TrajectoryRewards
from irg_rl.train.rl.advantages import CreditAdvantages
from irg_rl.train.rl.batch import ratio_deviation, text_terms
from irg_rl.train.rl.config import NFTConfig
from irg_rl.train.rl.grpo import GRPOTrainer
from irg_rl.train.rl.nft_loss import nft_image_loss, reward_probability, velocity_kl
from irg_rl.train.rl.policy_loss import grpo_loss
from irg_rl.train.rl.recipe import NFTRecipe

__all__ = ["NFTTrainer", "draw_times", "noise_images", "train", "main"]

IMAGES = ("image_1", "image_2")


def draw_times(cfg: NFTConfig, sampling: IRGSamplingConfig, n: int, rng: np.random.Generator) -> torch.Tensor:
    """`n` forward-process times `[n]` float32: points of the sampling grid (`grid`) or uniform, within
    [min_t, max_t]."""
    if cfg.timesteps == "grid":
        grid = timestep_grid(sampling.steps, sampling.timestep_shift)[:-1]  # t_0 = 1 ... t_{N-1}; not t_N = 0
        t = grid[torch.as_tensor(rng.integers(0, grid.numel(), size=n))]
    else:
        t = torch.as_tensor(rng.uniform(cfg.min_t, cfg.max_t, size=n), dtype=torch.float32)
    return t.clamp(cfg.min_t, cfg.max_t)


def noise_images(
    batch: TrajectoryBatch,
    trained: dict[str, torch.Tensor],
    cfg: NFTConfig,
    rng: np.random.Generator,
) -> NoisedBatch:
    """Noised copies `x_t = (1 - t) x0 + t eps` of every image marked in `trained` (name -> bool `[N]`);
    `cfg.timesteps_per_image` copies each, times from `draw_times`, noise from a generator seeded by `rng`."""
    sampling = IRGSamplingConfig.from_dict(batch.settings)
    gen = torch.Generator().manual_seed(int(rng.integers(0, 2**31 - 1)))
    M = cfg.timesteps_per_image
    out: NoisedBatch = [{} for _ in range(len(batch))]
    for i, tr in enumerate(batch.trajectories):
        for name in IMAGES:
            if name not in trained or not bool(trained[name][i]):
                continue
            x0 = tr.segment(name).latents.float()
            t = draw_times(cfg, sampling, M, rng)
            eps = torch.randn((M, *x0.shape), generator=gen)
            tt = t[:, None, None]
            out[i][name] = NoisedLatents(x_t=(1.0 - tt) * x0 + tt * eps, t=t)
    return out


class NFTTrainer(GRPOTrainer):
    """Builds everything from an `NFTRecipe`; `run()` trains and returns the per-step history."""

    name = "nft"

    def __init__(self, recipe: NFTRecipe):
        super().__init__(recipe)

    @staticmethod
    def needs_reference(recipe) -> bool:
        return recipe.grpo.kl_coef > 0 or recipe.nft.kl_coef > 0

    def _trained_images(self, batch: TrajectoryBatch, credit: CreditAdvantages) -> dict[str, torch.Tensor]:
        """Which images count, per name `[N]`: a valid round advantage, and for image_2 a continued trajectory."""
        continued = ~batch.stopped().reshape(-1)
        out = {}
        for name in IMAGES:
            _, valid = credit.for_segment(name)
            out[name] = valid.reshape(-1).bool() & (continued if name == "image_2" else True)
        return out

    def _image_terms(
        self,
        sub: TrajectoryBatch,
        noised: NoisedBatch,
        vel: list[dict[str, torch.Tensor]],
        olds: list[dict[str, torch.Tensor]],
        ref_vel: list[dict[str, torch.Tensor]] | None,
        credit: CreditAdvantages,
    ) -> tuple[torch.Tensor | None, dict[str, float]]:
        """Mean NFT loss (+ velocity KL) over every noised copy of the micro-batch; None when it has none."""
        n_cfg = self.recipe.nft
        losses, stats = [], {"positive": 0.0, "negative": 0.0, "r": 0.0, "old_mse": 0.0, "kl": 0.0}
        count = 0
        for name in IMAGES:
            adv, _ = credit.for_segment(name)
            adv = adv.reshape(-1)
            for i, per in enumerate(vel):
                if name not in per:
                    continue
                v, given = per[name], noised[i][name]
                M = v.shape[0]
                x0 = sub[i].segment(name).latents.float().to(v.device)[None].expand(M, -1, -1)
                r = reward_probability(adv[i].to(v.device).expand(M), n_cfg.adv_clip_max)
                loss, parts = nft_image_loss(
                    v,
                    olds[i][name],
                    given.x_t.to(v.device),
                    x0,
                    given.t.to(v.device),
                    r,
                    n_cfg.beta,
                    n_cfg.adaptive_weight,
                )
                if ref_vel is not None and n_cfg.kl_coef > 0:
                    kl = velocity_kl(v, ref_vel[i][name])
                    loss = loss + n_cfg.kl_coef * kl
                    stats["kl"] += float(kl.detach().sum())
                losses.append(loss)
                stats["positive"] += float(parts["positive"].sum())
                stats["negative"] += float(parts["negative"].sum())
                stats["old_mse"] += float(parts["old_mse"].sum())
                stats["r"] += float(r.sum())
                count += M
        if not losses:
            return None, {}
        total = torch.cat(losses).mean()
        out = {f"nft/{k}": v / count for k, v in stats.items()}
        out.update({"nft/loss": float(total.detach()), "nft/num_images": float(count)})
        return total, out

    def update(self, batch: TrajectoryBatch, rewards: TrajectoryRewards) -> dict[str, float]:
        s, g, n_cfg = self.setup, self.recipe.grpo, self.recipe.nft
        credit = self.advantages(batch, rewards)
        stats = {f"adv/{k}": float(v) for k, v in credit.stats.items()}
        n = len(batch)
        trained = self._trained_images(batch, credit) if n_cfg.loss_weight > 0 else {}
        noised = noise_images(batch, trained, n_cfg, s.prompts.rng)
        sched, any_valid = self._schedule(n, credit)
        refs: list[tuple[RescoreOutput, list] | None] = [None] * len(sched)
        if self.needs_reference(self.recipe):
            with s.reference() as ref_model, torch.no_grad():
                refs = [
                    rescore_noised(ref_model, batch.subset(idx), [noised[k] for k in idx]) for idx, _ in sched
                ]
        olds: list[tuple] = [()] * len(sched)
        for u in range(g.inner_updates):
            s.opt.zero_grad(set_to_none=True)
            agg: dict[str, float] = {}
            dev = {"text": 0.0, "flow": 0.0}
            for j, ((idx, weight), ref) in enumerate(zip(sched, refs, strict=True)):
                sub, sub_noised = batch.subset(idx), [noised[k] for k in idx]
                out, vel = rescore_noised(s.view, sub, sub_noised)
                sub_credit = credit.select(idx)
                if u == 0:
                    # the sampling policy's velocities: this pass runs on the pre-update weights
                    olds[j] = ([{k: v.detach() for k, v in per.items()} for per in vel], None)
                    if weight > 0:
                        d = ratio_deviation(sub, out)
                        dev = {k: max(dev[k], d[k]) for k in dev}
                text = (
                    text_terms(sub, out, sub_credit, ref[0] if ref else None)
                    if g.text_loss_weight > 0
                    else None
                )
                if text is not None and g.old_logprobs == "trainer":
                    if u == 0:
                        olds[j] = (olds[j][0], text.logp.detach())
                    text.old_logp = olds[j][1]
                image, ls = self._image_terms(
                    sub, sub_noised, vel, olds[j][0], ref[1] if ref else None, sub_credit
                )
                loss = None
                if text is not None:  # GRPO's text objective, weighted by grpo.text_loss_weight
                    loss, t_stats = grpo_loss(text, None, g)
                    ls.update(t_stats)
                if image is not None:
                    loss = n_cfg.loss_weight * image if loss is None else loss + n_cfg.loss_weight * image
                if loss is None:  # nothing counts in this micro-batch: a zero loss keeps ranks in lockstep
                    loss = _zero_loss(out, s.module)
                ls["loss"] = float(loss.detach())
                s.backward(loss * (weight * len(idx) / n), boundary=j == len(sched) - 1)
                for k, v in ls.items():
                    agg[k] = agg.get(k, 0.0) + weight * v * len(idx) / n
            self._end_inner_update(u, dev, agg, any_valid, stats)
        return self._final_stats(stats, any_valid)


def _zero_loss(out: RescoreOutput, module: torch.nn.Module) -> torch.Tensor:
    """A zero connected to the graph (the think log-probs, else every trainable parameter)."""
    for lp in out.text_logprobs.values():
        return lp.sum() * 0.0
    return sum(p.sum() for p in module.parameters() if p.requires_grad) * 0.0


def train(recipe: NFTRecipe) -> list[dict]:
    return NFTTrainer(recipe).run()


def main(argv: list[str] | None = None) -> None:
    from irg_rl.config import parse_cli

    recipe = parse_cli(
        NFTRecipe, argv, description="DiffusionNFT (images) + GRPO (thinks) over IRG trajectories."
    )
    history = train(recipe)
    if history:
        print(json.dumps({"final_step": history[-1]["step"], "final_loss": history[-1].get("loss")}))
