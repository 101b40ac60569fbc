"""Time and profile KV-cached decoding and denoising of the rollout bench's tiny model on the CPU.

`python -m experiments.profile_decode [--batch 16] [--context 96] [--tokens 256] [--steps 20] [--threads 2]
[--repeats 3] [--profile]`: prefills `--context` tokens per sample (ragged rows), then decodes `--tokens` tokens
one at a time and runs `--steps` `predict_velocity` calls against the resulting cache. Prints per-call wall and
process CPU time (best of `--repeats` fresh runs; CPU time is less disturbed by other jobs on a shared machine)
and, with `--profile`, the share of profiled self CPU time of the top ops (aten::cat included).
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
from torch.profiler import ProfilerActivity, profile

from experiments.bench.rollout import _build
from irg_rl.inference.context import latent_grid


def _shares(prof, top: int = 8) -> list[tuple[str, float]]:
    """(op name, share of the summed self CPU time) for the top ops, plus aten::cat and the cache writes."""
    avg = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in avg)
    rows = sorted(avg, key=lambda e: e.self_cpu_time_total, reverse=True)
    keep = {e.key for e in rows[:top]} | {"aten::cat", "aten::copy_", "aten::index_put_"}
    return [(e.key, e.self_cpu_time_total / total) for e in rows if e.key in keep]


def _run(model, args, grid, prof: bool) -> dict[str, tuple[float, float, object]]:
    """One fresh cache: {phase: (wall s/call, cpu s/call, profiler or None)}."""
    V, B = model.config.llm.vocab_size, args.batch
    g = torch.Generator().manual_seed(0)
    P, n = model.config.patch_latent_dim, grid[0] * grid[1]
    cache = model.new_cache(B)
    # ragged prompts, as in the engine (prompts differ in length)
    model.prefill_text(cache, [list(range(5, 5 + args.context - (b % 4))) for b in range(B)], logits=None)
    toks = torch.randint(5, V, (args.tokens, B, 1), generator=g)
    x_t = torch.randn(B, n, P, generator=g)
    out = {}
    for name, n_calls, call in (
        ("decode", args.tokens, lambda i: model.prefill_text(cache, toks[i])),
        ("denoise", args.steps, lambda i: model.predict_velocity(cache, x_t, 0.5, grid)),
    ):
        ctx = profile(activities=[ProfilerActivity.CPU]) if prof else contextlib.nullcontext()
        with ctx as p:
            t0, c0 = time.perf_counter(), time.process_time()
            for i in range(n_calls):
                call(i)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        out[name] = (wall / n_calls, cpu / n_calls, p)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--context", type=int, default=96)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="also run once under torch.profiler")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bench_args = argparse.Namespace(
        preset="tiny", layers=None, resolution=None, steps=None, think_tokens=None
    )
    model, _, _, sampling = _build(bench_args, torch.device("cpu"))
    grid = latent_grid(model, sampling.resolution)
    with torch.no_grad():
        runs = [_run(model, args, grid, prof=False) for _ in range(args.repeats)]
        for name in ("decode", "denoise"):
            wall = min(r[name][0] for r in runs)
            cpu = min(r[name][1] for r in runs)
            print(
                f"{name}: batch {args.batch}, best of {args.repeats}: {1e3 * wall:.2f} ms/call wall, "
                f"{1e3 * cpu:.2f} ms/call process CPU ({args.threads} threads)"
            )
        if args.profile:
            for name, (wall, _, prof) in _run(model, args, grid, prof=True).items():
                print(f"{name} (profiled, {1e3 * wall:.2f} ms/call): share of self CPU time")
                for key, share in _shares(prof):
                    print(f"  {share:6.1%}  {key}")


if __name__ == "__main__":
    main()
