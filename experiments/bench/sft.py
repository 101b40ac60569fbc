"""SFT throughput: `python -m experiments.bench sft [--steps N] [--batch B] [--gpu] [--layers L]`.

CPU (default): the real trainer (`SFTTrainer.train_step`: sampling, packing, grid codec, forward, backward, AdamW,
EMA) on the tiny model and a freshly built ShapesWorld dataset; reports packed tokens/s and peak resident memory.
GPU (`--gpu`): a BAGEL-7B-MoT-dims model with random weights (`--layers` decoder layers, default: as many as fit),
bf16 weights with fp32 master weights and AdamW states (as DeepSpeed bf16), fed synthetic packed sequences shaped like the full modes (text + 1024 px latents = 4096 tokens);
reports tokens/s, peak GPU memory and MFU = 6 * active params * tokens/s / peak bf16 FLOP/s.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

H100_BF16_FLOPS = 989e12


def _cpu(args) -> dict:
    if args.attention == "both":  # identical batches (same data, same seed), one trainer per implementation
        runs = {k: _cpu_run(args, k) for k in ("padded", "per_sample")}
        res = dict(runs["per_sample"])
        res["attention"] = {k: {m: r[m] for m in ("tokens_per_s", "losses")} for k, r in runs.items()}
        res["per_sample_over_padded"] = runs["per_sample"]["tokens_per_s"] / runs["padded"]["tokens_per_s"]
        return res
    return _cpu_run(args, args.attention)


def _cpu_run(args, attention: str) -> dict:
    from irg_rl.config import load_config
    from irg_rl.tasks.shapes.data_builder import ShapesDataConfig, build_shapes_data
    from irg_rl.train.sft.config import SFTRecipe
    from irg_rl.train.sft.trainer import SFTTrainer

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        build_shapes_data(data, ShapesDataConfig(num_prompts=args.prompts, preview_rows=1))
        recipe = load_config(
            SFTRecipe,
            args.recipe,
            [
                f"data.root={data}",
                f"train.output_dir={tmp}/run",
                "train.resume_from=never",
                "train.save_every=0",
                f"data.samples_per_micro_batch={args.batch}",
                "log.wandb_mode=disabled",
                "log.progress_bar=false",
                f"train.packed_attention={attention}",
            ],
        )
        trainer = SFTTrainer(recipe)
        trainer.train_step()  # warm-up (first-touch allocations, tokenizer caches)
        t0, tokens, losses = time.perf_counter(), 0, []
        for _ in range(args.steps):
            stats = trainer.train_step()
            tokens += stats["tokens"]
            losses.append(stats["loss"])
        dt = time.perf_counter() - t0
    return {
        "device": "cpu",
        "threads": args.threads,
        "model": "tiny",
        "packed_attention": attention,
        "losses": losses,
        "params": trainer.total,
        "samples_per_step": args.batch,
        "steps": args.steps,
        "tokens_per_step": tokens / args.steps,
        "tokens_per_s": tokens / dt,
        "steps_per_s": args.steps / dt,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def _synthetic_seq(cfg, special, n_samples: int, text_len: int, grid: int, gen: torch.Generator):
    """Full-mode-shaped packed sequence: prompt + think (CE) + one noised grid x grid latent image per sample."""
    from irg_rl.models.packing import PackedSequenceBuilder
    from irg_rl.train.sft.losses import noise_latents

    b = PackedSequenceBuilder(special, cfg.max_latent_size, cfg.vit_max_num_patch_per_side)
    P = cfg.patch_latent_dim
    for _ in range(n_samples):
        ids = torch.randint(10, cfg.llm.vocab_size, (text_len,), generator=gen).tolist()
        b.add_text([special.im_start, *ids[:32], special.im_end])
        b.add_text([special.im_start, *ids[32:], special.im_end], loss=True)
        x0 = torch.randn(grid * grid, P, generator=gen)
        t = float(torch.rand((), generator=gen))
        x_t, target = noise_latents(
            x0, torch.full((grid * grid,), t), torch.randn(grid * grid, P, generator=gen)
        )
        b.add_vae_image(x_t, (grid, grid), t=t, noised=True, target=target)
        b.end_sample()
    return b.build()


def _gpu(args) -> dict:
    from irg_rl.models.checkpoint import build_model
    from irg_rl.models.configs import bagel_7b_mot
    from irg_rl.models.packing import SpecialTokenIds
    from irg_rl.train.grad_checkpointing import enable_grad_checkpointing
    from irg_rl.train.sft.losses import ce_per_token, mse_per_token

    if not torch.cuda.is_available():
        raise SystemExit("--gpu: no CUDA device")
    dev = torch.device("cuda")
    cfg = bagel_7b_mot()
    cfg.llm.num_hidden_layers = args.layers
    cfg.visual_und = False  # the full modes' generation path; ViT blocks are a small share of tokens
    special = SpecialTokenIds(151644, 151645, 151652, 151653, 151643)
    with torch.device(dev):  # initialise on the GPU: a CPU init of billions of parameters takes minutes
        model = build_model(cfg, special, dtype=torch.bfloat16, device=dev, seed=0)
    enable_grad_checkpointing(model)
    # what DeepSpeed bf16 does: bf16 module, fp32 master weights and AdamW states
    params = [p for p in model.parameters() if p.requires_grad]
    master = [p.detach().float().requires_grad_(True) for p in params]
    opt = torch.optim.AdamW(master, lr=1e-5, fused=True)
    gen = torch.Generator().manual_seed(0)
    grid = args.resolution // cfg.latent_downsample
    seq = _synthetic_seq(cfg, special, args.batch, 256, grid, gen).to(dev)
    layer_params = sum(p.numel() for p in model.language_model.model.layers[0].parameters())
    # one expert per token: half of each MoT layer's weights are active (+ embeddings/heads ignored)
    active = args.layers * layer_params // 2

    def step():
        out = model.forward_packed(seq)
        loss = (
            ce_per_token(out.ce_logits, seq.ce_labels).mean()
            + mse_per_token(out.velocity, seq.mse_targets).mean()
        )
        loss.backward()
        for m, p in zip(master, params, strict=True):
            m.grad = p.grad.float()
            p.grad = None
        opt.step()
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            torch._foreach_copy_(params, master)

    step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    tok_s = seq.length * args.steps / dt
    return {
        "device": torch.cuda.get_device_name(),
        "model": f"BAGEL-7B-MoT dims, {args.layers} of 28 layers, random weights, no ViT",
        "tokens_per_step": seq.length,
        "tokens_per_s": tok_s,
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30,
        "mfu_vs_989_tflops": 6 * active * tok_s / H100_BF16_FLOPS,
    }


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(
        prog="bench.py sft", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--steps", type=int, default=5, help="timed optimiser steps")
    p.add_argument("--batch", type=int, default=32, help="CPU: conversations per step; GPU: packed samples")
    p.add_argument("--threads", type=int, default=2, help="CPU torch threads")
    p.add_argument(
        "--prompts", type=int, default=200, help="CPU: ShapesWorld prompts in the temporary dataset"
    )
    p.add_argument("--recipe", default="recipes/shapes/sft_stage1.yaml", help="CPU: SFT recipe to benchmark")
    p.add_argument(
        "--attention",
        default="padded",
        choices=["padded", "per_sample", "auto", "both"],
        help="CPU: packed attention implementation; both = each on identical batches, with their ratio",
    )
    p.add_argument("--gpu", action="store_true", help="run the BAGEL-7B-MoT-dims GPU benchmark instead")
    p.add_argument("--layers", type=int, default=8, help="GPU: decoder layers to build")
    p.add_argument(
        "--resolution", type=int, default=512, help="GPU: image side in pixels (16 px per latent token)"
    )
    args = p.parse_args(argv)
    result = _gpu(args) if args.gpu else _cpu(args)
    json.dump(result, sys.stdout, indent=1)
    print()
