"""The parts of the GRPO and DPO loops that do not depend on the loss: sampling with rewards overlapped,
held-out evaluation, logging (wandb + history), trajectory saving, checkpoints. Subclasses implement `update`."""

from __future__ import annotations

import json
import logging
import time

from irg_rl.config import to_container, to_yaml
from irg_rl.inference.trajectory import TrajectoryBatch
from irg_rl.rollout.pool import merge_chunks
from irg_rl.rollout.rewards import RewardScorer, TrajectoryRewards
from irg_rl.train import checkpointing as ckpt
from irg_rl.train.resume import truncate_history, truncate_jsonl
from irg_rl.train.rl.outputs import (
    image_grid,
    reward_metrics,
    save_rollout,
    text_metrics,
    verdict_metrics,
    wandb_table,
)
from irg_rl.train.rl.prompt_stream import heldout_prompts
from irg_rl.train.rl.setup import RLSetup
from irg_rl.train.tracking import init_wandb, wandb_mode

__all__ = ["RLLoop"]

log = logging.getLogger(__name__)


class RLLoop:
    """generate -> reward -> (subclass: log-probs -> advantage/pairs -> update) -> sync weights, per step."""

    name = "rl"

    def __init__(self, recipe, group_size: int, needs_reference: bool):
        self.recipe = recipe
        self.G = group_size
        self.setup = RLSetup(recipe, needs_reference)
        self.scorer = RewardScorer(recipe.rewards, recipe.rollout.reward_placement)
        self.heldout = heldout_prompts(recipe)
        self.eval_history: list[dict] = []
        self.wandb_run = None
        if self.setup.resume_path is not None:
            self._resume_records()

    def _resume_records(self) -> None:
        """Logs agree with the resumed step: metrics.jsonl rows and eval.json entries past it are dropped (a run
        that died after its last checkpoint wrote them), the eval history before it is kept."""
        s = self.setup
        self.eval_history = truncate_history(s.out / "eval.json", s.step)
        if s.acc.is_main_process:
            dropped = truncate_jsonl(s.out / "metrics.jsonl", s.step)
            if dropped:
                s.acc.print(f"resume: dropped {dropped} metrics.jsonl row(s) past step {s.step}")

    # ---- sampling + rewards ------------------------------------------------------------------------------

    def window_start(self) -> int | None:
        """SDE window start for this step, drawn by the driver so every worker uses the same one."""
        s = self.recipe.sampling
        if s.sde_window_start is not None or s.sde_window_size <= 0:
            return s.sde_window_start
        return self.setup.prompts.window_start(self.window_max_start())

    def window_max_start(self) -> int:
        """Latest SDE window start (sampling.sde_window_max_start, or steps - window size when unset)."""
        s = self.recipe.sampling
        hi = s.sde_window_max_start if s.sde_window_max_start is not None else s.steps - s.sde_window_size
        return max(hi, 0)

    def collect(
        self, metas: list[dict], G: int, seed: int, mode: str
    ) -> tuple[TrajectoryBatch, TrajectoryRewards, dict]:
        """Sample and score; each finished chunk is scored while the rest are sampled (rollout.overlap_rewards)."""
        req = self.setup.rollouts.request(
            metas, G, seed, mode, self.window_start() if mode == "sde" else None
        )
        t0 = time.perf_counter()
        chunks, futures = {}, {}
        for c, b in self.setup.rollouts.sample_iter(req):
            chunks[c] = b
            if self.recipe.rollout.overlap_rewards:
                futures[c] = self.scorer.submit(b)
        t1 = time.perf_counter()
        batch = merge_chunks(req, chunks)
        if futures:
            rewards = TrajectoryRewards.concat([futures[c].result() for c in sorted(chunks)])
        else:
            rewards = self.scorer.score(batch)
        t2 = time.perf_counter()
        return batch, rewards, {"time/rollout_s": t1 - t0, "time/reward_wait_s": t2 - t1}

    def evaluate(self) -> dict[str, float]:
        """Held-out prompts, one deterministic (Euler) trajectory each, scored by every reward and metric."""
        if not self.heldout:
            return {}
        batch, rw, _ = self.collect(self.heldout, 1, self.recipe.eval.seed, "euler")
        stats = reward_metrics(rw, self.recipe.rewards.correct_threshold, prefix="eval/")
        stats.update(
            verdict_metrics(batch, rw, self.recipe.rewards.correct_threshold, prefix="eval/verdict/")
        )
        stats["eval/num_prompts"] = float(len(self.heldout))
        self.eval_history.append({"step": self.setup.step, **stats})
        if self.setup.acc.is_main_process:
            ckpt.write_json_atomic(self.setup.out / "eval.json", self.eval_history)
        return stats

    # ---- one step -----------------------------------------------------------------------------------------

    def update(self, batch: TrajectoryBatch, rewards: TrajectoryRewards) -> dict[str, float]:
        raise NotImplementedError

    def train_step(self) -> dict[str, float]:
        s, r = self.setup, self.recipe
        t0 = time.perf_counter()
        metas = s.prompts.draw(r.prompts.per_step)
        batch, rewards, stats = self.collect(metas, self.G, s.prompts.step_seed(), "sde")
        t1 = time.perf_counter()
        stats.update(self.update(batch, rewards))
        t2 = time.perf_counter()
        s.scheduler.step()
        s.step += 1
        stats["time/sync_s"] = s.rollouts.sync_weights()
        t3 = time.perf_counter()
        stats.update(reward_metrics(rewards, r.rewards.correct_threshold))
        stats.update(text_metrics(batch))
        stats.update(verdict_metrics(batch, rewards, r.rewards.correct_threshold))
        n = len(batch)
        stats.update({
            "step": s.step,
            "time/update_s": t2 - t1,
            "time/step_s": t3 - t0,
            "time/reward_compute_s": rewards.seconds,
            "trajectories": float(n),
            "trajectories_per_s": n / max(t3 - t0, 1e-9),
            "rollout/worker_restarts": float(s.rollouts.restarts),
            "lr": float(s.scheduler.get_last_lr()[0]),
        })  # fmt: skip
        self._outputs(batch, rewards, stats)
        return stats

    def _outputs(self, batch: TrajectoryBatch, rewards: TrajectoryRewards, stats: dict) -> None:
        s, t = self.setup, self.recipe.train
        if not s.acc.is_main_process:
            return
        if t.save_trajectories_every and s.step % t.save_trajectories_every == 0:
            save_rollout(s.out / "rollouts", s.step, batch, rewards)
        if t.image_grid_every and s.step % t.image_grid_every == 0:
            grids = s.out / "grids"
            grids.mkdir(exist_ok=True)
            image_grid(batch, t.image_grid_rows).save(grids / f"step-{s.step:06d}.png")
            if self.wandb_run is not None:
                self.wandb_run.log({"samples": wandb_table(batch, rewards, t.image_grid_rows)}, step=s.step)

    # ---- the loop -----------------------------------------------------------------------------------------

    def run_loop(self) -> list[dict]:
        s, r, t = self.setup, self.recipe, self.recipe.train
        acc = s.acc
        mode = wandb_mode(r.log.wandb_mode)
        if acc.is_main_process and mode != "disabled":  # as in SFT: no wandb import when logging is off
            name = r.log.run_name or s.out.name
            self.wandb_run = init_wandb(s.out, r.log.project, name, to_container(r), mode)
            if s.resume_path is not None:
                self.wandb_run.summary["resumed_from_step"] = s.step
        if acc.is_main_process:
            (s.out / "recipe.yaml").write_text(to_yaml(r))
        acc.print(
            f"{self.name}: {s.trainable:,} / {s.total:,} parameters trainable; weights from {s.origin}; "
            f"rollout engine {r.rollout.engine}; {acc.num_processes} trainer process(es)"
        )
        if r.eval.at_start and s.step == 0:
            self._log(self.evaluate())
        bar = None
        if acc.is_main_process and r.log.progress_bar:
            from tqdm.auto import tqdm

            bar = tqdm(total=t.max_steps, initial=s.step, desc=self.name, dynamic_ncols=True)
        ran = 0
        while s.step < t.max_steps:
            stats = self.train_step()
            ran += 1
            s.history.append({k: v for k, v in stats.items() if isinstance(v, (int, float))})
            done = s.step >= t.max_steps
            if r.eval.every and (s.step % r.eval.every == 0) and not done:
                stats.update(self.evaluate())
            if done:
                stats.update(self.evaluate())
            if s.step % t.log_every == 0 or done:
                self._log(stats)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(
                    loss=f"{stats.get('loss', float('nan')):.4f}",
                    r2=f"{stats.get('reward/image_2_mean', 0):.3f}",
                )
            if done or (t.save_every and s.step % t.save_every == 0):
                s.save()
            if t.stop_after_steps and ran >= t.stop_after_steps:
                break
        if bar is not None:
            bar.close()
        if acc.is_main_process:
            ckpt.write_json_atomic(s.out / "history.json", s.history)
            if self.wandb_run is not None:
                self.wandb_run.finish()
        return s.history

    def _log(self, stats: dict) -> None:
        if not stats or not self.setup.acc.is_main_process:
            return
        if self.wandb_run is not None:
            self.wandb_run.log({k: v for k, v in stats.items() if k != "step"}, step=self.setup.step)
        with open(self.setup.out / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps({"step": self.setup.step, **stats}, default=float) + "\n")

    def close(self) -> None:
        self.scorer.shutdown()
        self.setup.shutdown()
