"""Building what the SFT loop needs from a recipe: model, tokenizer, VAE, sample encoder, optimiser, schedule.

Weights come from, in order of precedence: `init.from_checkpoint` (stage 2: a stage-1 checkpoint, its EMA or raw
weights), `model.source` when it is a checkpoint directory, or a random initialisation of the preset. A preset
needs a tokenizer and a VAE: the tokenizer is trained on the dataset's texts (milliseconds, deterministic) and the
VAE is its kind's `fresh(cfg, data_root=...)` (the ShapesWorld grid codec reads the world of
`<data.root>/world.yaml`, defaults if absent; kinds with pretrained weights need a checkpoint).
"""

from __future__ import annotations

import hashlib
import io
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from irg_rl.data.format import iter_conversations
from irg_rl.models.checkpoint import MODEL_FILE, build_model, load_checkpoint
from irg_rl.models.configs import BagelConfig
from irg_rl.models.image_resize import VAE_TRAIN, VIT_TRAIN, resize_official
from irg_rl.models.packing import SpecialTokenIds
from irg_rl.models.patchify import patchify
from irg_rl.models.tokenizer import special_token_ids, train_tokenizer
from irg_rl.models.vae import vae_class
from irg_rl.train.checkpointing import resolve_model_dir
from irg_rl.train.sft.config import SFTRecipe

RAW_MODEL_FILE = "model.safetensors"


class ModelSampleEncoder:
    """`SampleEncoder` over a real tokenizer, VAE and ViT patch size; caches latents of repeated images."""

    def __init__(
        self, tokenizer: Any, vae: Any, cfg: BagelConfig, cache_size: int = 4096, image_resize: str = "none"
    ):
        self.tokenizer, self.vae, self.cfg = tokenizer, vae, cfg
        # "official": BAGEL's training limits before the VAE and the ViT (irg_rl.models.image_resize)
        self.image_resize = image_resize
        self.special: SpecialTokenIds = special_token_ids(tokenizer)
        self._cache: OrderedDict[tuple, tuple[torch.Tensor, tuple[int, int]]] = OrderedDict()
        self.cache_size = cache_size

    def encode_text(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    @staticmethod
    def _uint8(image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.uint8).copy())

    def _key(self, kind: str, image: Image.Image) -> tuple:
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return kind, hashlib.sha1(buf.getvalue()).hexdigest()

    def _cached(self, key: tuple, fn):
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        value = fn()
        self._cache[key] = value
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return value

    def vae_tokens(self, image: Image.Image) -> tuple[torch.Tensor, tuple[int, int]]:
        if self.vae is None:
            raise ValueError(
                "this model has no VAE (checkpoint without ae.safetensors): cannot encode images"
            )

        if self.image_resize == "official":
            image = resize_official(image, replace(VAE_TRAIN, stride=self.cfg.latent_downsample))

        def run():
            with torch.no_grad():
                lat = self.vae.encode(self._uint8(image)[None]).float().cpu()
            p = self.cfg.latent_patch_size
            return self.vae.to_tokens(lat, p)[0], (lat.shape[2] // p, lat.shape[3] // p)

        return self._cached(self._key("vae", image), run)

    def vit_patches(self, image: Image.Image) -> tuple[torch.Tensor, tuple[int, int]]:
        p = self.cfg.vit.patch_size
        if self.image_resize == "official":
            image = resize_official(image, replace(VIT_TRAIN, stride=p))
        x = self._uint8(image).permute(2, 0, 1).float() / 127.5 - 1.0
        h, w = x.shape[1] // p, x.shape[2] // p
        return patchify(x[:, : h * p, : w * p], p), (h, w)


@dataclass
class Components:
    """The model and its data-side companions."""

    # the unified model (fp32 master weights; mixed precision is applied by accelerate)
    model: Any
    # model config
    config: BagelConfig
    # tokenizer (PreTrainedTokenizerFast)
    tokenizer: Any
    # VAE (LatentCodec)
    vae: Any
    # where the weights came from (for logs)
    origin: str


def _dataset_texts(root: str, limit: int = 4000) -> list[str]:
    texts: list[str] = []
    for _, _, _, conv in iter_conversations(root, on_error="skip", check_images=False):
        for turn in conv:
            if turn.role == "user":
                texts.append(turn.content)
            else:
                texts += [p.content for p in turn.content if p.type == "text"]
        if len(texts) >= limit:
            break
    if not texts:
        raise ValueError(f"data.root={root}: no readable conversations to train a tokenizer on")
    return texts


def _fresh_vae(cfg: BagelConfig, data_root: str):
    """A new VAE of the preset's kind, described by the data folder where its kind needs it (the grid codec reads
    the ShapesWorld builder's `world.yaml`)."""
    return vae_class(cfg.vae_kind, "model: ").fresh(cfg, data_root=data_root)


def build_components(recipe: SFTRecipe, resume: Path | None = None) -> Components:
    """Model, tokenizer and VAE as the recipe asks (see module docstring).

    When resuming, the tokenizer, VAE and config come from the checkpoint being resumed (its weights are then
    overwritten by the saved training state), so a resumed run never re-derives them.
    """
    dtype = torch.float32  # master weights; bf16 compute comes from accelerate's mixed precision
    init = recipe.init
    if resume is not None:
        ck = load_checkpoint(resume / "model", dtype=dtype)
        return Components(ck.model.train(), ck.config, ck.tokenizer, ck.vae, f"resumed {resume}")
    if init.from_checkpoint:
        path = Path(init.from_checkpoint)
        if (path / "model").is_dir() and not (path / MODEL_FILE).is_file():
            path = path / "model"  # a training checkpoint directory: its model/ sub-directory
        ck = load_checkpoint(path, dtype=dtype)
        if init.weights == "model":
            raw = path / RAW_MODEL_FILE
            if not raw.is_file():
                raise FileNotFoundError(f"init.weights=model but {raw} is missing; use init.weights=ema")
            ck.model.load_state_dict(load_file(str(raw)), strict=True)
        if ck.tokenizer is None:
            raise ValueError(f"{path}: checkpoint has no tokenizer files; SFT needs one")
        return Components(
            ck.model.train(), ck.config, ck.tokenizer, ck.vae, f"{path} ({init.weights} weights)"
        )
    if recipe.model.is_checkpoint():
        ck = load_checkpoint(resolve_model_dir(recipe.model.source), dtype=dtype)
        if ck.tokenizer is None:
            raise ValueError(f"model.source={recipe.model.source}: checkpoint has no tokenizer files")
        return Components(ck.model.train(), ck.config, ck.tokenizer, ck.vae, recipe.model.source)
    cfg = recipe.model.build_config()
    tok = train_tokenizer(_dataset_texts(recipe.data.root), vocab_size=cfg.llm.vocab_size)
    cfg.llm.vocab_size = max(cfg.llm.vocab_size, len(tok))
    vae = _fresh_vae(cfg, recipe.data.root)
    model = build_model(cfg, special_token_ids(tok), dtype=dtype, seed=recipe.train.seed)
    return Components(model.train(), cfg, tok, vae, f"random init of preset '{recipe.model.source}'")
