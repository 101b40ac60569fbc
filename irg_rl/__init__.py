"""irg-rl: supervised (IRGL) and RL (GRPO/DPO) fine-tuning for Interleaving Reasoning Generation models."""

__version__ = "0.1.0"
