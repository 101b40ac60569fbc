"""Experiment tracking settings shared by the SFT and RL trainers."""

from __future__ import annotations

import os
from pathlib import Path


def wandb_mode(setting: str) -> str:
    """The wandb mode for a recipe's `log.wandb_mode`: WANDB_MODE wins; `auto` = online with a key, else offline."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if setting != "auto":
        return setting
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


def init_wandb(out: Path, project: str, name: str, config: dict, mode: str):
    """A wandb run for the output folder `out`: a resumed training run continues the same wandb run (its id is
    kept in `<out>/wandb_run_id`), a new folder starts a new one."""
    import wandb

    id_file = Path(out) / "wandb_run_id"
    run_id = id_file.read_text().strip() if id_file.is_file() else None
    run = wandb.init(
        project=project, name=name, dir=str(out), config=config, mode=mode, resume="allow", id=run_id
    )
    id_file.write_text(run.id)
    return run
