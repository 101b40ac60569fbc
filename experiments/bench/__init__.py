"""Benchmarks run by `experiments/bench <name>`; each module exposes `main(argv: list[str]) -> None`."""

BENCHMARKS = ("rollout", "sft", "rl", "rewards", "codec", "copy")
