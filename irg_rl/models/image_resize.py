"""BAGEL's image preparation sizes (pure functions): the official training limits for the VAE and the ViT.

The official data path resizes every image before it reaches a tokenizer (`MaxLongEdgeMinShortEdgeResize` in
BAGEL's data transforms), with PIL bicubic on uint8 pixels:
- scale = min(max_size / long side, 1), then at least min_size / short side (small images are enlarged);
- each side -> round(side * scale), then to the nearest multiple of `stride` (never below `stride`);
- if the result has more than `max_pixels` pixels, both sides are scaled again by max_pixels / (w * h) (the
  ratio of areas applied to the sides, as the official code does) and snapped again;
- if the long side still exceeds max_size, it is scaled down to it and snapped again.

Limits: VAE images long side <= 1024, short side >= 512, multiple of 16 (the VAE's 8x downsample times the 2x2
latent patch); ViT images long side <= 980, short side >= 378 in training (224 at inference), multiple of 14 (the
SigLIP patch); max_pixels 2048 x 2048.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

__all__ = ["ResizeLimits", "VAE_TRAIN", "VIT_TRAIN", "VIT_INFERENCE", "official_size", "resize_official"]


@dataclass(frozen=True)
class ResizeLimits:
    """Bounds of one image-preparation path."""

    # longest side after resizing (pixels)
    max_size: int
    # shortest side after resizing (pixels; smaller images are enlarged)
    min_size: int
    # both sides become multiples of this
    stride: int
    # upper bound on width x height
    max_pixels: int = 2048 * 2048


VAE_TRAIN = ResizeLimits(1024, 512, 16)
VIT_TRAIN = ResizeLimits(980, 378, 14)
VIT_INFERENCE = ResizeLimits(980, 224, 14)


def _snap(value: float, stride: int) -> int:
    return max(stride, int(round(value / stride)) * stride)


def _scaled(width: int, height: int, scale: float, stride: int) -> tuple[int, int]:
    return _snap(round(width * scale), stride), _snap(round(height * scale), stride)


def official_size(width: int, height: int, limits: ResizeLimits) -> tuple[int, int]:
    """(width, height) an image of this size is resized to (see the module docstring)."""
    if width < 1 or height < 1:
        raise ValueError(f"official_size: image size must be positive, got {width}x{height}")
    scale = min(limits.max_size / max(width, height), 1.0)
    scale = max(scale, limits.min_size / min(width, height))
    w, h = _scaled(width, height, scale, limits.stride)
    if w * h > limits.max_pixels:
        w, h = _scaled(w, h, limits.max_pixels / (w * h), limits.stride)
    if max(w, h) > limits.max_size:
        w, h = _scaled(w, h, limits.max_size / max(w, h), limits.stride)
    return w, h


def resize_official(image: Image.Image, limits: ResizeLimits) -> Image.Image:
    """The image resized to `official_size` with PIL bicubic (unchanged, same object, when already that size)."""
    size = official_size(*image.size, limits)
    return image if size == image.size else image.resize(size, Image.Resampling.BICUBIC)
