"""Where a ShapesWorld reflection goes wrong: reading image_1, checking the prompt, or the verdict itself.

Reads an evaluation folder of `scripts/eval.py` (two rounds) and prints, overall and by image_1 right / wrong, how
often the reflection's description of image_1, its checklist and its verdict agree with the exact scorer.

    python -m experiments.reflection_reading runs/demo/eval_grpo --prompts runs/demo/data/prompts_heldout.jsonl
"""

from __future__ import annotations

import argparse
import json

from experiments.probes.reflection_reading import read_eval


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("eval_dir", help="an output folder of scripts/eval.py")
    ap.add_argument("--prompts", required=True, help="the GenEval metadata lines it evaluated")
    args = ap.parse_args(argv)
    print(json.dumps(read_eval(args.eval_dir, args.prompts), indent=1))


if __name__ == "__main__":
    main()
