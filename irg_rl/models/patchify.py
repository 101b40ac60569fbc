"""Images/latents [C, H, W] <-> token rows [h*w, p*p*C], row-major over the grid, each row ordered (py, px, c)."""

from __future__ import annotations

import torch


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """[C, H, W] -> [(H/p)*(W/p), p*p*C]; H and W must be multiples of p."""
    c, h, w = x.shape
    if h % p or w % p:
        raise ValueError(f"image/latent of size {h}x{w} is not a multiple of the patch size {p}")
    x = x.reshape(c, h // p, p, w // p, p)
    return torch.einsum("chpwq->hwpqc", x).reshape(-1, p * p * c)


def unpatchify(tokens: torch.Tensor, h: int, w: int, p: int, c: int) -> torch.Tensor:
    """[h*w, p*p*C] -> [C, h*p, w*p] (inverse of `patchify` for an h x w token grid)."""
    x = tokens.reshape(h, w, p, p, c)
    return torch.einsum("hwpqc->chpwq", x).reshape(c, h * p, w * p)
