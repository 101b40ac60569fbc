"""Load and save BAGEL-7B-MoT-layout checkpoint directories.

Layout: `config.json` (BagelConfig, incl. `vae_kind`), `llm_config.json`, `vit_config.json`, tokenizer files,
`ema.safetensors` (the model, tensor names as in the released BAGEL-7B-MoT checkpoint, 1223 tensors) and
`ae.safetensors` (the VAE: FLUX's original key layout, or our grid codec / tiny AE).
Loading builds the model on the meta device and assigns tensors read from safetensors in the target dtype, so
no fp32 copy of a bf16 checkpoint is ever made. The two fixed sin-cos tables (`latent_pos_embed.pos_embed`,
`vit_pos_embed.pos_embed`) may be absent and are then rebuilt.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .bagel import BagelModel
from .configs import BagelConfig
from .embeddings import PositionEmbedding
from .packing import SpecialTokenIds

MODEL_FILE = "ema.safetensors"
VAE_FILE = "ae.safetensors"
REBUILT = ("latent_pos_embed.pos_embed", "vit_pos_embed.pos_embed")


class CheckpointError(ValueError):
    """A checkpoint does not match the model its config describes; the message names the tensors."""


def build_model(
    cfg: BagelConfig,
    special: SpecialTokenIds | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    seed: int | None = None,
) -> BagelModel:
    """A randomly initialised model (the gen expert starts as a copy of the und expert, llm2vae at zero)."""
    if seed is not None:
        torch.manual_seed(seed)
    model = BagelModel(cfg, special)
    model.language_model.init_moe_from_und()
    return model.to(device=device, dtype=dtype)


def expected_shapes(cfg: BagelConfig) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of the model's state dict, built on the meta device (cheap even for 7B)."""
    with torch.device("meta"):
        model = BagelModel(cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _summarise(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in total)" if len(names) > limit else "")


def load_model(
    path: str | Path,
    dtype: torch.dtype = torch.bfloat16,
    device: str | torch.device = "cpu",
    special: SpecialTokenIds | None = None,
) -> BagelModel:
    """The model of a checkpoint directory, in `dtype` on `device` (see module docstring)."""
    path = Path(path)
    cfg = BagelConfig.from_dir(path)
    file = path / MODEL_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{file}: missing; a checkpoint directory needs {MODEL_FILE}")
    with torch.device("meta"):
        model = BagelModel(cfg, special)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    with safe_open(str(file), framework="pt", device=str(device)) as f:
        present = set(f.keys())
        missing = sorted(k for k in expected if k not in present and k not in REBUILT)
        unexpected = sorted(k for k in present if k not in expected)
        misshaped = sorted(
            f"{k} (file {list(f.get_slice(k).get_shape())}, model {list(expected[k])})"
            for k in present & expected.keys()
            if tuple(f.get_slice(k).get_shape()) != expected[k]
        )
        problems = []
        if missing:
            problems.append(f"missing tensors: {_summarise(missing)}")
        if unexpected:
            problems.append(f"unexpected tensors: {_summarise(unexpected)}")
        if misshaped:
            problems.append(f"mis-shaped tensors: {_summarise(misshaped)}")
        if problems:
            raise CheckpointError(
                f"{file} does not match the model described by {path}/*.json: " + "; ".join(problems)
            )
        state = {k: f.get_tensor(k).to(dtype) for k in present}
    model.load_state_dict(state, strict=False, assign=True)
    del state
    for module in model.modules():
        if isinstance(module, PositionEmbedding) and module.pos_embed.device.type == "meta":
            module.reset(device, dtype)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.device.type == "meta"]
    if left:
        raise CheckpointError(f"{file}: tensors left unloaded: {_summarise(left)}")
    return model.eval()


@dataclass
class Checkpoint:
    """Everything a checkpoint directory holds, loaded."""

    # the unified model
    model: BagelModel
    # its config (config.json + llm_config.json + vit_config.json)
    config: BagelConfig
    # the tokenizer (PreTrainedTokenizerFast), or None if the directory has none
    tokenizer: Any
    # the VAE (irg_rl.models.vae.base.LatentCodec), or None if the directory has no ae.safetensors
    vae: Any


def load_checkpoint(
    path: str | Path, dtype: torch.dtype = torch.bfloat16, device: str | torch.device = "cpu"
) -> Checkpoint:
    """Model, tokenizer and VAE of a BAGEL-layout directory; the model's special ids come from the tokenizer."""
    from .tokenizer import load_tokenizer, special_token_ids
    from .vae import load_vae

    path = Path(path)
    tok = (
        load_tokenizer(path)
        if (path / "tokenizer.json").is_file() or (path / "vocab.json").is_file()
        else None
    )
    special = special_token_ids(tok) if tok is not None else None
    model = load_model(path, dtype, device, special)
    vae = load_vae(path, model.config, device=device) if (path / VAE_FILE).is_file() else None
    return Checkpoint(model, model.config, tok, vae)


def save_state_checkpoint(
    state: dict[str, torch.Tensor],
    cfg: BagelConfig,
    special: SpecialTokenIds,
    path: str | Path,
    tokenizer: Any = None,
    vae: Any = None,
) -> Path:
    """`save_checkpoint` for a whole state dict (e.g. gathered / LoRA-merged weights): the tensors are assigned to
    a meta-device shell, so no second copy of the model is materialised; strict, so a missing tensor fails."""
    with torch.device("meta"):
        shell = BagelModel(cfg, special)
    shell.load_state_dict({k: v.detach().cpu() for k, v in state.items()}, strict=True, assign=True)
    return save_checkpoint(shell, path, tokenizer=tokenizer, vae=vae)


def save_checkpoint(
    model: BagelModel,
    path: str | Path,
    tokenizer: Any = None,
    vae: Any = None,
    dtype: torch.dtype | None = None,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write `model` (+ tokenizer, VAE) in the BAGEL layout, atomically: a temp dir renamed into place.

    dtype: cast tensors on save (None keeps the model's). Our VAEs write their own `ae.safetensors`
    and `config.json` records `vae_kind`, so `load_checkpoint` rebuilds the same VAE.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        cfg = model.config
        if vae is not None and getattr(vae, "kind", cfg.vae_kind) != cfg.vae_kind:
            raise ValueError(
                f"save_checkpoint: VAE kind {vae.kind!r} differs from config vae_kind {cfg.vae_kind!r}"
            )
        cfg.write_dir(tmp)
        state = {}
        for k, v in model.state_dict().items():
            v = v.detach()
            state[k] = (v.to(dtype) if dtype is not None else v).contiguous().cpu()
        save_file(state, str(tmp / MODEL_FILE), metadata={"format": "pt", **(metadata or {})})
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        if vae is not None:
            vae.save(tmp / VAE_FILE)
        (tmp / "irg_rl.json").write_text(
            json.dumps({"format": "bagel-layout", "vae_kind": cfg.vae_kind}) + "\n"
        )
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            path.rename(old)
        tmp.rename(path)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
