"""Scoring trajectories: the composite image reward on image_1 and image_2, the reflection rewards, metrics.

One `CompositeReward` (the recipe's `rewards.image` list, each component in process, on its own Ray actor or
over HTTP as its spec says) scores image_1 and image_2 of every trajectory in one batched call. From those two
scores come the reflection rewards, with the definitions of `rewards.builtins.reflection` (without scoring the
images again): `improvement = r2 - r1`, `no_regression = -(r1 - r2)+` where image_1 was already right
(`r1 >= correct_threshold`, NaN elsewhere); `format` is the `reflection_format` reward of think_2; `verdict` is
the agreement of the engine's keep / revise verdict with `r1 >= correct_threshold` (NaN where no verdict is
read); `reading` (when `rewards.reading` lists rewards) scores how think_2 reads image_1. These are the
components `irg_rl.train.rl.advantages.assign_credit` combines.

Every component is wrapped so that an exception (a Ray actor's too) is re-raised as `RewardError` naming the
reward: a failing reward stops the step, it never becomes a silent 0. `RewardScorer.submit` runs the scoring in
a thread and returns a future, so the driver scores finished rollout chunks while the next ones are sampled.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from irg_rl.inference.trajectory import TrajectoryBatch
from irg_rl.inference.verdict import verdict_agreement
from rewards import CompositeReward, Reward, RewardBatch, RewardError, RewardOutput, RewardSpec, build_reward
from rewards.reflection_terms import improvement, no_regression

__all__ = ["RewardsConfig", "TrajectoryRewards", "RewardScorer", "reflection_scores", "reward_batch"]


def _default_image() -> list[RewardSpec]:
    return [RewardSpec(name="shapes", args={"mode": "partial"})]


def _default_metrics() -> list[RewardSpec]:
    return [RewardSpec(name="shapes", alias="strict", args={"mode": "strict"})]


@dataclass
class RewardsConfig:
    """The `rewards:` section of an RL recipe."""

    # image rewards combined (weighted sum) into one score per image; scored on image_1 and image_2
    image: list[RewardSpec] = field(default_factory=_default_image)
    # z-score each image-reward component over the batch before weighting
    zscore: bool = False
    # rescale the weighted sum where some components are NaN (not applicable) so samples stay comparable
    renormalize: bool = False
    # an image_1 scoring at least this counts as already right (no-regression and verdict rewards, regression rate)
    correct_threshold: float = 1.0
    # verdict reward for catching a wrong image_1 (a revise verdict there) relative to 1 for keeping a right one:
    # > 1 trades some keeps of right images for more revisions of wrong ones (a kept wrong image is never fixed)
    verdict_wrong_weight: float = 1.0
    # rewards on how think_2 reads image_1, combined (weighted sum) into the `reading` credit component, e.g.
    # shapes_reading (1 where the reflection names the objects the scorer detects in image_1); [] = no component
    reading: list[RewardSpec] = field(default_factory=list)
    # keyword arguments of the reflection_format reward on think_2 ({} = its defaults)
    format_args: dict[str, Any] = field(default_factory=dict)
    # rewards logged on both images but never trained on (e.g. ShapesWorld strict accuracy)
    metrics: list[RewardSpec] = field(default_factory=_default_metrics)
    # threads scoring in the background (overlapped with rollout)
    threads: int = 1


class _Named(Reward):
    """Runs a reward and re-raises any failure as RewardError naming it."""

    def __init__(self, label: str, inner: Reward) -> None:
        super().__init__()
        self.name, self.inner = label, inner

    def score(self, batch: RewardBatch) -> RewardOutput:
        try:
            out = self.inner(batch)
        except RewardError:
            raise
        except Exception as err:
            first = batch.prompts[0] if len(batch) else ""
            raise RewardError(
                f"reward '{self.name}' failed on a batch of {len(batch)} samples (first prompt {first!r}): "
                f"{type(err).__name__}: {err}"
            ) from err
        if len(out) != len(batch):
            raise RewardError(f"reward '{self.name}' returned {len(out)} scores for {len(batch)} samples")
        return out


def _to_pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(image.detach().cpu().numpy().astype(np.uint8)))


def reward_batch(batch: TrajectoryBatch) -> RewardBatch:
    """The reward contract's view of a batch of two-round trajectories (final image = image_2)."""
    trajs = batch.trajectories
    two = all(t.has("image_2") for t in trajs)
    final = "image_2" if two else "image_1"
    return RewardBatch(
        prompts=[t.prompt for t in trajs],
        images=[_to_pil(t.segment(final).image) for t in trajs],
        images_1=[_to_pil(t.segment("image_1").image) for t in trajs] if two else None,
        think_1=[t.segment("think_1").text for t in trajs] if all(t.has("think_1") for t in trajs) else None,
        think_2=[t.segment("think_2").text for t in trajs] if all(t.has("think_2") for t in trajs) else None,
        metadata=[dict(t.metadata) for t in trajs],
    )


