"""A random-weight `BagelModel` for benchmarks, initialised directly on its device in its dtype."""

from __future__ import annotations

import torch

from irg_rl.models import BagelConfig, BagelModel

__all__ = ["random_model"]


def random_model(
    cfg: BagelConfig, special, device: torch.device, dtype: torch.dtype, seed: int = 0
) -> BagelModel:
    """Every weight random, including the velocity head (else images are trivially constant); built on `device`
    in `dtype` because a CPU init of billions of parameters takes minutes."""
    torch.manual_seed(seed)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = BagelModel(cfg, special)
            with torch.no_grad():
                torch.nn.init.normal_(model.llm2vae.weight, std=0.02)
    finally:
        torch.set_default_dtype(old)
    # tables built from numpy (the sin-cos position buffers) stay on the CPU under torch.device(); move them
    return model.to(device)
