"""Write ShapesWorld IRGL data (six learning modes, held-out prompts, preview).

python scripts/make_shapes_data.py --out data/shapes --num-prompts 2000 [--seed 0] [--correct-share 0.2]
    [--config RECIPE.yaml] [world.layout=free ...]
"""

from __future__ import annotations

import argparse
import json
import sys

from irg_rl.config import ConfigError, keys_epilog, load_config
from irg_rl.tasks.shapes.data_builder import ShapesDataConfig, build_shapes_data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__,
        epilog=keys_epilog(ShapesDataConfig),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, help="output folder (one sub-folder per learning mode)")
    parser.add_argument(
        "--num-prompts", type=int, default=None, help="training prompts (overrides the recipe)"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed (overrides the recipe)")
    parser.add_argument("--correct-share", type=float, default=None, help="share of already-correct image_1")
    parser.add_argument(
        "--config", default=None, help="ShapesDataConfig recipe YAML (keys: world, num_prompts, ...)"
    )
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. world.layout=free")
    args = parser.parse_args(argv)
    overrides = list(args.overrides)
    for key, value in (
        ("num_prompts", args.num_prompts),
        ("seed", args.seed),
        ("correct_share", args.correct_share),
    ):
        if value is not None:
            overrides.append(f"{key}={value}")
    try:
        cfg = load_config(ShapesDataConfig, args.config, overrides)
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    print(json.dumps(build_shapes_data(args.out, cfg), indent=2))


if __name__ == "__main__":
    main()