def reflection_scores(r1: torch.Tensor, r2: torch.Tensor, threshold: float) -> dict[str, torch.Tensor]:
    """improvement = r2 - r1; no_regression = -(r1 - r2)+ where r1 >= threshold else NaN. `[B]` -> `[B]` each."""
    return {"improvement": improvement(r1, r2), "no_regression": no_regression(r1, r2, threshold)}


@dataclass
class TrajectoryRewards:
    """Rewards of a batch of trajectories (all tensors `[N]`, float32, NaN = not applicable)."""

    # credit components: image_1, image_2, improvement, no_regression, format, verdict
    components: dict[str, torch.Tensor]
    # per-reward breakdown for logging: "image_1/<label>", "image_2/<label>", "metric/<label>_1", ...
    per_reward: dict[str, torch.Tensor]
    # one dict per trajectory: every reward's details (JSON-friendly)
    details: list[dict]
    # seconds spent scoring (summed over chunks)
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.details)

    @staticmethod
    def concat(parts: list[TrajectoryRewards]) -> TrajectoryRewards:
        return TrajectoryRewards(
            {k: torch.cat([p.components[k] for p in parts]) for k in parts[0].components},
            {k: torch.cat([p.per_reward[k] for p in parts]) for k in parts[0].per_reward},
            [d for p in parts for d in p.details],
            sum(p.seconds for p in parts),
        )

    def select(self, index: list[int]) -> TrajectoryRewards:
        idx = torch.tensor(index, dtype=torch.long)
        return TrajectoryRewards(
            {k: v[idx] for k, v in self.components.items()},
            {k: v[idx] for k, v in self.per_reward.items()},
            [self.details[i] for i in index],
        )


class RewardScorer:
    """Scores `TrajectoryBatch`es; `submit` returns a future (scoring runs in a background thread)."""

    def __init__(self, cfg: RewardsConfig, placement: str = "local"):
        if not cfg.image:
            raise ValueError("rewards.image is empty: list at least one image reward (e.g. name: shapes)")
        self.cfg = cfg

        def build(specs: list[RewardSpec], where: str) -> list[tuple[str, Reward, float]]:
            parts = []
            for i, raw in enumerate(specs):
                spec = RewardSpec.coerce(raw, where=f"{where}[{i}]")
                if placement == "ray" and spec.serve == "local":
                    spec = RewardSpec(**{**spec.__dict__, "serve": "ray"})
                parts.append((spec.label, _Named(spec.label, build_reward(spec)), float(spec.weight)))
            return parts

        self.image = CompositeReward(
            components=build(list(cfg.image), "rewards.image"), zscore=cfg.zscore, renormalize=cfg.renormalize
        )
        self.metrics = build(list(cfg.metrics), "rewards.metrics")
        reading = build(list(cfg.reading), "rewards.reading")
        self.reading = CompositeReward(components=reading) if reading else None
        self.format = _Named(
            "reflection_format",
            build_reward(RewardSpec(name="reflection_format", args=dict(cfg.format_args))),
        )
        self._pool = ThreadPoolExecutor(max_workers=max(1, cfg.threads), thread_name_prefix="reward")

    def score(self, batch: TrajectoryBatch) -> TrajectoryRewards:
        t0 = time.perf_counter()
        rb = reward_batch(batch)
        n = len(rb)
        if rb.images_1 is None:
            raise ValueError(
                "RL rewards need two-round trajectories (sampling.rounds: 2): image_1 and image_2"
            )
        both = RewardBatch.concat([rb.replace(images=rb.images_1), rb])
        out = self.image(both)
        r1, r2 = out.scores[:n], out.scores[n:]
        comps = {"image_1": r1, "image_2": r2, **reflection_scores(r1, r2, self.cfg.correct_threshold)}
        per: dict[str, torch.Tensor] = {}
        # self-verification: the engine's parsed verdict against the image_1 reward (NaN where not read)
        comps["verdict"] = verdict_agreement(
            batch.verdicts(), r1, self.cfg.correct_threshold, self.cfg.verdict_wrong_weight
        )
        fmt = self.format(rb)
        comps["format"] = fmt.scores
        for label, s in out.components.items():
            per[f"image_1/{label}"], per[f"image_2/{label}"] = s[:n], s[n:]
        details = [
            {"image_1": out.details[i], "image_2": out.details[n + i], "format": fmt.details[i]}
            for i in range(n)
        ]
        if self.reading is not None:
            read = self.reading(rb)
            comps["reading"] = read.scores
            for label, sc in read.components.items():
                per[f"reading/{label}"] = sc
            for d, r in zip(details, read.details, strict=True):
                d["reading"] = r
        for label, reward, _ in self.metrics:
            m = reward(both)
            per[f"metric/{label}_1"], per[f"metric/{label}_2"] = m.scores[:n], m.scores[n:]
        return TrajectoryRewards(comps, per, details, time.perf_counter() - t0)

    def submit(self, batch: TrajectoryBatch) -> Future:
        return self._pool.submit(self.score, batch)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        reading = self.reading.components if self.reading is not None else []
        for _, reward, _ in [*self.image.components, *self.metrics, *reading]:
            inner = getattr(reward, "inner", None)
            if hasattr(inner, "shutdown"):
                inner.shutdown()
