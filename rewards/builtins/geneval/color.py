"""Colour attribution for detections by zero-shot CLIP (open_clip) on masked crops, as GenEval does: three prompt
templates averaged per colour, crops of the image composited on #999 through the object's mask when there is one."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from rewards.builtins.geneval.rules import Detection

__all__ = ["GENEVAL_COLORS", "COLOR_TEMPLATES", "MASK_FILL", "ClipColorClassifier", "masked_crop"]

# GenEval's colour vocabulary
GENEVAL_COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")


# GenEval's three colour prompts, averaged per colour (normalised, mean, renormalised: a zero-shot classifier)
COLOR_TEMPLATES = ("a photo of a {c} {cls}", "a photo of a {c}-colored {cls}", "a photo of a {c} object")
# GenEval fills outside an object's mask with this colour before cropping
MASK_FILL = "#999"


def masked_crop(image: Image.Image, det: Detection, fill: str = MASK_FILL) -> Image.Image:
    """GenEval's crop: with a mask, the image composited over a `fill` canvas through the mask; without one, the
    image itself; then cropped to the box (PIL rounds the box; parts outside the image are black)."""
    rgb = image.convert("RGB")
    if det.mask is not None:
        mask = np.asarray(det.mask).astype(bool)
        if mask.shape != (rgb.height, rgb.width):
            raise ValueError(f"mask of shape {mask.shape} for an image of {rgb.height}x{rgb.width}")
        rgb = Image.composite(
            rgb, Image.new("RGB", rgb.size, fill), Image.fromarray(mask.astype(np.uint8) * 255)
        )
    return rgb.crop(tuple(float(v) for v in det.box[:4]))


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
        return {**self.__dict__, "_model": None, "_classifiers": {}}

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
                out.append(self.colors[int((self._classifier(d.label) @ feat).argmax())])
        return out

    def _classifier(self, cls: str):
        """[n_colours, D] class embeddings for objects of class `cls`: each colour's three templates encoded,
        normalised, averaged and renormalised (cached per class)."""
        import torch

        cache = self.__dict__.setdefault("_classifiers", {})
        if cls not in cache:
            model, _, tokenizer = self._model
            rows = []
            with torch.no_grad():
                for c in self.colors:
                    text = tokenizer([t.format(c=c, cls=cls) for t in COLOR_TEMPLATES]).to(self.device)
                    emb = torch.nn.functional.normalize(model.encode_text(text), dim=-1).mean(0)
                    rows.append(torch.nn.functional.normalize(emb, dim=-1))
            cache[cls] = torch.stack(rows)
        return cache[cls]
