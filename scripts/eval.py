"""Evaluate per turn: `python scripts/eval.py --config RECIPE --prompts SET [--prompts-file PATH] [--out DIR] [k=v ...]`."""

from irg_rl.eval.cli import main

if __name__ == "__main__":
    main()
