"""Experiments on irg-rl (benchmarks, the demo pipeline, probes, seed studies): not installed; run from the repo root
with `python -m experiments.<name>`."""
