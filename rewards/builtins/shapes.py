"""`shapes`: the exact ShapesWorld scorer (irg_rl.tasks.shapes.score_image) as a reward, strict or partial."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from PIL import Image

from rewards.contract import Reward, RewardBatch, RewardOutput

__all__ = ["ShapesReward"]


class ShapesReward(Reward):
    """ShapesWorld exact scorer: GenEval rules on detected shapes; mode strict (0/1) or partial (clause credit)."""

    name = "shapes"

    def __init__(self, mode: str = "partial", world: dict[str, Any] | None = None) -> None:
        super().__init__()
        if mode not in ("strict", "partial"):
            raise ValueError(f"shapes reward: mode='{mode}' must be 'strict' or 'partial'")
        self.mode = mode
        # ShapesWorldConfig fields (image_size, shapes, colors, layout, ...); defaults match the embedded task
        self.world = dict(world or {})

    def load(self) -> Any:
        from irg_rl.tasks.shapes import ShapesWorldConfig

        return ShapesWorldConfig(**self.world)

    def score(self, batch: RewardBatch) -> RewardOutput:
        from irg_rl.tasks.shapes import score_image

        cfg = self.model
        scores, details = [], []
        for i, (img, meta) in enumerate(zip(batch.images, batch.metadata, strict=True)):
            if not meta.get("include"):
                scores.append(math.nan)
                details.append({"na": "metadata has no GenEval 'include' clauses (not a ShapesWorld prompt)"})
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
