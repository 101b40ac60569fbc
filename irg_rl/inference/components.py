"""Model, tokenizer and VAE for the engine from an `EngineConfig`: a checkpoint directory, or a random preset.

A random preset gets a byte-level BPE tokenizer trained offline (milliseconds) on its task's texts (the task
plug-in's `tokenizer_texts`: ShapesWorld prompts, plans and reflection headings) plus the system prompt, and a
fresh VAE of its kind (the ShapesWorld grid codec for tiny) or a randomly initialised FLUX autoencoder
(bagel-7b-mot dims, benchmarks only). Such a model is untrained: its images and thinks are noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from irg_rl.data.task_plugin import build_task
from irg_rl.models.checkpoint import build_model, load_checkpoint
from irg_rl.models.configs import BagelConfig
from irg_rl.models.tokenizer import special_token_ids, train_tokenizer
from irg_rl.models.vae import vae_class

from .engine_config import EngineConfig

__all__ = ["EngineComponents", "random_vae", "build_components", "resolve_system_prompt"]


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


def random_vae(cfg: BagelConfig, task_options: dict, device: str | torch.device = "cpu", dtype=torch.float32):
    """A fresh VAE of the config's kind: a random FLUX AE (for speed measurements), or the kind's own `fresh`
    (the ShapesWorld grid codec, exact, in the world of `task_options`)."""
    if cfg.vae_kind == "flux":
        from irg_rl.models.vae.flux_ae import FluxAutoencoder

        return FluxAutoencoder().to(device=device, dtype=dtype).eval()
    return vae_class(cfg.vae_kind, "model: ").fresh(cfg, options=task_options).to(device)


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
    texts = build_task(ec.task).tokenizer_texts([ec.sampling.system_prompt])
    tok = train_tokenizer(texts, vocab_size=min(cfg.llm.vocab_size, 2048))
    cfg.llm.vocab_size = max(cfg.llm.vocab_size, len(tok))
    model = build_model(cfg, special_token_ids(tok), dtype=dtype, device=device, seed=ec.init_seed).eval()
    vae = random_vae(cfg, ec.task.options, device, dtype)
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
