"""Model, tokenizer and VAE for the engine from an `EngineConfig`: a checkpoint directory, or a random preset.

A random preset gets a byte-level BPE tokenizer trained offline (milliseconds) on ShapesWorld prompts, plans and
reflection headings plus the system prompt, and the ShapesWorld grid codec (tiny) or a randomly initialised
FLUX autoencoder (bagel-7b-mot dims, benchmarks only). Such a model is untrained: its images and thinks are noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from irg_rl.models.checkpoint import build_model, load_checkpoint
from irg_rl.models.configs import BagelConfig
from irg_rl.models.tokenizer import special_token_ids, train_tokenizer

from .engine_config import EngineConfig

__all__ = ["EngineComponents", "shapes_texts", "random_vae", "build_components", "resolve_system_prompt"]


@dataclass
class EngineComponents:
    # the unified model (eval mode)
    model: Any
    # tokenizer
    tokenizer: Any
    # VAE (LatentCodec)
    vae: Any
    # where the weights came from, for logs ("random init ..." or the checkpoint path)
    origin: str


def shapes_texts(world, extra: list[str], num: int = 300, seed: int = 0) -> list[str]:
    """Texts to train a tokenizer for ShapesWorld: prompts, plans, reflection headings, and `extra`."""
    from irg_rl.tasks.shapes import HEADINGS, generate_prompts, write_think1

    metas = generate_prompts(world, num, seed=seed)
    rng = np.random.default_rng(seed)
    texts = [m["prompt"] for m in metas] + [write_think1(m, rng) for m in metas[: num // 2]]
    return texts + list(HEADINGS) + [t for t in extra if t]


def random_vae(cfg: BagelConfig, world, device: str | torch.device = "cpu", dtype=torch.float32):
    """A fresh VAE of the config's kind: the exact grid codec, or a random FLUX AE (for speed measurements)."""
    if cfg.vae_kind == "grid":
        from irg_rl.tasks.shapes.grid_codec import GridCodec

        vae = GridCodec(world, dim=cfg.vae_latent_channels)
        if vae.downsample != cfg.vae_downsample:
            raise ValueError(
                f"grid codec downsample {vae.downsample} != model vae_downsample {cfg.vae_downsample}: "
                f"set world.image_size / world.grid_size = {cfg.vae_downsample}"
            )
        return vae.to(device)
    if cfg.vae_kind == "flux":
        from irg_rl.models.vae.flux_ae import FluxAutoencoder

        return FluxAutoencoder().to(device=device, dtype=dtype).eval()
    raise NotImplementedError(
        f"no random '{cfg.vae_kind}' VAE for the engine: use a checkpoint with ae.safetensors or vae_kind grid"
    )


def build_components(ec: EngineConfig, device: str | torch.device = "cpu") -> EngineComponents:
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[ec.model.dtype]
    if ec.model.is_checkpoint():
        # a run folder or training checkpoint resolves to its BAGEL-layout model folder
        from irg_rl.models.run_layout import resolve_model_dir

        ck = load_checkpoint(resolve_model_dir(ec.model.source), dtype=dtype, device=device)
        if ck.tokenizer is None or ck.vae is None:
            raise ValueError(
                f"model.source={ec.model.source}: the engine needs tokenizer files and ae.safetensors"
            )
        return EngineComponents(ck.model.eval(), ck.tokenizer, ck.vae, ec.model.source)
    cfg = ec.model.build_config()
    tok = train_tokenizer(
        shapes_texts(ec.world, [ec.sampling.system_prompt]), vocab_size=min(cfg.llm.vocab_size, 2048)
    )
    cfg.llm.vocab_size = max(cfg.llm.vocab_size, len(tok))
    model = build_model(cfg, special_token_ids(tok), dtype=dtype, device=device, seed=ec.init_seed).eval()
    vae = random_vae(cfg, ec.world, device, dtype)
    return EngineComponents(model, tok, vae, f"random init of preset '{ec.model.source}' (untrained)")


def resolve_system_prompt(sampling, model_source: str):
    """`sampling` with `system_prompt` read from `sampling.system_prompt_file` when one is set: a text file, or
    "checkpoint" = `system_prompt.txt` in the model directory of `model_source` (trailing newline dropped)."""
    import dataclasses
    from pathlib import Path

    from irg_rl.models.run_layout import resolve_model_dir

    name = sampling.system_prompt_file
    if not name:
        return sampling
    path = resolve_model_dir(model_source) / "system_prompt.txt" if name == "checkpoint" else Path(name)
    if not path.is_file():
        raise FileNotFoundError(
            f"sampling.system_prompt_file={name!r}: {path} does not exist; give a text file holding the system "
            f"prompt, or put system_prompt.txt in the model directory for 'checkpoint'"
        )
    return dataclasses.replace(sampling, system_prompt=path.read_text().rstrip("\n"), system_prompt_file="")
