"""Benchmarks run by `scripts/bench.py <name>`; each module exposes `main(argv: list[str]) -> None`."""

BENCHMARKS = ("rollout", "sft", "rl", "rewards", "codec", "copy")
