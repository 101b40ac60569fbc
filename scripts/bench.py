"""Run a benchmark: `python scripts/bench.py {rollout,sft,rl,rewards,codec,copy} [options]` (results go in docs/benchmarks.md)."""

import importlib
import sys

from irg_rl.bench import BENCHMARKS


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in BENCHMARKS:
        raise SystemExit(f"usage: bench.py {{{','.join(BENCHMARKS)}}} [options]")
    name = sys.argv[1]
    try:
        module = importlib.import_module(f"irg_rl.bench.{name}")
    except ModuleNotFoundError as err:
        raise SystemExit(f"benchmark '{name}' is not available in this build ({err})") from None
    module.main(sys.argv[2:])


if __name__ == "__main__":
    main()
