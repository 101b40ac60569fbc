"""The FLUX autoencoder (8x down, 16 channels) in its original `ae.safetensors` key layout, own implementation.

Latents are `scale * (z - shift)` with scale 0.3611, shift 0.1159; `encode` returns the posterior mean
(deterministic) unless `sample=True`, which draws from the posterior like the official BAGEL/FLUX code. Architecture: LDM-style conv encoder/decoder with
GroupNorm(32), swish, ResNet blocks, one single-head attention block in the middle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from .base import LatentCodec, float_to_images, images_to_float


@dataclass
class FluxAEConfig:
    # base channel width
    ch: int = 128
    # width multiplier per resolution level (one 2x downsample between levels)
    ch_mult: list[int] = field(default_factory=lambda: [1, 2, 4, 4])
    # ResNet blocks per level (decoder uses one more)
    num_res_blocks: int = 2
    # latent channels
    z_channels: int = 16
    # latent scale
    scale_factor: float = 0.3611
    # latent shift
    shift_factor: float = 0.1159
    # GroupNorm groups
    groups: int = 32


def _norm(c: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, c, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int, groups: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin, groups), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = _norm(cout, groups), nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class AttnBlock(nn.Module):
    def __init__(self, c: int, groups: int):
        super().__init__()
        self.norm = _norm(c, groups)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n = self.norm(x)

        def flat(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, 1, c, h * w).transpose(2, 3)

        out = F.scaled_dot_product_attention(flat(self.q(n)), flat(self.k(n)), flat(self.v(n)))
        return x + self.proj_out(out.transpose(2, 3).reshape(b, c, h, w))


class _Level(nn.Module):
    pass


class Encoder(nn.Module):
    def __init__(self, cfg: FluxAEConfig):
        super().__init__()
        g, mult = cfg.groups, cfg.ch_mult
        self.conv_in = nn.Conv2d(3, cfg.ch, 3, padding=1)
        self.down = nn.ModuleList()
        cin = cfg.ch
        for i, m in enumerate(mult):
            level = _Level()
            level.block = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                level.block.append(ResnetBlock(cin, cfg.ch * m, g))
                cin = cfg.ch * m
            if i != len(mult) - 1:
                level.downsample = _Level()
                level.downsample.conv = nn.Conv2d(cin, cin, 3, stride=2)
            self.down.append(level)
        self.mid = _Level()
        self.mid.block_1, self.mid.attn_1, self.mid.block_2 = (
            ResnetBlock(cin, cin, g),
            AttnBlock(cin, g),
            ResnetBlock(cin, cin, g),
        )
        self.norm_out = _norm(cin, g)
        self.conv_out = nn.Conv2d(cin, 2 * cfg.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            for block in level.block:
                h = block(h)
            if hasattr(level, "downsample"):
                h = level.downsample.conv(F.pad(h, (0, 1, 0, 1)))
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, cfg: FluxAEConfig):
        super().__init__()
        g, mult = cfg.groups, cfg.ch_mult
        cin = cfg.ch * mult[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, cin, 3, padding=1)
        self.mid = _Level()
        self.mid.block_1, self.mid.attn_1, self.mid.block_2 = (
            ResnetBlock(cin, cin, g),
            AttnBlock(cin, g),
            ResnetBlock(cin, cin, g),
        )
        levels = [None] * len(mult)
        for i in reversed(range(len(mult))):
            level = _Level()
            level.block = nn.ModuleList()
            for _ in range(cfg.num_res_blocks + 1):
                level.block.append(ResnetBlock(cin, cfg.ch * mult[i], g))
                cin = cfg.ch * mult[i]
            if i != 0:
                level.upsample = _Level()
                level.upsample.conv = nn.Conv2d(cin, cin, 3, padding=1)
            levels[i] = level
        self.up = nn.ModuleList(levels)
        self.norm_out = _norm(cin, g)
        self.conv_out = nn.Conv2d(cin, 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(self.conv_in(z))))
        for level in reversed(self.up):
            for block in level.block:
                h = block(h)
            if hasattr(level, "upsample"):
                h = level.upsample.conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


class FluxAutoencoder(LatentCodec):
    kind = "flux"

    def __init__(self, cfg: FluxAEConfig | None = None):
        super().__init__()
        self.cfg = cfg or FluxAEConfig()
        self.encoder, self.decoder = Encoder(self.cfg), Decoder(self.cfg)
        self.latent_channels = self.cfg.z_channels
        self.downsample = 2 ** (len(self.cfg.ch_mult) - 1)

    def encode(
        self, images: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """images -> scaled latents [B, 16, H/8, W/8]: the posterior mean, or with `sample=True` a draw
        `mean + exp(logvar / 2) * eps` as the official code does (eps from `generator`)."""
        x = images_to_float(images).to(self.encoder.conv_in.weight)
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        z = mean
        if sample:
            eps = torch.randn(mean.shape, generator=generator, dtype=torch.float32, device=mean.device)
            z = mean + torch.exp(0.5 * logvar) * eps.to(mean.dtype)
        return self.cfg.scale_factor * (z - self.cfg.shift_factor)

    def decode(self, latents: torch.Tensor, rounding: str = "round") -> torch.Tensor:
        z = latents.to(self.decoder.conv_in.weight) / self.cfg.scale_factor + self.cfg.shift_factor
        return float_to_images(self.decoder(z).float(), rounding)

    def save(self, file: str | Path) -> None:
        import json

        sd = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(sd, str(file), metadata={"kind": "flux", "config": json.dumps(asdict(self.cfg))})

    @classmethod
    def load(
        cls,
        file: str | Path,
        device="cpu",
        dtype: torch.dtype = torch.float32,
        cfg: FluxAEConfig | None = None,
    ):
        """Load `ae.safetensors` (original FLUX keys). Without metadata the FLUX.1 config is assumed."""
        import json

        from safetensors import safe_open

        with safe_open(str(file), framework="pt") as f:
            meta = f.metadata() or {}
        if cfg is None:
            cfg = FluxAEConfig(**json.loads(meta["config"])) if "config" in meta else FluxAEConfig()
        with torch.device("meta"):
            model = cls(cfg)
        sd = load_file(str(file), device=str(device))
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        missing = sorted(set(expected) - set(sd))
        unexpected = sorted(set(sd) - set(expected))
        bad = sorted(
            f"{k} (file {list(sd[k].shape)}, model {list(s)})"
            for k, s in expected.items()
            if k in sd and tuple(sd[k].shape) != s
        )
        if missing or unexpected or bad:
            raise ValueError(
                f"{file}: FLUX AE mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}, mis-shaped {bad[:5]}"
            )
        model.load_state_dict({k: v.to(dtype) for k, v in sd.items()}, assign=True)
        return model.eval()
