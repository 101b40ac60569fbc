"""Training: SFT (packing, losses, trainer), GRPO/DPO, EMA, checkpoints and resume."""
