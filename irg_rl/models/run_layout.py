"""The read side of a training run's folder layout: which checkpoints exist, which is the latest, and where a
run's model weights are (`<output_dir>/checkpoints/step-000123/` with `COMPLETE` written last and a `latest`
pointer; the writer is `irg_rl.train.checkpointing`). Lives with the models so that loading a trained model needs
nothing from the training code."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from irg_rl.models.checkpoint import MODEL_FILE

__all__ = ["COMPLETE", "LATEST", "checkpoints_root", "is_complete", "list_checkpoints", "latest_checkpoint",
           "resolve_model_dir"]  # fmt: skip

COMPLETE = "COMPLETE"
LATEST = "latest"
_STEP_RE = re.compile(r"^step-(\d+)$")


def checkpoints_root(output_dir: str | os.PathLike) -> Path:
    return Path(output_dir) / "checkpoints"


def is_complete(path: str | os.PathLike) -> bool:
    return (Path(path) / COMPLETE).is_file()


def list_checkpoints(output_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints under `output_dir`, oldest first."""
    root = checkpoints_root(output_dir)
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        m = _STEP_RE.match(p.name)
        if m and p.is_dir() and is_complete(p):
            out.append((int(m.group(1)), p))
    return sorted(out)


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The checkpoint named by the `latest` pointer, else the newest complete one, else None."""
    root = checkpoints_root(output_dir)
    pointer = root / LATEST
    if pointer.is_file():
        try:
            cand = root / json.loads(pointer.read_text())["path"]
        except (json.JSONDecodeError, KeyError, TypeError):
            cand = None
        if cand is not None and is_complete(cand):
            return cand
    found = list_checkpoints(output_dir)
    return found[-1][1] if found else None


def resolve_model_dir(source: str) -> Path:
    """A BAGEL-layout directory from a checkpoint dir, a training checkpoint (`.../model`) or a run directory."""
    path = Path(source)
    if (path / MODEL_FILE).is_file():
        return path
    if (path / "model" / MODEL_FILE).is_file():
        return path / "model"
    latest = latest_checkpoint(path) if (path / "checkpoints").is_dir() else None
    if latest is not None and (latest / "model" / MODEL_FILE).is_file():
        return latest / "model"
    raise FileNotFoundError(
        f"model.source={source!r}: no {MODEL_FILE} there, in its model/ folder, or in the latest checkpoint of a "
        f"run directory; point it at an SFT run (e.g. runs/demo/sft_stage2) or a checkpoint directory"
    )
