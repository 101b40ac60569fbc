r"""GRPO/DPO seed study on ShapesWorld: train one run per seed from a checkpoint, evaluate each on the held-out
prompts, and report mean, range and gain over the start (`<out>/summary.md`). Finished stages are reused.

    python -m experiments.rl_seeds --algo grpo --recipe recipes/shapes/grpo.yaml --start runs/demo/sft_stage2 \
        --seeds 0 1 --out runs/grpo_seeds [--set train.max_steps=20 ...]
"""

from __future__ import annotations

import argparse

from experiments.demo.seed_study import (
    ALGOS,
    DEFAULT_CFG_EVAL,
    SeedStudyOptions,
    run_seed_study,
    summary_md_path,
)

D = SeedStudyOptions()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--algo", choices=ALGOS, default=D.algo)
    parser.add_argument("--recipe", default=D.recipe, help="GRPO or DPO recipe")
    parser.add_argument("--start", default=D.start, help="starting checkpoint or run folder")
    parser.add_argument("--heldout", default=D.heldout, help="held-out prompts JSONL (from the data stage)")
    parser.add_argument("--eval-recipe", default=D.eval_recipe)
    parser.add_argument("--seeds", type=int, nargs="+", default=D.seeds)
    parser.add_argument("--images-per-prompt", type=int, default=D.images_per_prompt)
    parser.add_argument("--out", default=D.out, help="run folder")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="RL recipe key=value")
    parser.add_argument(
        "--eval-set", dest="eval_overrides", action="append", default=[], help="eval key=value"
    )
    parser.add_argument(
        "--cfg-eval",
        action="store_true",
        help="also evaluate every checkpoint with guidance on (BAGEL's default scales; --cfg-set to change them)",
    )
    parser.add_argument(
        "--cfg-set", dest="cfg_overrides", action="append", default=[], help="eval key=value for the CFG pass"
    )
    parser.add_argument("--fresh", action="store_true", help="delete earlier results first")
    a = parser.parse_args(argv)
    run_seed_study(
        SeedStudyOptions(
            algo=a.algo,
            recipe=a.recipe,
            start=a.start,
            heldout=a.heldout,
            eval_recipe=a.eval_recipe,
            seeds=a.seeds,
            images_per_prompt=a.images_per_prompt,
            out=a.out,
            train_overrides=a.overrides,
            eval_overrides=a.eval_overrides,
            cfg_eval_overrides=(list(DEFAULT_CFG_EVAL) + a.cfg_overrides)
            if a.cfg_eval or a.cfg_overrides
            else [],
            fresh=a.fresh,
        )
    )
    print(summary_md_path(a.out).read_text())


if __name__ == "__main__":
    main()
