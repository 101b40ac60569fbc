"""The VAE interface the model and engine use: images <-> latents <-> LLM tokens.

Images are uint8 [B, H, W, 3] (or float [B, 3, H, W] in [-1, 1]); latents are [B, C, h, w] with
h = H / downsample. `to_tokens` patchifies latents into rows [B, h/p * w/p, p*p*C] for the LLM (BAGEL p = 2).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..patchify import patchify, unpatchify


def images_to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float [B, 3, H, W] in [-1, 1]; float input is assumed to be that already."""
    if images.dtype == torch.uint8:
        return images.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"float images must be [B, 3, H, W] in [-1, 1], got shape {tuple(images.shape)}")
    return images


# how decoded floats become uint8 pixels: "round" (nearest; the default) or "truncate" (as BAGEL's and IRG's
# inference code does: `(x * 0.5 + 0.5).clamp(0, 1) * 255` cast to uint8)
ROUNDINGS = ("round", "truncate")


def float_to_images(x: torch.Tensor, rounding: str = "round") -> torch.Tensor:
    """float [B, 3, H, W] in [-1, 1] -> uint8 [B, H, W, 3], rounded to the nearest value or truncated."""
    if rounding == "truncate":
        return ((x * 0.5 + 0.5).clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1)
    if rounding != "round":
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)


class LatentCodec(torch.nn.Module):
    """Base class: subclasses set `kind`, `latent_channels`, `downsample` and implement encode/decode/save."""

    kind: str = "base"
    latent_channels: int
    downsample: int

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images (uint8 [B, H, W, 3] or float [B, 3, H, W]) -> latents [B, C, H/d, W/d]."""
        raise NotImplementedError

    def decode(self, latents: torch.Tensor, rounding: str = "round") -> torch.Tensor:
        """latents [B, C, h, w] -> uint8 images [B, h*d, w*d, 3] (`rounding`: see float_to_images)."""
        raise NotImplementedError

    def save(self, file: str | Path) -> None:
        """Write `ae.safetensors`."""
        raise NotImplementedError

    @classmethod
    def fresh(cls, cfg, options: dict | None = None, data_root: str | Path | None = None) -> LatentCodec:
        """A new codec for a model config `cfg` (BagelConfig) before any checkpoint exists: what a random preset
        or an SFT run from scratch uses. `options` are the task's options (engine, evaluation); `data_root` is the
        SFT data folder, for a codec described by its task's data. Kinds that cannot be built fresh say so."""
        raise NotImplementedError(
            f"a fresh '{cls.kind}' VAE cannot be built: start from a checkpoint directory that holds "
            f"ae.safetensors (model.source=PATH)"
        )

    def to_tokens(self, latents: torch.Tensor, p: int) -> torch.Tensor:
        """[B, C, h, w] -> [B, (h/p)*(w/p), p*p*C]."""
        return torch.stack([patchify(lat, p) for lat in latents])

    def from_tokens(self, tokens: torch.Tensor, grid_hw: tuple[int, int], p: int) -> torch.Tensor:
        """[B, gh*gw, p*p*C] -> [B, C, gh*p, gw*p]."""
        gh, gw = grid_hw
        return torch.stack([unpatchify(t, gh, gw, p, self.latent_channels) for t in tokens])
