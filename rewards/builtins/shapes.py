"""`shapes`: the exact ShapesWorld scorer (irg_rl.tasks.shapes.score_image) as a reward, strict or partial;
`shapes_reading`: whether a reflection names the objects the scorer detects in image_1."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import torch
from PIL import Image

from rewards.contract import Reward, RewardBatch, RewardOutput

__all__ = ["ShapesReward", "ShapesReadingReward"]


NOT_SHAPES = {"na": "metadata has no GenEval 'include' clauses (not a ShapesWorld prompt)"}


class _ShapesWorldReward(Reward):
    """A reward whose model is a ShapesWorldConfig (`world`: its fields; defaults match the embedded task)."""

    def __init__(self, world: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.world = dict(world or {})

    def load(self) -> Any:
        from irg_rl.tasks.shapes import ShapesWorldConfig

        return ShapesWorldConfig(**self.world)


class ShapesReward(_ShapesWorldReward):
    """ShapesWorld exact scorer: GenEval rules on detected shapes; mode strict (0/1) or partial (clause credit)."""

    name = "shapes"

    def __init__(self, mode: str = "partial", world: dict[str, Any] | None = None) -> None:
        super().__init__(world)
        if mode not in ("strict", "partial"):
            raise ValueError(f"shapes reward: mode='{mode}' must be 'strict' or 'partial'")
        self.mode = mode

    def score(self, batch: RewardBatch) -> RewardOutput:
        from irg_rl.tasks.shapes import score_image

        cfg = self.model
        scores, details = [], []
        for i, (img, meta) in enumerate(zip(batch.images, batch.metadata, strict=True)):
            if not meta.get("include"):
                scores.append(math.nan)
                details.append(dict(NOT_SHAPES))
                continue
            arr = _as_array(img, cfg.image_size)
            try:
                res = score_image(arr, meta, cfg)
            except (KeyError, ValueError, TypeError) as e:
                raise ValueError(
                    f"shapes reward: sample {i} (prompt {batch.prompts[i]!r}): bad metadata: {e}"
                ) from e
            scores.append(float(res.strict if self.mode == "strict" else res.partial))
            details.append(res.as_dict())
        return RewardOutput(scores=torch.tensor(scores, dtype=torch.float32), details=details)


def _as_array(img: Image.Image, size: int) -> np.ndarray:
    """uint8 [size, size, 3]; larger renders (e.g. upscaled for viewing) are brought back with nearest sampling."""
    img = img.convert("RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.NEAREST)
    return np.asarray(img, dtype=np.uint8)


class ShapesReadingReward(_ShapesWorldReward):
    """ShapesWorld reading of image_1: 1 where the reflection (think_2) names in its "I see ..." sentence exactly the
    objects the exact scorer detects in image_1 (colour, shape and count, any order), else 0; NaN where the sample
    has no reflection or first image, or its metadata is not a ShapesWorld prompt. A reward on the reflection's
    perception: the verdict can only be right for the right reason when image_1 is read right."""

    name = "shapes_reading"

    def score(self, batch: RewardBatch) -> RewardOutput:
        from irg_rl.tasks.shapes import described_objects, detect_objects, reflection_description

        n = len(batch.prompts)
        if batch.images_1 is None or batch.think_2 is None:
            return RewardOutput(
                scores=torch.full((n,), math.nan),
                details=[{"na": "needs two-round samples (image_1 and think_2)"}] * n,
            )
        cfg = self.model
        scores, details = [], []
        for img, think_2, meta in zip(batch.images_1, batch.think_2, batch.metadata, strict=True):
            if not meta.get("include"):
                scores.append(math.nan)
                details.append(dict(NOT_SHAPES))
                continue
            objects = detect_objects(_as_array(img, cfg.image_size), cfg)
            said = described_objects(reflection_description(think_2))
            drawn = Counter((o.color, o.shape) for o in objects)
            scores.append(float(said is not None and said == drawn))
            details.append(
                {
                    "said": None if said is None else {f"{c} {s}": k for (c, s), k in sorted(said.items())},
                    "drawn": {f"{c} {s}": k for (c, s), k in sorted(drawn.items())},
                }
            )
        return RewardOutput(scores=torch.tensor(scores, dtype=torch.float32), details=details)
