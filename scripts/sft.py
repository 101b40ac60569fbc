"""Two-stage IRGL supervised training, one stage per run.

accelerate launch --config_file recipes/accelerate/<cfg>.yaml scripts/sft.py --config recipes/<...>.yaml [key=value ...]
"""

from irg_rl.train.sft.trainer import main

if __name__ == "__main__":
    main()
