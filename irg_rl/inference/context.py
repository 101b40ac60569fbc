"""A KV cache that knows which segments it holds, and the small conversions every IRG context needs.

`Context.segments` lists what was written, in order (`system`, `prompt`, `think_1`, `image_1_vae`,
`image_1_vit`, `think_2`), so each CFG branch can report exactly what it saw. `view()` shares storage with the
parent (a prefix that is never written again); `fork()` copies (a branch that will receive its own writes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from irg_rl.models import BagelModel, KVCache
from irg_rl.models.image_resize import VIT_INFERENCE, ResizeLimits, official_size

__all__ = [
    "Context",
    "text_piece",
    "sample_seed",
    "group_noise_seed",
    "branch_seed",
    "latent_grid",
    "vit_input",
    "decode_latents",
    "reencode",
]


@dataclass
class Context:
    # the KV cache (B samples)
    cache: KVCache
    # names of the segments written into it, in order
    segments: list[str] = field(default_factory=list)
    # a view shares its parent's storage and must not be written
    read_only: bool = False

    def add_text(self, model: BagelModel, name: str, pieces: list[list[int]]) -> None:
        self._writable(name)
        model.prefill_text(self.cache, pieces, logits=None)
        self.segments.append(name)

    def add_vae(self, model: BagelModel, name: str, tokens: torch.Tensor, grid_hw: tuple[int, int]) -> None:
        self._writable(name)
        model.prefill_vae(self.cache, tokens, grid_hw)
        self.segments.append(name)

    def add_vit(self, model: BagelModel, name: str, images: list[torch.Tensor]) -> None:
        self._writable(name)
        model.prefill_vit(self.cache, images)
        self.segments.append(name)

    def _writable(self, name: str) -> None:
        if self.read_only:
            raise RuntimeError(f"cannot append {name!r} to a read-only context view; fork() it instead")

    def view(self) -> Context:
        """The current prefix, sharing storage (later writes to the parent land beyond its lengths)."""
        c = self.cache
        shared = KVCache(list(c.keys), list(c.values), c.lens.clone(), c.rope.clone())
        return Context(shared, list(self.segments), read_only=True)

    def fork(self) -> Context:
        return Context(self.cache.clone(), list(self.segments))

    def select(self, index: torch.Tensor | list[int]) -> Context:
        return Context(self.cache.select(index), list(self.segments))


def text_piece(tokenizer, special, text: str) -> list[int]:
    """`<|im_start|> text <|im_end|>` as ids (no role tags), or [] for empty text."""
    if not text:
        return []
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [special.im_start, *ids, special.im_end]


def sample_seed(base: int, prompt_index: int, sample_index: int) -> int:
    """Seed of trajectory `sample_index` of prompt `prompt_index` (independent of batch composition)."""
    return (int(base) + 1_000_003 * int(prompt_index) + int(sample_index)) % (2**63 - 1)


def group_noise_seed(base: int, prompt_index: int) -> int:
    """Seed of the starting image noise shared by the samples of prompt `prompt_index` (group_initial_noise)."""
    # an offset no trajectory seed of a sane group size reaches (those are base + 1000003 p + k, k < G)
    return sample_seed(int(base) + 500_001, prompt_index, 0)


def branch_seed(seed: int) -> int:
    """Seed of a round-2 branch's own stream (sampling.round2_branches > 1), derived from a trajectory seed."""
    return (int(seed) * 6_364_136_223 + 1_442_695_041) % (2**63 - 1)


def latent_grid(model: BagelModel, resolution: int) -> tuple[int, int]:
    d = model.config.latent_downsample
    if resolution % d:
        raise ValueError(
            f"sampling.resolution={resolution} is not a multiple of the model's latent downsample {d} "
            f"(VAE {model.config.vae_downsample} x latent patch {model.config.latent_patch_size})"
        )
    return resolution // d, resolution // d


def vit_input(image: torch.Tensor, model: BagelModel) -> torch.Tensor:
    """uint8 [H, W, 3] -> float [3, h, w] in [-1, 1], BAGEL's inference ViT transform: resized with PIL bicubic on
    the uint8 pixels to the official inference limits (long side <= the ViT size, 980 for BAGEL; short side >= 224,
    small images enlarged; both multiples of the ViT patch; `irg_rl.models.image_resize`), capped at the model's
    ViT size, then normalised with mean = std = 0.5. An image already of that size is not resampled."""
    vit = model.config.vit
    limits = ResizeLimits(vit.image_size, min(VIT_INFERENCE.min_size, vit.image_size), vit.patch_size)
    pixels = image.detach().cpu().numpy()
    H, W = pixels.shape[:2]
    w, h = official_size(W, H, limits)
    if (w, h) != (W, H):
        pixels = np.asarray(Image.fromarray(pixels).resize((w, h), Image.Resampling.BICUBIC))
    x = torch.from_numpy(np.array(pixels, copy=True)).permute(2, 0, 1).float() / 127.5 - 1.0
    return x.to(model.device)


@torch.no_grad()
def decode_latents(
    vae, model: BagelModel, tokens: torch.Tensor, grid_hw: tuple[int, int], rounding: str = "round"
) -> torch.Tensor:
    """Latent tokens [N, n, P] -> uint8 images [N, H, W, 3] (on the CPU); `rounding`: round | truncate."""
    p = model.config.latent_patch_size
    lat = vae.from_tokens(tokens.float().to(_device(vae)), grid_hw, p)
    return vae.decode(lat, rounding).cpu()


@torch.no_grad()
def reencode(vae, model: BagelModel, images: torch.Tensor) -> torch.Tensor:
    """uint8 images [N, H, W, 3] -> clean latent tokens [N, n, P] (float32, on the model's device)."""
    lat = vae.encode(images.to(_device(vae)))
    return vae.to_tokens(lat.float(), model.config.latent_patch_size).to(model.device)


def _device(module: torch.nn.Module) -> torch.device:
    for t in (*module.parameters(), *module.buffers()):
        return t.device
    return torch.device("cpu")
