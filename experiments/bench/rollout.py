"""Rollout benchmark: `python -m experiments.bench rollout [options]`.

Measures the batched IRG engine (think tokens/s, denoising steps/s, trajectories/s, peak memory) and, side by
side on the same model and seeds, the research code's approach (`research_baseline`: batch-1 text sampling, one
forward per CFG branch). Default: the tiny preset on CPU with a random model (fixed-length thinks: an untrained
model rarely stops early). `--preset bagel-7b-mot --resolution 512|1024 --layers N` builds BAGEL-7B-MoT dims with
random bf16 weights directly on the GPU (N decoder layers; the full model has 28).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import resource

import torch

from experiments.bench.flops import PEAK_BF16_FLOPS, trajectory_flops
from experiments.bench.random_model import random_model
from irg_rl.inference.components import random_vae
from irg_rl.inference.engine import IRGEngine
from irg_rl.inference.engine_config import IRGSamplingConfig, tiny_sampling
from irg_rl.inference.research_baseline import research_generate
from irg_rl.models.configs import PRESETS
from irg_rl.models.tokenizer import special_token_ids, train_tokenizer
from irg_rl.tasks.shapes import ShapesWorldConfig, generate_prompts
from irg_rl.tasks.shapes.task import shapes_texts

__all__ = ["main"]


def _build(args, device: torch.device):
    world = ShapesWorldConfig()
    sampling = tiny_sampling() if args.preset == "tiny" else IRGSamplingConfig()
    tok = train_tokenizer(shapes_texts(world, [sampling.system_prompt]), vocab_size=1024)
    cfg = PRESETS[args.preset]()
    cfg.llm.vocab_size = max(cfg.llm.vocab_size, len(tok))
    if args.layers:
        cfg.llm.num_hidden_layers = args.layers
    dtype = torch.bfloat16 if args.preset != "tiny" else torch.float32
    model = random_model(cfg, special_token_ids(tok), device, dtype)
    vae = random_vae(cfg, dataclasses.asdict(world), device, dtype)
    sampling.resolution = args.resolution or sampling.resolution
    sampling.steps = args.steps or sampling.steps
    for turn in (sampling.turn1, sampling.turn2):
        turn.temperature = 1.0
        turn.max_think_tokens = args.think_tokens or turn.max_think_tokens
    sampling.stop_strings = []  # fixed-length thinks: comparable work per trajectory
    sampling.sde_window_start = 0
    return model.eval(), tok, vae, sampling


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _row(name: str, batch, device) -> dict:
    s = batch.stats
    think_s = sum(v for k, v in s.items() if k.startswith("think_") and k.endswith("_s"))
    image_s = sum(v for k, v in s.items() if k.startswith("image_") and k.endswith("_s"))
    return {
        "approach": name,
        "trajectories": int(s["trajectories"]),
        "total_s": s["total_s"],
        "s_per_trajectory": s["total_s"] / s["trajectories"],
        "trajectories_per_s": s["trajectories"] / s["total_s"],
        "think_tokens_per_s": s["think_tokens"] / think_s if think_s else None,
        "denoise_steps_per_s": s["denoise_steps"] / image_s if image_s else None,
        "peak_mem_mb": _peak_mb(device),
    }


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="bench.py rollout", description=__doc__)
    ap.add_argument("--preset", default="tiny", choices=["tiny", "bagel-7b-mot"])
    ap.add_argument("--resolution", type=int, default=None, help="image side (tiny: 32; bagel: 512 or 1024)")
    ap.add_argument(
        "--layers", type=int, default=None, help="decoder layers (bagel-7b-mot: fewer than 28 to fit)"
    )
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--samples", type=int, default=4, help="samples per prompt (G)")
    ap.add_argument("--steps", type=int, default=None, help="denoising steps per image")
    ap.add_argument("--think-tokens", type=int, default=None, help="think tokens per round")
    ap.add_argument("--mode", default="sde", choices=["euler", "sde"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument(
        "--baseline-trajectories", type=int, default=None, help="run the baseline on fewer (slow)"
    )
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.preset != "tiny" and torch.cuda.is_available() else "cpu")
    if args.preset != "tiny" and device.type != "cuda":
        raise SystemExit("--preset bagel-7b-mot needs a GPU (random bf16 weights are built on it)")
    model, tok, vae, sampling = _build(args, device)
    engine = IRGEngine(model, tok, vae, sampling)
    prompts = [m["prompt"] for m in generate_prompts(ShapesWorldConfig(), args.prompts, seed=1)]
    engine.generate(prompts[:1], samples_per_prompt=1, mode=args.mode)  # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    rows = [
        _row(
            "batched engine",
            engine.generate(prompts, samples_per_prompt=args.samples, mode=args.mode),
            device,
        )
    ]
    if not args.skip_baseline:
        n = args.baseline_trajectories
        bp, bg = (
            (prompts, args.samples)
            if n is None
            else (prompts[: max(1, n // args.samples)], min(n, args.samples))
        )
        rows.append(_row("research baseline", research_generate(engine, bp, None, bg, args.mode), device))
        rows[0]["speedup_per_trajectory"] = rows[1]["s_per_trajectory"] / rows[0]["s_per_trajectory"]
    params = sum(p.numel() for p in model.parameters())
    head = (
        f"rollout bench: preset={args.preset} layers={model.config.llm.num_hidden_layers} params={params / 1e6:.1f}M "
        f"res={sampling.resolution} steps={sampling.steps} think<= {sampling.turn1.max_think_tokens}/"
        f"{sampling.turn2.max_think_tokens} tokens, {args.prompts}x{args.samples} trajectories, mode={args.mode}, "
        f"device={device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor()}, "
        f"{args.threads} threads)"
    )
    print(head)
    print("| approach | traj | s/traj | traj/s | think tok/s | denoise steps/s | peak mem MB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        tts = f"{r['think_tokens_per_s']:.0f}" if r["think_tokens_per_s"] else "-"
        dss = f"{r['denoise_steps_per_s']:.0f}" if r["denoise_steps_per_s"] else "-"
        print(
            f"| {r['approach']} | {r['trajectories']} | {r['s_per_trajectory']:.3f} | {r['trajectories_per_s']:.2f} "
            f"| {tts} | {dss} | {r['peak_mem_mb']:.0f} |"
        )
    # compute bound of the measured work (LLM matmuls + attention; docs/benchmarks_rollout.md has the formula)
    sys_len = len(tok.encode(sampling.system_prompt)) if sampling.system_prompt else 0
    prompt_len = sum(len(tok.encode(p)) for p in prompts) / len(prompts)
    think = (sampling.turn1.max_think_tokens, sampling.turn2.max_think_tokens)
    fl = trajectory_flops(model.config, sampling, sys_len, round(prompt_len), think)
    achieved = fl["total"] * rows[0]["trajectories_per_s"]
    rows[0].update(
        flops_per_trajectory=fl["total"],
        achieved_tflops=achieved / 1e12,
        bound_trajectories_per_s=PEAK_BF16_FLOPS / fl["total"],
    )
    print(
        f"FLOPs per trajectory {fl['total'] / 1e12:.2f} T (linear {fl['linear'] / 1e12:.2f}, attention "
        f"{fl['attention'] / 1e12:.2f}, LM head {fl['lm_head'] / 1e12:.3f}); batched engine {achieved / 1e12:.1f} "
        f"TFLOP/s; bf16 bound at 989 TFLOP/s: {PEAK_BF16_FLOPS / fl['total']:.2f} traj/s "
        f"(engine at {achieved / PEAK_BF16_FLOPS:.1%} of it)"
    )
    if "speedup_per_trajectory" in rows[0]:
        print(f"speedup per trajectory (baseline / engine): {rows[0]['speedup_per_trajectory']:.1f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": head, "rows": rows}, f, indent=2)
