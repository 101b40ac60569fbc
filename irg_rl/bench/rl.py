"""RL benchmark: `python scripts/bench.py rl [options]`.

Runs a few GRPO steps of the tiny preset on CPU (a random checkpoint written to a temp dir: every weight random
so every term is non-trivial; fixed-length thinks) and reports the time split between rollout, reward wait,
update and weight sync, and trajectories/s. `--engine ray` measures the Ray rollout path instead of the local one.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import torch

__all__ = ["main"]


def _checkpoint(root: Path) -> Path:
    from irg_rl.inference.components import shapes_texts
    from irg_rl.models import BagelModel
    from irg_rl.models.checkpoint import save_checkpoint
    from irg_rl.models.configs import tiny
    from irg_rl.models.tokenizer import special_token_ids, train_tokenizer
    from irg_rl.models.vae.grid_codec import GridCodec
    from irg_rl.tasks.shapes import ShapesWorldConfig

    tok = train_tokenizer(shapes_texts(ShapesWorldConfig(), []), vocab_size=1024)
    cfg = tiny(vocab_size=len(tok))
    torch.manual_seed(0)
    model = BagelModel(cfg, special_token_ids(tok))
    with torch.no_grad():
        torch.nn.init.normal_(model.llm2vae.weight, std=0.02)
    return save_checkpoint(
        model, root / "ckpt", tokenizer=tok, vae=GridCodec(ShapesWorldConfig(), dim=cfg.vae_latent_channels)
    )


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="bench.py rl", description=__doc__)
    ap.add_argument("--steps", type=int, default=3, help="GRPO steps measured (after one warm-up step)")
    ap.add_argument("--prompts", type=int, default=4, help="prompts per step")
    ap.add_argument("--group", type=int, default=8, help="trajectories per prompt (G)")
    ap.add_argument("--engine", default="local", choices=["local", "ray"])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--lora", action="store_true", help="LoRA r=16 on the generation expert instead of full FT"
    )
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from irg_rl.config import config_from_dict
    from irg_rl.train.grpo import GRPOTrainer
    from irg_rl.train.rl_recipe import GRPORecipe

    with tempfile.TemporaryDirectory() as tmp:
        ck = _checkpoint(Path(tmp))
        d = {
            "model": {"source": str(ck)},
            "sampling": {"system_prompt": "", "stop_strings": [],
                         "turn1": {"temperature": 1.0, "max_think_tokens": 48},
                         "turn2": {"temperature": 1.0, "max_think_tokens": 96}},
            "grpo": {"group_size": args.group, "inner_updates": 1, "sde_window_size": 2},
            "prompts": {"per_step": args.prompts, "num_train": 200},
            "rollout": {"engine": args.engine, "num_workers": args.workers, "threads": max(1, args.threads // args.workers),
                        "cpus_per_worker": 1},
            "train": {"output_dir": str(Path(tmp) / "out"), "max_steps": args.steps + 1, "save_every": 0,
                      "save_trajectories_every": 0, "image_grid_every": 0, "resume_from": "never"},
            "eval": {"at_start": False, "num_prompts": 0},
            "log": {"wandb_mode": "disabled", "progress_bar": False},
        }  # fmt: skip
        if args.lora:
            d["freeze"] = {
                "lora": {
                    "enabled": True,
                    "r": 16,
                    "target_modules": r".*(q_proj|k_proj|v_proj|o_proj)_moe_gen",
                }
            }
        trainer = GRPOTrainer(config_from_dict(GRPORecipe, d))
        hist = trainer.run()[1:]  # drop the warm-up step
    keys = ("time/rollout_s", "time/reward_wait_s", "time/reward_compute_s", "time/update_s", "time/sync_s",
            "time/step_s", "trajectories_per_s")  # fmt: skip
    mean = {k: sum(h[k] for h in hist) / len(hist) for k in keys}
    head = (
        f"rl bench: tiny preset, GRPO {args.prompts}x{args.group} trajectories/step, engine={args.engine} "
        f"workers={args.workers}, {'LoRA r16 gen expert' if args.lora else 'full FT'}, think<=48/96 tokens, "
        f"20 steps, SDE window 2, CPU {platform.processor() or platform.machine()} ({args.threads} threads), "
        f"mean of {len(hist)} steps"
    )
    print(head)
    print("| rollout s | reward wait s (compute s, overlapped) | update s | sync s | step s | traj/s |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {mean['time/rollout_s']:.2f} | {mean['time/reward_wait_s']:.2f} ({mean['time/reward_compute_s']:.2f}) "
        f"| {mean['time/update_s']:.2f} | {mean['time/sync_s']:.3f} | {mean['time/step_s']:.2f} "
        f"| {mean['trajectories_per_s']:.2f} |"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"config": head, **mean}, indent=2))
