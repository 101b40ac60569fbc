"""The embedded default: the IRG method on ShapesWorld on a CPU (`make demo`).

    python -m experiments.demo --out runs/demo [--fresh] [--num-prompts N]

Stages reuse finished work on a rerun; --fresh starts over.
"""

from __future__ import annotations

import argparse

from experiments.demo.pipeline import DemoOptions, run_demo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default="runs/demo", help="run folder (stages, checkpoints, report)")
    parser.add_argument(
        "--fresh", action="store_true", help="delete earlier results and run every stage again"
    )
    parser.add_argument("--num-prompts", type=int, default=DemoOptions.num_prompts, help="training prompts")
    args = parser.parse_args(argv)
    run_demo(DemoOptions(out=args.out, fresh=args.fresh, num_prompts=args.num_prompts))


if __name__ == "__main__":
    main()
