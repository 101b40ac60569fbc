"""RL logging and outputs: reward metrics (per reward, per turn, improvement / regression rates), trajectories
saved to disk (torch batch for offline DPO, PNG images, one JSON record per trajectory), image grids for wandb."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from irg_rl.inference.trajectory import TrajectoryBatch
from irg_rl.inference.verdict import verdict_confusion
from irg_rl.rollout.rewards import TrajectoryRewards

__all__ = [
    "reward_metrics",
    "verdict_metrics",
    "text_metrics",
    "save_rollout",
    "load_rollout",
    "image_grid",
    "wandb_table",
]


def _mean_std(x: torch.Tensor) -> tuple[float, float]:
    v = x[~torch.isnan(x)].float()
    if v.numel() == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(unbiased=False)) if v.numel() > 1 else 0.0


def reward_metrics(rw: TrajectoryRewards, threshold: float, prefix: str = "reward/") -> dict[str, float]:
    """Means/stds of every component and reward, turn-1 vs turn-2, improvement and regression rates."""
    out: dict[str, float] = {}
    for name, x in {**rw.components, **rw.per_reward}.items():
        m, s = _mean_std(x)
        out[f"{prefix}{name}_mean"], out[f"{prefix}{name}_std"] = m, s
    r1, r2 = rw.components["image_1"], rw.components["image_2"]
    ok = ~(torch.isnan(r1) | torch.isnan(r2))
    if ok.any():
        a, b = r1[ok], r2[ok]
        out[f"{prefix}improvement_rate"] = float((b > a).float().mean())
        out[f"{prefix}regression_rate"] = float((b < a).float().mean())
        right = a >= threshold
        out[f"{prefix}regression_rate_when_right"] = (
            float((b[right] < a[right]).float().mean()) if right.any() else 0.0
        )
        out[f"{prefix}fixed_rate_when_wrong"] = (
            float((b[~right] >= threshold).float().mean()) if (~right).any() else 0.0
        )
    for label in sorted({k[len("metric/") : -2] for k in rw.per_reward if k.startswith("metric/")}):
        m1, m2 = rw.per_reward[f"metric/{label}_1"], rw.per_reward[f"metric/{label}_2"]
        okm = ~(torch.isnan(m1) | torch.isnan(m2))
        if okm.any():
            out[f"{prefix}{label}_improvement_rate"] = float((m2[okm] > m1[okm]).float().mean())
            out[f"{prefix}{label}_regression_rate"] = float((m2[okm] < m1[okm]).float().mean())
    return out


def verdict_metrics(
    batch: TrajectoryBatch, rw: TrajectoryRewards, threshold: float, prefix: str = "verdict/"
) -> dict[str, float]:
    """Self-verification: the verdict confusion against `image_1 reward >= threshold`, and the stopped share.

    Empty when the batch carries no verdicts (sampling.keep_pattern not set)."""
    verdicts = batch.verdicts()
    if all(v is None for v in verdicts):
        return {}
    r1 = rw.components["image_1"].tolist()
    right = [None if math.isnan(r) else r >= threshold for r in r1]
    conf = verdict_confusion(verdicts, right)
    out = {f"{prefix}{k}": float("nan") if v is None else float(v) for k, v in conf.items()}
    out[f"{prefix}stopped_share"] = float(batch.stopped().float().mean())
    return out


def text_metrics(batch: TrajectoryBatch) -> dict[str, float]:
    out = {}
    for name in ("think_1", "think_2"):
        segs = [t.segment(name) for t in batch.trajectories if t.has(name)]
        if segs:
            out[f"text/{name}_tokens_mean"] = float(np.mean([s.token_ids.numel() for s in segs]))
            out[f"text/{name}_truncated_share"] = float(np.mean([s.stop_reason == "length" for s in segs]))
    return out


def _num(x: torch.Tensor) -> float | None:
    v = float(x)
    return None if math.isnan(v) else v


def save_rollout(root: Path, step: int, batch: TrajectoryBatch, rw: TrajectoryRewards) -> Path:
    """Write `<root>/step-N.pt` (the batch + rewards), `<root>/step-N/*.png` and `<root>/step-N.jsonl`."""
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:06d}"
    batch.stats = {**batch.stats}
    path = batch.save(root / f"{name}.pt")
    torch.save({"components": rw.components, "per_reward": rw.per_reward}, root / f"{name}.rewards.pt")
    img_dir = root / name
    img_dir.mkdir(exist_ok=True)
    with open(root / f"{name}.jsonl", "w") as fh:
        for i, t in enumerate(batch.trajectories):
            files = {}
            for seg in t.segments:
                if seg.kind == "image":
                    f = img_dir / f"p{t.prompt_index:03d}_s{t.sample_index:02d}_{seg.name}.png"
                    Image.fromarray(seg.image.numpy().astype(np.uint8)).save(f)
                    files[seg.name] = str(f.relative_to(root))
            rec = {
                "step": step,
                "prompt": t.prompt,
                "metadata": t.metadata,
                "prompt_index": t.prompt_index,
                "sample_index": t.sample_index,
                "seed": t.seed,
                "texts": {s.name: s.text for s in t.segments if s.kind == "text"},
                "images": files,
                "rewards": {k: _num(v[i]) for k, v in {**rw.components, **rw.per_reward}.items()},
                "details": rw.details[i],
            }
            fh.write(json.dumps(rec, default=str) + "\n")
    return path


def load_rollout(path: Path) -> tuple[TrajectoryBatch, dict[str, torch.Tensor]]:
    """A saved batch and its reward components (`step-N.pt` beside `step-N.rewards.pt`)."""
    batch = TrajectoryBatch.load(path)
    rpath = path.with_name(path.name[: -len(".pt")] + ".rewards.pt")
    if not rpath.is_file():
        raise FileNotFoundError(f"{rpath}: rewards of saved rollout {path} are missing")
    return batch, torch.load(rpath, weights_only=True)["components"]


def image_grid(batch: TrajectoryBatch, rows: int, scale: int = 4) -> Image.Image:
    """image_1 | image_2 side by side for the first `rows` trajectories, upscaled (nearest) for viewing."""
    tiles = []
    for t in batch.trajectories[:rows]:
        a, b = t.segment("image_1").image.numpy(), t.segment("image_2").image.numpy()
        gap = np.full((a.shape[0], 2, 3), 255, dtype=np.uint8)
        tiles.append(np.concatenate([a, gap, b], axis=1).astype(np.uint8))
        tiles.append(np.full((2, tiles[-1].shape[1], 3), 255, dtype=np.uint8))
    grid = Image.fromarray(np.concatenate(tiles, axis=0))
    return grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)


def wandb_table(batch: TrajectoryBatch, rw: TrajectoryRewards, rows: int, scale: int = 4):
    """wandb.Table: prompt | image_1 | image_2 | reflection (think_2) | rewards."""
    import wandb

    table = wandb.Table(columns=["prompt", "image_1", "image_2", "reflection", "rewards"])
    for i, t in enumerate(batch.trajectories[:rows]):
        ims = []
        for name in ("image_1", "image_2"):
            im = Image.fromarray(t.segment(name).image.numpy().astype(np.uint8))
            ims.append(wandb.Image(im.resize((im.width * scale, im.height * scale), Image.NEAREST)))
        rewards = {k: _num(v[i]) for k, v in rw.components.items()}
        think_2 = t.segment("think_2").text if t.has("think_2") else ""
        table.add_data(t.prompt, ims[0], ims[1], think_2, json.dumps(rewards))
    return table
