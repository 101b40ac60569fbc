"""RL benchmark: `python -m experiments.bench rl [options]`.

Runs a few GRPO steps (`GRPOTrainer`, the real driver; `--algo dpo`: `DPOTrainer`, best vs worst pair per group;
`--algo nft`: `NFTTrainer`, ODE rollouts and DiffusionNFT on the images) from a random checkpoint written to a
temp dir (or `--ckpt-dir`, kept and reused by later runs) (every
weight random so every term is non-trivial; fixed-length thinks) and reports the time split between rollout,
reward wait, update and weight sync, trajectories/s, and the first inner step's max |ratio - 1| (GRPO) or the
pairs and update passes per step (DPO).
Default: the tiny preset on CPU with the `shapes` reward. `--engine ray` measures the Ray rollout path.

GPU: `--preset bagel-7b-mot --layers N --resolution 512 --lora` builds BAGEL-7B-MoT dims (N of the 28 decoder
layers, full vocabulary, SigLIP, random FLUX AE) in bf16 on the GPU, saves it, and trains from it with the
rollout on the same GPU (`--engine local`, or `--engine ray --weight-sync cuda_ipc` for a colocated worker).
The reward is `mean_brightness` (a random model fails every task reward, so no group would have a signal).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import tempfile
from pathlib import Path

import torch

__all__ = ["main"]


def _checkpoint(root: Path, preset: str, layers: int) -> Path:
    from experiments.bench.random_model import random_model
    from irg_rl.inference.components import random_vae
    from irg_rl.models.checkpoint import save_checkpoint
    from irg_rl.models.configs import bagel_7b_mot, tiny
    from irg_rl.models.tokenizer import special_token_ids, train_tokenizer
    from irg_rl.tasks.shapes import ShapesWorldConfig
    from irg_rl.tasks.shapes.task import shapes_texts

    world = ShapesWorldConfig()
    tok = train_tokenizer(shapes_texts(world), vocab_size=1024)
    if preset == "tiny":
        cfg, device, dtype = tiny(vocab_size=len(tok)), torch.device("cpu"), torch.float32
    else:
        cfg, device, dtype = bagel_7b_mot(), torch.device("cuda"), torch.bfloat16
        cfg.llm.num_hidden_layers = layers
    model = random_model(cfg, special_token_ids(tok), device, dtype)
    vae = random_vae(cfg, dataclasses.asdict(world), device, dtype)
    path = save_checkpoint(model, root / "ckpt", tokenizer=tok, vae=vae)
    del model, vae
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return path


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="bench.py rl", description=__doc__)
    ap.add_argument("--algo", default="grpo", choices=["grpo", "dpo", "nft"])
    ap.add_argument(
        "--ckpt-dir", default=None, help="write the random checkpoint here, or reuse the one already there"
    )
    ap.add_argument("--steps", type=int, default=3, help="RL steps measured (after one warm-up step)")
    ap.add_argument("--prompts", type=int, default=4, help="prompts per step")
    ap.add_argument("--group", type=int, default=8, help="trajectories per prompt (G)")
    ap.add_argument("--engine", default="local", choices=["local", "ray"])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--lora", action="store_true", help="LoRA r=16 on the generation expert instead of full FT"
    )
    ap.add_argument("--preset", default="tiny", choices=["tiny", "bagel-7b-mot"])
    ap.add_argument("--layers", type=int, default=4, help="bagel-7b-mot: decoder layers built (of 28)")
    ap.add_argument("--resolution", type=int, default=None, help="image side (tiny 32, bagel default 512)")
    ap.add_argument("--denoise-steps", type=int, default=None, help="denoising steps (tiny 20, bagel 24)")
    ap.add_argument(
        "--think-tokens", type=int, nargs=2, default=[48, 96], help="turn-1 and turn-2 think length"
    )
    ap.add_argument(
        "--weight-sync", default="object_store", choices=["object_store", "collective", "cuda_ipc"]
    )
    ap.add_argument(
        "--grad-checkpointing", action="store_true", help="recompute layer activations in the update"
    )
    ap.add_argument("--micro-batch", type=int, default=0, help="trajectories per update forward (0 = all)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    gpu = args.preset != "tiny"
    if gpu and not torch.cuda.is_available():
        raise SystemExit("--preset bagel-7b-mot needs a GPU (random bf16 weights are built on it)")
    torch.set_num_threads(args.threads)
    from irg_rl.config import config_from_dict
    from irg_rl.train.rl.dpo import DPOTrainer
    from irg_rl.train.rl.grpo import GRPOTrainer
    from irg_rl.train.rl.nft import NFTTrainer
    from irg_rl.train.rl.recipe import DPORecipe, GRPORecipe, NFTRecipe

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.ckpt_dir) if args.ckpt_dir else Path(tmp)
        done = root / "ckpt" / "DONE"
        if done.exists() and done.read_text() == f"{args.preset} {args.layers}":
            ck = root / "ckpt"
        else:
            ck = _checkpoint(root, args.preset, args.layers)
            done.write_text(f"{args.preset} {args.layers}")
        t1, t2 = args.think_tokens
        sampling = {"system_prompt": "", "stop_strings": [],
                    "turn1": {"temperature": 1.0, "max_think_tokens": t1},
                    "turn2": {"temperature": 1.0, "max_think_tokens": t2}}  # fmt: skip
        if gpu:
            sampling.update(resolution=args.resolution or 512, steps=args.denoise_steps or 24)
        elif args.resolution or args.denoise_steps:
            sampling.update(
                {k: v for k, v in (("resolution", args.resolution), ("steps", args.denoise_steps)) if v}
            )
        d = {
            "model": {"source": str(ck)},
            "sampling": sampling,
            "prompts": {"per_step": args.prompts, "num_train": 200},
            "rollout": {"engine": args.engine, "num_workers": args.workers, "threads": max(1, args.threads // args.workers),
                        "cpus_per_worker": 1, "weight_sync": args.weight_sync},
            "train": {"output_dir": str(Path(tmp) / "out"), "max_steps": args.steps + 1, "save_every": 0,
                      "save_trajectories_every": 0, "image_grid_every": 0, "resume_from": "never",
                      "grad_checkpointing": args.grad_checkpointing, "micro_batch": args.micro_batch},
            "eval": {"at_start": False, "num_prompts": 0},
            "log": {"wandb_mode": "disabled", "progress_bar": False},
        }  # fmt: skip
        if gpu:
            d["rewards"] = {"image": [{"name": "experiments.bench.brightness_reward:MeanBrightnessReward"}]}
            if args.engine == "ray":
                d["rollout"].update(gpus_per_worker=0.5 / args.workers, colocate=True)
        if args.lora:
            d["freeze"] = {
                "lora": {
                    "enabled": True,
                    "r": 16,
                    "target_modules": r".*(q_proj|k_proj|v_proj|o_proj)_moe_gen",
                }
            }
        if args.algo == "grpo":
            d["grpo"] = {"group_size": args.group, "inner_updates": 1}
            sampling["sde_window_size"] = 2
            trainer = GRPOTrainer(config_from_dict(GRPORecipe, d))
        elif args.algo == "nft":
            d["grpo"] = {"group_size": args.group, "inner_updates": 1}
            sampling["sde_window_size"] = 0
            d["nft"] = {"timesteps_per_image": 2}
            trainer = NFTTrainer(config_from_dict(NFTRecipe, d))
        else:
            sampling["sde_window_size"] = 2
            d["pairs"] = {"group_size": args.group, "inner_updates": 1}
            d["dpo"] = {"beta_text": 0.1, "beta_flow": 200.0}
            trainer = DPOTrainer(config_from_dict(DPORecipe, d))
        hist = trainer.run()[1:]  # drop the warm-up step
        peak = torch.cuda.max_memory_allocated() / 2**30 if gpu else None
        trainer_spec = trainer.setup.rollouts.spec
    keys = ("time/rollout_s", "time/reward_wait_s", "time/reward_compute_s", "time/update_s", "time/sync_s",
            "time/step_s", "trajectories_per_s")  # fmt: skip
    mean = {k: sum(h[k] for h in hist) / len(hist) for k in keys}
    if args.algo in ("grpo", "nft"):
        for k in ("ratio_check/text_max_dev", "ratio_check/flow_max_dev"):
            mean[k] = max(h.get(k, float("nan")) for h in hist)
    else:  # a step with no pair has no passes
        for k in ("pairs/num", "update/passes"):
            mean[k] = sum(h.get(k, 0.0) for h in hist) / len(hist)
    where = (
        f"{torch.cuda.get_device_name()} (peak {peak:.1f} GiB)"
        if gpu
        else f"CPU {platform.processor() or platform.machine()} ({args.threads} threads)"
    )
    model = (
        "tiny preset"
        if not gpu
        else f"BAGEL-7B-MoT dims ({args.layers} of 28 layers) at {sampling['resolution']}^2"
    )
    head = (
        f"rl bench: {model}, {args.algo.upper()} {args.prompts}x{args.group} trajectories/step, engine={args.engine} "
        f"workers={args.workers} weight_sync={args.weight_sync}, rollout on {trainer_spec.device} "
        f"{trainer_spec.dtype}, {'LoRA r16 gen expert' if args.lora else 'full FT'}, think<={t1}/{t2} tokens, "
        f"micro_batch {args.micro_batch}{', grad checkpointing' if args.grad_checkpointing else ''}, "
        f"{sampling.get('steps', 20)} steps, {'ODE + 2 noised copies per image' if args.algo == 'nft' else 'SDE window 2'}, {where}, mean of {len(hist)} steps"
    )
    print(head)
    print("| rollout s | reward wait s (compute s, overlapped) | update s | sync s | step s | traj/s |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {mean['time/rollout_s']:.2f} | {mean['time/reward_wait_s']:.2f} ({mean['time/reward_compute_s']:.2f}) "
        f"| {mean['time/update_s']:.2f} | {mean['time/sync_s']:.3f} | {mean['time/step_s']:.2f} "
        f"| {mean['trajectories_per_s']:.2f} |"
    )
    if args.algo in ("grpo", "nft"):
        print(
            f"first inner step max |ratio - 1|: text {mean['ratio_check/text_max_dev']:.2e}, "
            f"flow {mean['ratio_check/flow_max_dev']:.2e}"
        )
    else:
        print(f"pairs per step {mean['pairs/num']:.1f}, passes per inner update {mean['update/passes']:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"config": head, "peak_gib": peak, **mean}, indent=2))
