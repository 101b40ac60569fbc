"""Colour attribution for detections by zero-shot CLIP (open_clip) on masked crops, as GenEval does."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from rewards.builtins.geneval.rules import Detection

__all__ = ["GENEVAL_COLORS", "ClipColorClassifier", "masked_crop"]

# GenEval's colour vocabulary
GENEVAL_COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")


def masked_crop(image: Image.Image, det: Detection, fill: int = 128) -> Image.Image:
    """The detection's box crop; pixels outside its mask (if any) are set to grey so only the object is judged."""
    x0, y0, x1, y1 = (int(round(v)) for v in det.box)
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(max(x1, x0 + 1), image.width), min(max(y1, y0 + 1), image.height)
    arr = np.asarray(image.convert("RGB")).copy()
    if det.mask is not None:
        arr[~det.mask.astype(bool)] = fill
    return Image.fromarray(arr[y0:y1, x0:x1])


class ClipColorClassifier:
    """Pick each detection's colour by open_clip similarity to "a photo of a {color} {class}" prompts."""

    def __init__(
        self,
        model_name: str = "ViT-L-14",
        checkpoint: str | None = None,
        colors: tuple[str, ...] | list[str] = GENEVAL_COLORS,
        device: str = "cpu",
        model_config: str | None = None,
    ) -> None:
        self.model_name = model_name
        self.checkpoint = checkpoint
        self.colors = tuple(colors)
        self.device = device
        self.model_config = model_config
        self._model: Any = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_model": None}

    def classify(self, image: Image.Image, dets: list[Detection]) -> list[str]:
        import torch

        from rewards.builtins.open_clip_model import load_open_clip

        if not dets:
            return []
        if self._model is None:
            self._model = load_open_clip(self.model_name, self.checkpoint, self.device, self.model_config)
        model, preprocess, tokenizer = self._model
        crops = torch.stack([preprocess(masked_crop(image, d)) for d in dets]).to(self.device)
        out = []
        with torch.no_grad():
            img = torch.nn.functional.normalize(model.encode_image(crops), dim=-1)
            for d, feat in zip(dets, img, strict=True):
                text = tokenizer([f"a photo of a {c} {d.label}" for c in self.colors]).to(self.device)
                txt = torch.nn.functional.normalize(model.encode_text(text), dim=-1)
                out.append(self.colors[int((txt @ feat).argmax())])
        return out
