"""`hps`: Human Preference Score v2/v2.1 (open_clip ViT-H-14 with the HPS checkpoint, `state_dict` key)."""

from __future__ import annotations

from rewards.builtins.clip_score import ClipScoreReward, open_clip_cosine
from rewards.contract import RewardBatch, RewardOutput

__all__ = ["HPSReward"]


class HPSReward(ClipScoreReward):
    """HPSv2/2.1: cosine of image and prompt under open_clip ViT-H-14 loaded with the HPS checkpoint."""

    name = "hps"

    def __init__(
        self,
        checkpoint: str | None = None,
        model_name: str = "ViT-H-14",
        model_config: str | None = None,
        device: str = "cpu",
        chunk: int = 16,
    ) -> None:
        if checkpoint is None:
            raise ValueError(
                "hps reward: set checkpoint to a local HPS_v2_compressed.pt / HPS_v2.1_compressed.pt"
            )
        super().__init__(checkpoint, model_name, model_config, "cos", device, chunk)

    def score(self, batch: RewardBatch) -> RewardOutput:
        model, preprocess, tokenizer = self.model
        cos = open_clip_cosine(model, preprocess, tokenizer, batch, self.device, self.chunk)
        return RewardOutput(scores=cos, details=[{} for _ in cos])
