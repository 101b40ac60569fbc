"""GRPO over IRG think-image-reflect-image trajectories.

accelerate launch --config_file recipes/accelerate/<cfg>.yaml scripts/grpo.py --config recipes/shapes/grpo.yaml [k=v ...]
(or: python scripts/grpo.py --config ...)
"""

from irg_rl.train.rl.grpo import main

if __name__ == "__main__":
    main()
