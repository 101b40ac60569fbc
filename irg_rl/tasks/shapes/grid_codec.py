"""A fixed structured codec, exact on grid-laid ShapesWorld scenes: one latent token per grid cell.

Each cell class (0 = empty, 1 + shape * n_colours + colour) has one fixed continuous code of `dim` dims (random
Gaussian from a fixed seed, rows scaled to RMS 1, so latents look like unit-variance data to flow matching).
encode: classify every cell with the ShapesWorld detector, emit its code; decode: nearest code per cell, then
render the scene. Latents are [B, dim, grid, grid]; downsample = image_size / grid (8 for 32 px, 4x4 grid).

The task provides it to the model layer as the `grid` VAE kind through the `irg_rl.vae` entry point (pyproject),
so loading a ShapesWorld checkpoint needs no import of the task by the models.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from irg_rl.models.vae.base import LatentCodec


def make_codes(num_classes: int, dim: int, seed: int = 0) -> torch.Tensor:
    """[num_classes, dim] fixed codes with RMS 1 per row; the best-separated of 64 random draws."""
    best, best_gap = None, -1.0
    g = torch.Generator().manual_seed(seed)
    for _ in range(64):
        c = torch.randn(num_classes, dim, generator=g)
        c = c / c.pow(2).mean(1, keepdim=True).sqrt()
        d = torch.cdist(c, c) + torch.eye(num_classes) * 1e9
        gap = float(d.min())
        if gap > best_gap:
            best, best_gap = c, gap
    return best


class GridCodec(LatentCodec):
    kind = "grid"

    def __init__(self, world=None, dim: int = 8, seed: int = 0, codes: torch.Tensor | None = None):
        super().__init__()
        from irg_rl.tasks.shapes import ShapesWorldConfig

        self.world = world if world is not None else ShapesWorldConfig()
        if self.world.layout != "grid":
            raise ValueError("GridCodec needs a ShapesWorldConfig with layout='grid' (one object per cell)")
        if self.world.image_size % self.world.grid_size:
            raise ValueError("GridCodec: image_size must be a multiple of grid_size")
        n = self.world.num_cell_classes
        codes = make_codes(n, dim, seed) if codes is None else codes
        if codes.shape != (n, dim):
            raise ValueError(f"GridCodec: codes shape {tuple(codes.shape)} != ({n}, {dim}) for this world")
        self.register_buffer("codes", codes.float())
        self.latent_channels = dim
        self.downsample = self.world.image_size // self.world.grid_size

    def classes_to_latents(self, classes: torch.Tensor) -> torch.Tensor:
        """int [B, grid*grid] -> [B, dim, grid, grid]."""
        g = self.world.grid_size
        return self.codes[classes].reshape(-1, g, g, self.latent_channels).permute(0, 3, 1, 2).contiguous()

    def latents_to_classes(self, latents: torch.Tensor) -> torch.Tensor:
        """[B, dim, grid, grid] -> nearest-code class ids [B, grid*grid]."""
        flat = latents.float().permute(0, 2, 3, 1).reshape(latents.shape[0], -1, self.latent_channels)
        # nearest code in float32 whatever the codec's dtype (bf16 rollout workers)
        codes = self.codes.float()
        return torch.cdist(flat, codes[None].expand(flat.shape[0], -1, -1)).argmin(-1)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        from irg_rl.tasks.shapes import image_to_cell_classes

        if images.dtype != torch.uint8:
            images = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
        classes = [torch.from_numpy(image_to_cell_classes(img.cpu().numpy(), self.world)) for img in images]
        return self.classes_to_latents(torch.stack(classes).to(self.codes.device))

    def decode(self, latents: torch.Tensor, rounding: str = "round") -> torch.Tensor:
        """Renders the scene exactly (uint8 by construction: `rounding` changes nothing)."""
        from irg_rl.tasks.shapes import render_scene, scene_from_cell_classes

        out = []
        for cls in self.latents_to_classes(latents).cpu().numpy():
            out.append(torch.from_numpy(render_scene(scene_from_cell_classes(cls, self.world), self.world)))
        return torch.stack(out)

    def save(self, file: str | Path) -> None:
        meta = {"kind": self.kind, "world": json.dumps(dataclasses.asdict(self.world))}
        save_file({"codes": self.codes.cpu().contiguous()}, str(file), metadata=meta)

    @classmethod
    def fresh(cls, cfg, options: dict | None = None, data_root: str | Path | None = None) -> GridCodec:
        """The codec for model config `cfg` in the world of `options` (ShapesWorld fields), else of
        `<data_root>/world.yaml` (written by the ShapesWorld data builders), else the default world."""
        from irg_rl.config import load_config
        from irg_rl.tasks.shapes import ShapesWorldConfig
        from irg_rl.tasks.shapes.task import world_from_options

        world_file = Path(data_root) / "world.yaml" if data_root is not None else None
        if options:
            world = world_from_options(options)
        elif world_file is not None and world_file.is_file():
            world = load_config(ShapesWorldConfig, world_file)
        else:
            world = None
        vae = cls(world, dim=cfg.vae_latent_channels)
        if vae.downsample != cfg.vae_downsample:
            raise ValueError(
                f"grid codec downsample {vae.downsample} != model vae_downsample {cfg.vae_downsample}: the model "
                f"preset and the ShapesWorld image/grid size disagree (set image_size / grid_size = "
                f"{cfg.vae_downsample})"
            )
        return vae

    @classmethod
    def load(cls, file: str | Path, device="cpu") -> GridCodec:
        from irg_rl.tasks.shapes import ShapesWorldConfig

        with safe_open(str(file), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("kind") != "grid":
                raise ValueError(f"{file}: not a grid-codec file (metadata kind={meta.get('kind')!r})")
            codes = f.get_tensor("codes")
        world = ShapesWorldConfig(**json.loads(meta["world"]))
        return cls(world, dim=codes.shape[1], codes=codes).to(device)
