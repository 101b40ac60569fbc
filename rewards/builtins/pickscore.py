"""`pickscore`: PickScore (a CLIP-H/14 fine-tune) through transformers `CLIPModel` from a local directory."""

from __future__ import annotations

from typing import Any

import torch

from rewards.contract import Reward, RewardBatch, RewardOutput

__all__ = ["PickScoreReward"]


class PickScoreReward(Reward):
    """PickScore: logit_scale * cos(image, prompt) with transformers CLIPModel; divided by `divisor` (26, as Flow-GRPO)."""

    name = "pickscore"

    def __init__(
        self,
        path: str | None = None,
        processor_path: str | None = None,
        divisor: float = 26.0,
        device: str = "cpu",
        chunk: int = 16,
    ) -> None:
        super().__init__()
        if path is None:
            raise ValueError(
                "pickscore reward: set path to a local PickScore_v1 directory (CLIPModel save_pretrained)"
            )
        self.path = path
        # the processor (tokenizer + image processor) directory; PickScore uses CLIP-H's, often saved beside the model
        self.processor_path = processor_path or path
        self.divisor = divisor
        self.device = device
        self.chunk = chunk

    def load(self) -> Any:
        from transformers import AutoProcessor, CLIPModel

        processor = AutoProcessor.from_pretrained(self.processor_path)
        model = CLIPModel.from_pretrained(self.path).to(self.device).eval()
        return processor, model

    def score(self, batch: RewardBatch) -> RewardOutput:
        processor, model = self.model
        out = []
        with torch.no_grad():
            for i in range(0, len(batch), self.chunk):
                inputs = processor(
                    text=batch.prompts[i : i + self.chunk],
                    images=[im.convert("RGB") for im in batch.images[i : i + self.chunk]],
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=77,
                ).to(self.device)
                res = model(**inputs)
                cos = (res.image_embeds * res.text_embeds).sum(-1)
                out.append((model.logit_scale.exp() * cos).float().cpu())
        raw = torch.cat(out)
        return RewardOutput(scores=raw / self.divisor, details=[{"raw": round(float(r), 4)} for r in raw])
