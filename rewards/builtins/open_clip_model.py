"""Load an open_clip model from an architecture name and a local checkpoint file (no downloads).

Checkpoint formats accepted (those the published weights use): a bare state dict, a dict with a `state_dict`
key (HPSv2/2.1 training checkpoints), keys optionally prefixed `module.` (DDP), `.pt/.bin/.pth` via torch.load
or `.safetensors`. `model_config` names a JSON architecture file to register first (custom or tiny models); the
architecture is then called by the file's stem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = ["load_open_clip", "read_state_dict"]


def read_state_dict(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file, unwrapping `state_dict` and stripping `module.` prefixes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd: Any = load_file(str(path))
    else:
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - name the file and the likely cause
            raise ValueError(f"{what}: cannot read {path} as a torch checkpoint of tensors ({e})") from e
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(
            f"{what}: {path} holds no state dict (expected tensors, or a dict with 'state_dict')"
        )
    return {k.removeprefix("module."): v for k, v in sd.items()}


def load_open_clip(
    model_name: str, checkpoint: str | None, device: str = "cpu", model_config: str | None = None
) -> tuple[Any, Any, Any]:
    """(model in eval mode, image preprocess, tokenizer) for an open_clip architecture and local weights."""
    import open_clip

    if model_config is not None:
        cfg = Path(model_config)
        if not cfg.exists():
            raise FileNotFoundError(f"open_clip model_config not found: {cfg}")
        open_clip.add_model_config(cfg)
    if model_name not in open_clip.list_models():
        raise ValueError(
            f"open_clip has no architecture '{model_name}'; pick one of open_clip.list_models() or pass "
            "model_config=<path to NAME.json>"
        )
    if checkpoint is None:
        raise ValueError(
            f"open_clip model '{model_name}': checkpoint is required (a local .pt/.bin/.safetensors path)"
        )
    model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=None, device="cpu")
    sd = read_state_dict(checkpoint, f"open_clip '{model_name}'")
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    wrong = [
        f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in sd and sd[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        raise ValueError(
            f"open_clip '{model_name}': checkpoint {checkpoint} does not match the architecture: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}, "
            f"wrong shapes {wrong[:3]}; check model_name"
        )
    model.load_state_dict(sd)
    tokenizer = open_clip.get_tokenizer(model_name)
    return model.to(device).eval(), preprocess, tokenizer
