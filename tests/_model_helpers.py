"""Shared helpers for tests/test_model_*.py: a tiny random BAGEL model and special-token ids."""

from __future__ import annotations

import torch

from irg_rl.models import BagelModel, SpecialTokenIds
from irg_rl.models.configs import micro

SPECIAL = SpecialTokenIds(im_start=1, im_end=2, vision_start=3, vision_end=4, pad=0)


def random_model(seed: int = 0, dtype: torch.dtype = torch.float32) -> BagelModel:
    """micro config with every weight random (llm2vae too, and the gen expert distinct from und)."""
    torch.manual_seed(seed)
    model = BagelModel(micro(), SPECIAL)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
            elif p.dim() > 1 or "bias" in name:
                p.normal_(0, 0.2)
    return model.to(dtype).eval()
