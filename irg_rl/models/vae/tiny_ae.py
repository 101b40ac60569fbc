"""A tiny conv autoencoder (8x down) trainable on ShapesWorld in a minute or two: the alternative latent."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .base import LatentCodec, float_to_images, images_to_float


class TinyAutoencoder(LatentCodec):
    kind = "tiny"

    def __init__(self, latent_channels: int = 8, width: int = 32):
        super().__init__()
        self.latent_channels, self.downsample, self.width = latent_channels, 8, width
        w = width
        self.encoder = nn.Sequential(
            nn.Conv2d(3, w, 3, 2, 1),
            nn.SiLU(),
            nn.Conv2d(w, 2 * w, 3, 2, 1),
            nn.SiLU(),
            nn.Conv2d(2 * w, 2 * w, 3, 2, 1),
            nn.SiLU(),
            nn.Conv2d(2 * w, latent_channels, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, 2 * w, 1),
            nn.SiLU(),
            nn.ConvTranspose2d(2 * w, 2 * w, 4, 2, 1),
            nn.SiLU(),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1),
            nn.SiLU(),
            nn.ConvTranspose2d(w, 3, 4, 2, 1),
        )

    def encode_float(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images_to_float(images).to(self.encoder[0].weight))

    def decode(self, latents: torch.Tensor, rounding: str = "round") -> torch.Tensor:
        return float_to_images(self.decoder(latents.to(self.decoder[0].weight)).float(), rounding)

    def save(self, file: str | Path) -> None:
        sd = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        meta = {
            "kind": "tiny",
            "config": json.dumps({"latent_channels": self.latent_channels, "width": self.width}),
        }
        save_file(sd, str(file), metadata=meta)

    @classmethod
    def load(cls, file: str | Path, device="cpu") -> TinyAutoencoder:
        with safe_open(str(file), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("kind") != "tiny":
            raise ValueError(f"{file}: not a tiny-AE file (metadata kind={meta.get('kind')!r})")
        model = cls(**json.loads(meta["config"]))
        model.load_state_dict(load_file(str(file), device=str(device)))
        return model.eval()


def train_tiny_ae(
    images: torch.Tensor,
    latent_channels: int = 8,
    steps: int = 1500,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    max_seconds: float | None = None,
) -> tuple[TinyAutoencoder, dict]:
    """Train on uint8 images [N, H, W, 3] (H, W multiples of 8) with MSE; latents are normalised afterwards to
    unit variance by a fixed rescale folded into the first decoder conv. Returns (model, stats)."""
    torch.manual_seed(seed)
    model = TinyAutoencoder(latent_channels)
    x_all = images_to_float(images)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    start, loss, done = time.time(), torch.tensor(0.0), 0
    for _ in range(steps):
        done += 1
        idx = torch.randint(0, x_all.shape[0], (batch_size,))
        x = x_all[idx]
        loss = F.mse_loss(model.decoder(model.encoder(x)), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if max_seconds is not None and time.time() - start > max_seconds:
            break
    with torch.no_grad():
        std = model.encoder(x_all[:512]).std().clamp(min=1e-6)
        last_enc, first_dec = model.encoder[-1], model.decoder[0]
        last_enc.weight /= std
        last_enc.bias /= std
        first_dec.weight *= std
    return model.eval(), {"steps": done, "final_mse": float(loss.detach()), "seconds": time.time() - start}
