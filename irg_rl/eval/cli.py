"""`scripts/eval.py --config RECIPE --prompts SET [--prompts-file PATH] [--out DIR] [key=value ...]`."""

from __future__ import annotations

import argparse
import sys

from irg_rl.config import ConfigError, keys_epilog, load_config, to_yaml
from irg_rl.eval.eval_config import EvalRecipe
from irg_rl.eval.prompt_sets import PromptSetError, prompt_set_names

__all__ = ["main"]


def main(argv: list[str] | None = None) -> dict | None:
    ap = argparse.ArgumentParser(
        description="Generate multi-turn outputs (no-think, think = turn 1, IRG = turn 2) and score every turn.",
        epilog=keys_epilog(EvalRecipe),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--config", default=None, help="EvalRecipe YAML (default: the embedded tiny setting)")
    ap.add_argument(
        "--prompts", default=None, choices=prompt_set_names(), help="prompt set (overrides prompts.set)"
    )
    ap.add_argument(
        "--prompts-file", default=None, help="the benchmark's prompt file or folder (prompts.file)"
    )
    ap.add_argument("--out", default=None, help="output folder (eval.out)")
    ap.add_argument("--print-config", action="store_true", help="print the resolved recipe and exit")
    ap.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. eval.images_per_prompt=4")
    args = ap.parse_args(argv)
    overrides = list(args.overrides)
    if args.prompts is not None:
        overrides.append(f"prompts.set={args.prompts}")
    if args.prompts_file is not None:
        overrides.append(f"prompts.file={args.prompts_file}")
    if args.out is not None:
        overrides.append(f"eval.out={args.out}")
    try:
        recipe = load_config(EvalRecipe, args.config, overrides)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.print_config:
        print(to_yaml(recipe))
        return None
    from irg_rl.eval.report import markdown_table
    from irg_rl.eval.runner import run_eval, summary_columns, summary_row

    try:
        results = run_eval(recipe)
    except (PromptSetError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    print(markdown_table(summary_columns(), [summary_row(results)]))
    for name, path in results["paths"].items():
        print(f"{name}: {path}")
    return results
