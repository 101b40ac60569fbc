"""Reflection data from a checkpoint's own first images (ShapesWorld improving modes, official parquet format).

python scripts/make_self_reflection_data.py --out data/self_reflection model=runs/demo/sft_stage2 \
    [num_prompts=2000 keep_share=0.5 seed=0 sampling.turn1.temperature=0.7 ...] [--config RECIPE.yaml]

Samples think_1 + image_1 on training prompts, labels each image_1 with the exact scorer, balances keep and
revise rows, and writes the three improving_* modes (see irg_rl/tasks/shapes/self_builder.py).
"""

from __future__ import annotations

import argparse
import json
import sys

from irg_rl.config import ConfigError, keys_epilog, load_config
from irg_rl.tasks.shapes.self_builder import SelfReflectionDataConfig, build_self_reflection_data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__,
        epilog=keys_epilog(SelfReflectionDataConfig),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, help="output folder (one sub-folder per improving mode)")
    parser.add_argument("--config", default=None, help="SelfReflectionDataConfig recipe YAML")
    parser.add_argument(
        "overrides", nargs="*", help="dotted key=value overrides, e.g. model=runs/x num_prompts=500"
    )
    args = parser.parse_args(argv)
    try:
        cfg = load_config(SelfReflectionDataConfig, args.config, list(args.overrides))
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    print(json.dumps(build_self_reflection_data(args.out, cfg), indent=2))


if __name__ == "__main__":
    main()
