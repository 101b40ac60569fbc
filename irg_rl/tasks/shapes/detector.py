"""A GenEval detector backend for ShapesWorld images: the exact ShapesWorld detector behind GenEval's interface.

Lets the `geneval` reward (GenEval's rules over a pluggable detector) score GenEval-format prompt files written
over the ShapesWorld vocabulary, with no model download:
`reward: {name: geneval, args: {detector: irg_rl.tasks.shapes.detector:ShapesWorldDetector}}`.
Detections carry their colour (so no CLIP colour classifier is needed) and confidence 1.0.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from rewards.builtins.geneval.rules import Detection

__all__ = ["ShapesWorldDetector"]


class ShapesWorldDetector:
    """`detect(images, classes)` with `irg_rl.tasks.shapes.detect_objects` (world: ShapesWorldConfig fields)."""

    def __init__(self, world: dict | None = None) -> None:
        self.world = dict(world or {})

    def detect(self, images: list[Image.Image], classes: list[list[str]]) -> list[list[Detection]]:
        from irg_rl.tasks.shapes import ShapesWorldConfig, detect_objects

        cfg = ShapesWorldConfig(**self.world)
        out = []
        for img, names in zip(images, classes, strict=True):
            img = img.convert("RGB")
            if img.size != (cfg.image_size, cfg.image_size):
                img = img.resize((cfg.image_size, cfg.image_size), Image.NEAREST)
            found = detect_objects(np.asarray(img, dtype=np.uint8), cfg)
            wanted = set(names)
            out.append(
                [
                    Detection(label=d.shape, score=1.0, box=tuple(float(v) for v in d.box), color=d.color)
                    for d in found
                    if d.shape in wanted
                ]
            )
        return out
