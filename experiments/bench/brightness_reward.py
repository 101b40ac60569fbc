"""`mean_brightness`: an image reward for speed benchmarks of random-weight models only.

A random model's images fail every task reward (all-zero groups are dropped, so no update would run); mean pixel
brightness differs between samples, so every group has a signal and the benchmark times a real update. It is
referred to by import path (`experiments.bench.brightness_reward:MeanBrightnessReward`) and measures nothing useful.
"""

from __future__ import annotations

import numpy as np
import torch

from rewards.contract import Reward, RewardBatch, RewardOutput

__all__ = ["MeanBrightnessReward"]


class MeanBrightnessReward(Reward):
    """Mean of the RGB pixels in [0, 1]."""

    name = "mean_brightness"

    def load(self) -> None:
        return None

    def score(self, batch: RewardBatch) -> RewardOutput:
        scores = [
            float(np.asarray(img.convert("RGB"), dtype=np.float32).mean() / 255.0) for img in batch.images
        ]
        return RewardOutput(scores=torch.tensor(scores), details=[{} for _ in scores])
