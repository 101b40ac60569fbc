"""DPO on best/worst IRG trajectory pairs (online groups or saved rollouts).

accelerate launch --config_file recipes/accelerate/<cfg>.yaml scripts/dpo.py --config recipes/shapes/dpo.yaml [k=v ...]
(or: python scripts/dpo.py --config ...)
"""

from irg_rl.train.rl.dpo import main

if __name__ == "__main__":
    main()
