"""Can the model learn to copy image_1 into image_2? `python -m experiments.bench copy [--scales 1 4] [--seeds 0 1]`.

A synthetic task with the `tiny` preset's shapes (4x4 latent grid, 8-dim tokens) and random init: each sample
is `[text] [noised image_1] [clean image_1] [text] [noised image_2]` with image_2 = image_1 (the layout an IRG
conversation has when the reflection keeps the first image). Cells hold one of 13 fixed unit-RMS codes (the
grid codec's `make_codes`), empty (code 0) with probability `--empty`; the text names nothing, so image_1's
flow loss cannot fall far, while image_2's can fall to ~0 once attention matches each noised image_2 token
with the clean image_1 token at the same grid cell. Every image token shares one RoPE position, so that match
can only come from the latent 2-D sin-cos table; the bench compares `latent_pos_scale` values (how far apart
the table puts neighbouring cells). Prints, per scale and seed, image_1 / image_2 flow MSE every `--every`
steps, and the first step at which image_2's MSE is below `--copied` (the copy has been learned).
"""

from __future__ import annotations

import argparse
import json

import torch

from irg_rl.models import BagelModel, PackedSequenceBuilder, SpecialTokenIds
from irg_rl.models.configs import tiny
from irg_rl.tasks.shapes.grid_codec import make_codes
from irg_rl.train.sft.losses import noise_latents, sample_timesteps

SPECIAL = SpecialTokenIds(im_start=1, im_end=2, vision_start=3, vision_end=4)
NUM_CODES = 13


def copy_batch(cfg, codes: torch.Tensor, batch: int, empty: float, gen: torch.Generator):
    """One packed batch of `batch` copy samples (see the module docstring); MSE rows are image_1 then image_2."""
    b = PackedSequenceBuilder(SPECIAL, cfg.max_latent_size, cfg.vit_max_num_patch_per_side)
    side = 4
    for _ in range(batch):
        cls = torch.randint(1, NUM_CODES, (side * side,), generator=gen)
        cls[torch.rand(side * side, generator=gen) < empty] = 0
        x0 = codes[cls]
        b.add_text([SPECIAL.im_start, 7, 8, SPECIAL.im_end])
        for k in range(2):
            t = sample_timesteps(1, cfg.timestep_shift, gen)
            eps = torch.randn(x0.shape, generator=gen)
            x_t, target = noise_latents(x0, t.expand(x0.shape[0]), eps)
            b.add_vae_image(x_t, (side, side), t=float(t), noised=True, target=target)
            if k == 0:
                b.add_vae_image(x0, (side, side))
                b.add_text([SPECIAL.im_start, 9, 10, SPECIAL.im_end])
        b.end_sample()
    return b.build()


def train_copy(
    scale: float, seed: int, steps: int, batch: int, empty: float, lr: float, every: int
) -> list[dict]:
    """Train a random-init tiny model on the copy task; [{step, image_1_mse, image_2_mse}] every `every` steps."""
    torch.manual_seed(seed)
    cfg = tiny()
    cfg.latent_pos_scale = scale
    model = BagelModel(cfg, SPECIAL)
    gen = torch.Generator().manual_seed(seed)
    codes = make_codes(NUM_CODES, cfg.vae_latent_channels, seed)  # the grid codec's cell codes
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    log, window = [], []
    for step in range(1, steps + 1):
        seq = copy_batch(cfg, codes, batch, empty, gen)
        err = (model.forward_packed(seq).velocity - seq.mse_targets).pow(2)
        loss = err.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        per_image = err.detach().view(batch, 2, -1).mean(-1).mean(0)
        window.append(per_image)
        if step % every == 0:
            m = torch.stack(window).mean(0)
            log.append(
                {"step": step, "image_1_mse": round(float(m[0]), 4), "image_2_mse": round(float(m[1]), 4)}
            )
            window = []
    return log


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="bench.py copy", description=__doc__.split("\n\n")[0])
    p.add_argument("--scales", type=float, nargs="+", default=[1.0, 4.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--empty", type=float, default=0.9, help="share of empty cells")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--every", type=int, default=50)
    p.add_argument(
        "--copied", type=float, default=0.05, help="image_2 MSE below which the copy counts as learned"
    )
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    results = []
    for scale in a.scales:
        for seed in a.seeds:
            log = train_copy(scale, seed, a.steps, a.batch, a.empty, a.lr, a.every)
            learned = next((r["step"] for r in log if r["image_2_mse"] < a.copied), None)
            results.append({"latent_pos_scale": scale, "seed": seed, "copy_learned_at": learned, "log": log})
            print(json.dumps(results[-1]), flush=True)
    print("| latent_pos_scale | seed | copy learned at step | image_1 / image_2 MSE at the last step |")
    print("|---|---|---|---|")
    for r in results:
        last = r["log"][-1]
        at = r["copy_learned_at"] or f"not in {a.steps}"
        print(
            f"| {r['latent_pos_scale']:g} | {r['seed']} | {at} | {last['image_1_mse']} / {last['image_2_mse']} |"
        )
