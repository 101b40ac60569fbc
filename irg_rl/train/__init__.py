"""Training: SFT (`sft/`) and RL (`rl/`) over shared helpers (recipe sections, optimiser, freezing and LoRA,
checkpoints and resume, tracking, gradient checkpointing)."""
