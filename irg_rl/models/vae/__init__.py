"""VAEs behind one interface (`base.LatentCodec`): FLUX autoencoder, grid codec, tiny conv AE."""

from __future__ import annotations

from pathlib import Path

from .base import LatentCodec, float_to_images, images_to_float


def load_vae(path: str | Path, cfg, device="cpu") -> LatentCodec:
    """The VAE of checkpoint directory `path` (file ae.safetensors), of kind `cfg.vae_kind`."""
    file = Path(path) / "ae.safetensors"
    if cfg.vae_kind == "flux":
        from .flux_ae import FluxAutoencoder

        return FluxAutoencoder.load(file, device=device)
    if cfg.vae_kind == "grid":
        from .grid_codec import GridCodec

        return GridCodec.load(file)
    if cfg.vae_kind == "tiny":
        from .tiny_ae import TinyAutoencoder

        return TinyAutoencoder.load(file, device=device)
    raise ValueError(f"{path}/config.json: unknown vae_kind {cfg.vae_kind!r}; use flux | grid | tiny")


__all__ = ["LatentCodec", "float_to_images", "images_to_float", "load_vae"]
