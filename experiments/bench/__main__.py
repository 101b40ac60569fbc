"""Run a benchmark: `python -m experiments.bench {rollout,sft,rl,rewards,codec,copy} [options]` (results go in docs/benchmarks.md)."""

import importlib
import sys

from experiments.bench import BENCHMARKS


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in BENCHMARKS:
        raise SystemExit(f"usage: python -m experiments.bench {{{','.join(BENCHMARKS)}}} [options]")
    name = sys.argv[1]
    try:
        module = importlib.import_module(f"experiments.bench.{name}")
    except ModuleNotFoundError as err:
        raise SystemExit(f"benchmark '{name}' is not available in this build ({err})") from None
    module.main(sys.argv[2:])


if __name__ == "__main__":
    main()
