"""RL over IRG trajectories: recipes, the shared loop and setup, credit and advantages, GRPO / DPO / DiffusionNFT
maths and trainers, trajectory outputs."""
