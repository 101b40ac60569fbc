"""Reward plug-ins for irg-rl: one contract (`Reward`, `RewardBatch`, `RewardOutput`), a registry, a composite,
and serving in process, on Ray or over HTTP. See docs/architecture.md ("Rewards")."""

from rewards.composite import CompositeReward
from rewards.contract import Reward, RewardBatch, RewardError, RewardOutput, nan_output
from rewards.registry import RegistryError, available_rewards, build_reward, register_reward
from rewards.spec import RewardSpec

__all__ = [
    "Reward",
    "RewardBatch",
    "RewardOutput",
    "RewardError",
    "RewardSpec",
    "CompositeReward",
    "RegistryError",
    "available_rewards",
    "build_reward",
    "register_reward",
    "nan_output",
]
