"""`clip_score`: image-prompt cosine similarity under an open_clip model loaded from a local checkpoint."""

from __future__ import annotations

from typing import Any

import torch

from rewards.contract import Reward, RewardBatch, RewardOutput

__all__ = ["ClipScoreReward", "open_clip_cosine"]

FORMULAS = ("cos", "clipscore", "cos100")


def open_clip_cosine(
    model: Any, preprocess: Any, tokenizer: Any, batch: RewardBatch, device: str, chunk: int
) -> torch.Tensor:
    """Cosine similarity of each image with its prompt. Returns [B] float32."""
    out = []
    with torch.no_grad():
        for i in range(0, len(batch), chunk):
            imgs = torch.stack([preprocess(im.convert("RGB")) for im in batch.images[i : i + chunk]]).to(
                device
            )
            text = tokenizer(batch.prompts[i : i + chunk]).to(device)
            fi = torch.nn.functional.normalize(model.encode_image(imgs).float(), dim=-1)
            ft = torch.nn.functional.normalize(model.encode_text(text).float(), dim=-1)
            out.append((fi * ft).sum(-1).cpu())
    return torch.cat(out)


class ClipScoreReward(Reward):
    """CLIPScore (open_clip): cosine of image and prompt embeddings; formula cos | clipscore (2.5*max(cos,0)) | cos100."""

    name = "clip_score"

    def __init__(
        self,
        checkpoint: str | None = None,
        model_name: str = "ViT-L-14",
        model_config: str | None = None,
        formula: str = "cos",
        device: str = "cpu",
        chunk: int = 32,
    ) -> None:
        super().__init__()
        if formula not in FORMULAS:
            raise ValueError(f"{self.name}: formula='{formula}' must be one of {FORMULAS}")
        self.checkpoint = checkpoint
        self.model_name = model_name
        self.model_config = model_config
        self.formula = formula
        self.device = device
        self.chunk = chunk

    def load(self) -> Any:
        from rewards.builtins.open_clip_model import load_open_clip

        return load_open_clip(self.model_name, self.checkpoint, self.device, self.model_config)

    def score(self, batch: RewardBatch) -> RewardOutput:
        model, preprocess, tokenizer = self.model
        cos = open_clip_cosine(model, preprocess, tokenizer, batch, self.device, self.chunk)
        if self.formula == "clipscore":
            scores = 2.5 * cos.clamp_min(0.0)
        elif self.formula == "cos100":
            scores = 100.0 * cos
        else:
            scores = cos
        return RewardOutput(scores=scores, details=[{"cos": round(float(c), 5)} for c in cos])
