"""Which latent codec learns faster: `python -m experiments.bench codec [--quick] [--sft-steps N] ...`.

The embedded ShapesWorld default gives each 32 px image 16 latent tokens through one of two codecs: the grid
codec (fixed, exact on grid-laid scenes; the `tiny` preset's default) or the tiny conv autoencoder (trained here on
rendered ShapesWorld images by `train_tiny_ae`). The bench
1. renders training images (targets and corruptions of training prompts), trains the tiny AE for a bounded time,
   and reports each codec's ceiling: reconstruction MSE and the exact scorer's strict / partial accuracy of
   decode(encode(x)) for images of held-out prompts (what a perfect generator could reach through that codec);
2. builds two starting checkpoints that differ only in the VAE (same random init seed, same tokenizer), saved and
   re-loaded through `save_checkpoint` / `load_checkpoint` (checked: identical weights, the AE round-trips);
3. runs the same SFT (recipe, data, seed, steps) from each start and evaluates held-out generation (EMA weights,
   no-think and IRG turn-1 images, strict and partial) at a few points; reports seconds per step and tokens/s.
Results are printed as JSON (and written to --out); `markdown_tables(result)` renders the docs tables.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

CODECS = ("grid", "tiny")
GENERATION_ONLY = {  # the modes that train image generation (IRG turn 1 and turn 2); understanding modes off
    "initial_thinking_understanding_learning": 0.0,
    "initial_thinking_generation_learning": 0.0,
    "initial_full_learning": 1.0,
    "improving_thinking_understanding_learning": 0.0,
    "improving_thinking_generation_learning": 0.0,
    "improving_full_learning": 1.0,
}


def render_images(
    world, num_prompts: int, split: str, seed: int, corruptions: bool
) -> tuple[np.ndarray, list]:
    """uint8 [N, H, W, 3] renderings of `num_prompts` prompts of `split` (plus one corruption each) and metas."""
    from irg_rl.tasks.shapes import corrupt, generate_prompts, layout_scene, render_scene

    images, metas = [], []
    for i, meta in enumerate(generate_prompts(world, num_prompts, seed=seed, split=split)):
        rng = np.random.default_rng([seed, i])
        scene = layout_scene(meta, world, rng)
        images.append(render_scene(scene, world))
        metas.append(meta)
        if corruptions:
            wrong, _ = corrupt(meta, world, rng, scene=scene)
            images.append(render_scene(wrong, world))
            metas.append(meta)
    return np.stack(images), metas


@torch.no_grad()
def codec_ceiling(codec, images: np.ndarray, metas: list[dict], world) -> dict:
    """Reconstruction MSE (images in [-1, 1]) and scorer accuracy of decode(encode(images)) [N, H, W, 3]."""
    from irg_rl.tasks.shapes import score_image

    x = torch.from_numpy(images)
    latents = codec.encode(x)
    rec = codec.decode(latents)
    mse = float(((rec.float() - x.float()) / 127.5).pow(2).mean())
    scores = [score_image(r.numpy(), m, world) for r, m in zip(rec, metas, strict=True)]
    return {
        "images": len(metas),
        "latent_shape": list(latents.shape[1:]),
        "latent_std": float(latents.float().std()),
        "mse": mse,
        "strict": float(np.mean([s.strict for s in scores])),
        "partial": float(np.mean([s.partial for s in scores])),
    }


def _sft_recipe(args, data: Path, source: str, out: Path):
    from irg_rl.config import load_config
    from irg_rl.train.sft.config import SFTRecipe

    overrides = [
        f"model.source={source}",
        f"data.root={data}",
        f"data.samples_per_micro_batch={args.batch}",
        f"train.output_dir={out}",
        "train.resume_from=never",
        "train.save_every=0",
        f"train.max_steps={args.sft_steps}",
        f"train.seed={args.seed}",
        f"train.cpu_threads={args.threads}",
        "log.wandb_mode=disabled",
        "log.progress_bar=false",
    ]
    if args.modes == "generation":
        overrides += [f"data.mode_weights.{m}={w}" for m, w in GENERATION_ONLY.items()]
    return load_config(SFTRecipe, args.recipe, overrides)


def build_starts(args, data: Path, tiny_ae, root: Path) -> dict:
    """Two checkpoint directories `root/{grid,tiny}` that differ only in the VAE; checks the round trip."""
    from irg_rl.models.checkpoint import load_checkpoint, save_checkpoint
    from irg_rl.train.sft.setup import build_components

    comp = build_components(_sft_recipe(args, data, "tiny", root / "unused"))  # random init, seed, tokenizer
    if comp.vae.kind != "grid" or comp.config.vae_kind != "grid":
        raise RuntimeError(f"the tiny preset no longer defaults to the grid codec ({comp.config.vae_kind})")
    save_checkpoint(comp.model, root / "grid", comp.tokenizer, comp.vae)
    twin = copy.deepcopy(comp.model)
    twin.config.vae_kind = "tiny"
    if (tiny_ae.latent_channels, tiny_ae.downsample) != (
        comp.config.vae_latent_channels,
        comp.config.vae_downsample,
    ):
        raise ValueError(
            f"tiny AE latents ({tiny_ae.latent_channels} ch, {tiny_ae.downsample}x down) do not match the preset "
            f"({comp.config.vae_latent_channels} ch, {comp.config.vae_downsample}x down)"
        )
    save_checkpoint(twin, root / "tiny", comp.tokenizer, tiny_ae)
    grid, tiny = load_checkpoint(root / "grid", torch.float32), load_checkpoint(root / "tiny", torch.float32)
    sd_g, sd_t = grid.model.state_dict(), tiny.model.state_dict()
    probe = torch.from_numpy(render_images(comp.vae.world, 8, "heldout", 7, corruptions=False)[0])
    with torch.no_grad():
        ae_same = bool(
            torch.equal(tiny.vae.decode(tiny.vae.encode(probe)), tiny_ae.decode(tiny_ae.encode(probe)))
        )
    out = {
        "grid": str(root / "grid"),
        "tiny": str(root / "tiny"),
        "params": sum(v.numel() for v in sd_g.values()),
        "identical_model_weights": sd_g.keys() == sd_t.keys()
        and all(torch.equal(sd_g[k], sd_t[k]) for k in sd_g),
        "same_vocab": len(grid.tokenizer) == len(tiny.tokenizer),
        "vae_kinds": [grid.vae.kind, tiny.vae.kind],
        "tiny_ae_round_trip": ae_same,
    }
    if not (out["identical_model_weights"] and out["same_vocab"] and ae_same):
        raise RuntimeError(f"the two starting checkpoints differ in more than the VAE: {out}")
    return out


def _eval_setup(args, world):
    """(sampling, prompts, reward, reward_info, settings) of the held-out generation eval."""
    from irg_rl.config import load_config
    from irg_rl.eval.eval_config import EvalRecipe
    from irg_rl.eval.prompt_sets import load_prompt_set
    from irg_rl.eval.scoring import build_eval_reward, describe_reward, resolve_reward_spec

    recipe = load_config(
        EvalRecipe,
        args.eval_recipe,
        [
            f"eval.images_per_prompt={args.eval_images}",
            "eval.modes=[no_think,think]",
            "eval.report=false",
            f"eval.batch_size={args.eval_batch}",
            *args.eval_set,
        ],
    )
    recipe.task.options = dataclasses.asdict(world)
    recipe.validate()
    prompts = load_prompt_set("shapes", None, args.eval_prompts, **dataclasses.asdict(world))
    spec = resolve_reward_spec("shapes", recipe.reward)
    spec.args.setdefault("world", dataclasses.asdict(world))
    reward, spec = build_eval_reward("shapes", spec)
    return recipe.sampling, prompts, reward, describe_reward(reward, spec), recipe.eval


def run_sft(args, data: Path, start: str, ev, out: Path) -> dict:
    """Train from checkpoint `start`, evaluating the EMA weights at `args.eval_at` steps."""
    from irg_rl.eval.runner import evaluate
    from irg_rl.train.sft.trainer import SFTTrainer

    trainer = SFTTrainer(_sft_recipe(args, data, start, out / "run"))
    comp, bagel = trainer.components, trainer.bagel
    points, losses, tokens, train_s, train_cpu = [], [], 0, 0.0, 0.0
    for step in range(1, args.sft_steps + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        stats = trainer.train_step()
        train_s += time.perf_counter() - t0
        train_cpu += time.process_time() - c0
        tokens += stats["tokens"]
        losses.append(stats["mse"])
        if step not in args.eval_at:
            continue
        bagel.eval()
        t0 = time.perf_counter()
        with trainer.ema.swapped_into(bagel):
            parts = SimpleNamespace(model=bagel, tokenizer=comp.tokenizer, vae=comp.vae, origin=start)
            res = evaluate(parts, *ev, out / f"eval-{step}", prompt_set="shapes", log=lambda _: None)
        bagel.train()
        turns = res["summary"]["turns"]
        _log(
            f"{comp.config.vae_kind} step {step}: no-think strict {turns['no_think']['strict']:.3f}, "
            f"turn-1 strict {turns['think']['strict']:.3f} ({train_s:.0f} s training so far)"
        )
        points.append(
            {
                "step": step,
                "eval_seconds": time.perf_counter() - t0,
                "recent_mse_loss": float(np.mean(losses[-10:])),
                **{f"{t}_{m}": turns[t][m] for t in ("no_think", "think") for m in ("strict", "partial")},
                "per_category_think_strict": {
                    c: s["turns"]["think"]["strict"] for c, s in res["per_category"].items()
                },
            }
        )
    return {
        "steps": args.sft_steps,
        "seconds_per_step": train_s / args.sft_steps,
        # process CPU time per step: less sensitive than wall time to other jobs on the machine
        "cpu_seconds_per_step": train_cpu / args.sft_steps,
        "tokens_per_s": tokens / train_s,
        "tokens_per_step": tokens / args.sft_steps,
        "evals": points,
    }


def _log(msg: str) -> None:
    print(f"[bench codec] {msg}", file=sys.stderr, flush=True)


def run(args) -> dict:
    from irg_rl.config import load_config
    from irg_rl.models.configs import tiny as tiny_preset
    from irg_rl.models.vae.tiny_ae import train_tiny_ae
    from irg_rl.tasks.shapes import ShapesWorldConfig
    from irg_rl.tasks.shapes.data_builder import ShapesDataConfig, build_shapes_data
    from irg_rl.tasks.shapes.grid_codec import GridCodec

    torch.set_num_threads(args.threads)
    latent_channels = tiny_preset().vae_latent_channels
    stages: dict[str, float] = {}
    t_start = last = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal last
        now = time.perf_counter()
        stages[name], last = now - last, now
        _log(f"{name}: {stages[name]:.1f} s")

    with tempfile.TemporaryDirectory(prefix="bench-codec-") as tmp_name:
        tmp = Path(tmp_name)
        data = Path(args.data) if args.data else tmp / "data"
        if not (data / "world.yaml").is_file():
            build_shapes_data(data, ShapesDataConfig(num_prompts=args.data_prompts, preview_rows=1))
        world = load_config(ShapesWorldConfig, data / "world.yaml")  # the world SFT's grid codec is built for
        train_x, _ = render_images(world, args.ae_prompts, "train", args.seed, corruptions=True)
        held_x, held_m = render_images(
            world, args.ceiling_images, "heldout", args.seed + 1, corruptions=False
        )
        lap("data_and_render")
        tiny_ae, ae_stats = train_tiny_ae(
            torch.from_numpy(train_x),
            latent_channels=latent_channels,
            steps=args.ae_steps,
            batch_size=64,
            seed=args.seed,
            max_seconds=args.ae_seconds,
        )
        lap("tiny_ae_training")
        codecs = {"grid": GridCodec(world, dim=latent_channels), "tiny": tiny_ae}
        ceiling = {k: codec_ceiling(c, held_x, held_m, world) for k, c in codecs.items()}
        ceiling["tiny"]["train"] = {**ae_stats, "images": len(train_x)}
        lap("ceilings")
        starts = build_starts(args, data, tiny_ae, tmp / "starts")
        ev = _eval_setup(args, world)
        lap("starts")
        sft = {}
        for k in CODECS:
            sft[k] = run_sft(args, data, starts[k], ev, tmp / f"sft-{k}")
            lap(f"sft_{k}")
    return {
        "machine": f"cpu, {args.threads} torch thread(s)",
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "ceiling": ceiling,
        "starts": {k: v for k, v in starts.items() if k not in CODECS},
        "sft": sft,
        "stage_seconds": stages,
        "total_seconds": time.perf_counter() - t_start,
    }


def _f(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def markdown_tables(result: dict) -> str:
    """The ceiling and learning-curve tables of a result, as markdown."""
    c = result["ceiling"]
    lines = [
        "| codec | held-out images | recon. MSE | ceiling strict | ceiling partial |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {k} | {c[k]['images']} | {c[k]['mse']:.4f} | {_f(c[k]['strict'])} | {_f(c[k]['partial'])} |"
        for k in CODECS
    ]
    lines += [
        "",
        "| codec | step | no-think strict | no-think partial | turn-1 strict | turn-1 partial | MSE loss (last 10) |",
        "|---|---|---|---|---|---|---|",
    ]
    for k in CODECS:
        for p in result["sft"][k]["evals"]:
            cells = [p[f"{t}_{m}"] for t in ("no_think", "think") for m in ("strict", "partial")]
            lines.append(
                f"| {k} | {p['step']} | "
                + " | ".join(_f(x) for x in cells)
                + f" | {p['recent_mse_loss']:.3f} |"
            )
    lines += [
        "",
        "| codec | s/step (wall) | CPU s/step | tokens/s (wall) | tokens/step |",
        "|---|---|---|---|---|",
    ]
    for k in CODECS:
        s = result["sft"][k]
        lines.append(
            f"| {k} | {s['seconds_per_step']:.3f} | {s['cpu_seconds_per_step']:.3f} | {s['tokens_per_s']:.0f} | {s['tokens_per_step']:.0f} |"
        )
    return "\n".join(lines)


QUICK = {  # < 1 minute: exercises every stage, measures nothing meaningful
    "data_prompts": 24,
    "ae_prompts": 64,
    "ae_seconds": 3.0,
    "ae_steps": 40,
    "ceiling_images": 12,
    "sft_steps": 2,
    "eval_at": [1, 2],
    "batch": 4,
    "eval_prompts": 3,
    "eval_images": 1,
    "eval_set": ["sampling.steps=4", "sampling.turn1.max_think_tokens=16"],
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench.py codec", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="tiny settings for a smoke test (< 1 min)")
    p.add_argument(
        "--data", default=None, help="ShapesWorld data folder to reuse (built in a temp dir if absent)"
    )
    p.add_argument("--data-prompts", type=int, default=400, help="conversations per mode when building data")
    p.add_argument(
        "--ae-prompts", type=int, default=2000, help="training prompts rendered for the tiny AE (x2 images)"
    )
    p.add_argument("--ae-seconds", type=float, default=240.0, help="tiny-AE training time limit")
    p.add_argument("--ae-steps", type=int, default=1500, help="tiny-AE training step limit (batch 64)")
    p.add_argument("--ceiling-images", type=int, default=200, help="held-out-prompt images for the ceilings")
    p.add_argument(
        "--recipe", default="recipes/shapes/sft_stage1.yaml", help="SFT recipe run from each start"
    )
    p.add_argument(
        "--modes",
        choices=("stage1", "generation"),
        default="generation",
        help="generation: the two full modes only (as sft_stage2.yaml); stage1: the recipe's six-mode mix",
    )
    p.add_argument("--sft-steps", type=int, default=300, help="SFT optimiser steps per codec")
    p.add_argument(
        "--eval-at", type=int, nargs="+", default=[100, 200, 300], help="steps at which to evaluate"
    )
    p.add_argument("--batch", type=int, default=32, help="conversations per SFT step")
    p.add_argument(
        "--eval-recipe", default="recipes/shapes/eval.yaml", help="eval recipe (sampling settings)"
    )
    p.add_argument("--eval-prompts", type=int, default=None, help="held-out prompts evaluated (default: all)")
    p.add_argument("--eval-images", type=int, default=2, help="images per held-out prompt")
    p.add_argument("--eval-batch", type=int, default=50, help="prompts per engine call")
    p.add_argument(
        "--eval-set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="dotted overrides of the eval recipe, e.g. sampling.steps=10",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of model init, SFT, AE and rendered images")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core VM)")
    p.add_argument("--out", default=None, help="also write the JSON result here")
    args = p.parse_args(argv)
    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v)
    bad = [s for s in args.eval_at if not 1 <= s <= args.sft_steps]
    if bad:
        p.error(f"--eval-at {bad}: steps must lie in 1..--sft-steps ({args.sft_steps})")
    return args


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    result = run(args)
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)
    print(markdown_tables(result), file=sys.stderr)
