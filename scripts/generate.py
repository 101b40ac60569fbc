"""Generate with the IRG engine: `python scripts/generate.py --config RECIPE --prompt "..." [--out DIR]`."""

from irg_rl.inference.generate_cli import main

if __name__ == "__main__":
    main()
