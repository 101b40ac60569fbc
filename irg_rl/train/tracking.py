"""Experiment tracking settings shared by the SFT and RL trainers."""

from __future__ import annotations

import os


def wandb_mode(setting: str) -> str:
    """The wandb mode for a recipe's `log.wandb_mode`: WANDB_MODE wins; `auto` = online with a key, else offline."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if setting != "auto":
        return setting
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"
