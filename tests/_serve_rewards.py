"""A reward for the Ray Serve tests, importable by Serve replicas (tests/ is put on their PYTHONPATH)."""

from __future__ import annotations

import torch

from rewards.contract import Reward, RewardOutput


class Picky(Reward):
    """Scores the prompt length; rejects (ValueError) a sample whose metadata lacks 'ok'."""

    name = "picky"

    def score(self, batch):
        for i, m in enumerate(batch.metadata):
            if not m.get("ok"):
                raise ValueError(f"sample {i}: metadata needs 'ok'")
        return RewardOutput(
            scores=torch.tensor([float(len(p)) for p in batch.prompts]),
            details=[{"n": len(p)} for p in batch.prompts],
        )


def picky() -> Picky:
    return Picky()
