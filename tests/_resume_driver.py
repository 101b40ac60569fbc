"""Subprocess driver of tests/test_rl_resume.py: run GRPO or DPO on the random test checkpoint, optionally dying
with SIGKILL right after the checkpoint of a given step (`after_save`) or in the middle of writing it (`in_save`).

python tests/_resume_driver.py ALGO CKPT OUT MAX_STEPS [after_save:N | in_save:N]
"""

from __future__ import annotations

import os
import signal
import sys

import torch
from _rl_helpers import dpo_recipe, grpo_recipe

from irg_rl.train import checkpointing
from irg_rl.train.rl.setup import RLSetup


def main() -> None:
    algo, ckpt, out, max_steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    kill = sys.argv[5] if len(sys.argv) > 5 else ""
    torch.set_num_threads(1)
    over = {"train.max_steps": max_steps, "train.save_every": 2, "train.resume_from": "auto"}
    over |= {
        "train.save_trajectories_every": 0,
        "train.image_grid_every": 0,
        "eval.num_prompts": 2,
        "eval.every": 2,
    }
    if kill:
        when, step = kill.split(":")
        step = int(step)
        if when == "after_save":
            save = RLSetup.save

            def save_then_die(self):
                path = save(self)
                if self.step == step:
                    os.kill(os.getpid(), signal.SIGKILL)
                return path

            RLSetup.save = save_then_die
        else:  # the temporary folder is complete but never renamed into place
            finalize = checkpointing.finalize

            def die_in_finalize(tmp, final, s):
                if s == step:
                    os.kill(os.getpid(), signal.SIGKILL)
                return finalize(tmp, final, s)

            checkpointing.finalize = die_in_finalize
    if algo == "grpo":
        from irg_rl.train.rl.grpo import train

        recipe = grpo_recipe(ckpt, out, **over)
    else:
        from irg_rl.train.rl.dpo import train

        recipe = dpo_recipe(ckpt, out, **over)
    train(recipe)


if __name__ == "__main__":
    main()
