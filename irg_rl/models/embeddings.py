"""Timestep embedder, fixed 2-D sin-cos position tables, and flattened 2-D position ids (BAGEL conventions).

Facts followed: the timestep features are [cos | sin] of t * 10000^(-k/half) over 256 dims, fed to
Linear-SiLU-Linear; t is the flow time in [0, 1] (0 = clean), not scaled. The 2-D table for a side-S grid has
row `r * S + c` = [sincos_1d(c) | sincos_1d(r)], each 1-D half being [sin | cos] with omega_k = 10000^(-k/(D/4)).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def timestep_features(t: torch.Tensor, dim: int = 256, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of t [N] -> [N, dim] (fp32), layout [cos | sin]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class TimestepEmbedder(nn.Module):
    """t [N] -> [N, hidden] through `mlp` = Linear(256, hidden), SiLU, Linear(hidden, hidden)."""

    def __init__(self, hidden_size: int, frequency_dim: int = 256):
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(
            nn.Linear(frequency_dim, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size)
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        feats = timestep_features(t, self.frequency_dim)
        return self.mlp(feats.to(self.mlp[0].weight.dtype))


def _sincos_1d(dim: int, pos: np.ndarray) -> np.ndarray:
    omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    out = np.einsum("m,d->md", pos.reshape(-1).astype(np.float64), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d_table(dim: int, side: int, scale: float = 1.0) -> torch.Tensor:
    """Fixed 2-D sin-cos table [side*side, dim] (fp32); row r*side+c encodes column c then row r.

    `scale` multiplies the grid coordinates first (BAGEL: 1). With few cells per side only the top few
    frequencies (<= 1 rad per cell) tell cells apart; a larger scale spreads neighbouring cells further apart.
    """
    if dim % 4:
        raise ValueError(f"2-D sin-cos embedding needs dim divisible by 4, got {dim}")
    rows, cols = np.meshgrid(
        np.arange(side, dtype=np.float32), np.arange(side, dtype=np.float32), indexing="ij"
    )
    rows, cols = rows * scale, cols * scale
    emb = np.concatenate([_sincos_1d(dim // 2, cols), _sincos_1d(dim // 2, rows)], axis=1)
    return torch.from_numpy(emb).float()


class PositionEmbedding(nn.Module):
    """Lookup into a fixed 2-D sin-cos table held in `pos_embed` [side**2, dim] (saved, but rebuilt if absent)."""

    def __init__(self, side: int, dim: int, scale: float = 1.0):
        super().__init__()
        self.side, self.dim, self.scale = side, dim, scale
        self.register_buffer("pos_embed", sincos_2d_table(dim, side, scale), persistent=True)

    def reset(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        """Recompute the table (a checkpoint without it, or a model built on the meta device); device and dtype
        default to the buffer's own (CPU for a meta buffer)."""
        dev = torch.device(device) if device is not None else self.pos_embed.device
        if dev.type == "meta":
            dev = torch.device("cpu")
        table = sincos_2d_table(self.dim, self.side, self.scale)
        self.pos_embed = table.to(device=dev, dtype=dtype or self.pos_embed.dtype)

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        return self.pos_embed[position_ids]


def flattened_position_ids(h: int, w: int, max_per_side: int, interpolate: bool = False) -> torch.Tensor:
    """Position ids [h*w] of an h x w token grid in a max_per_side-wide table (row-major, `r * max + c`).

    extrapolate (default): raw coordinates; interpolate: fractional coordinates bucketed onto the table.
    """
    if not interpolate:
        if h > max_per_side or w > max_per_side:
            raise ValueError(f"grid {h}x{w} exceeds the position table side {max_per_side}; raise max size")
        return (torch.arange(h)[:, None] * max_per_side + torch.arange(w)).flatten()
    bounds = torch.arange(1 / max_per_side, 1.0, 1 / max_per_side)
    rh = torch.bucketize(torch.arange(0, 1 - 1e-6, 1 / h), bounds, right=True)
    rw = torch.bucketize(torch.arange(0, 1 - 1e-6, 1 / w), bounds, right=True)
    return (rh[:, None] * max_per_side + rw).flatten()
