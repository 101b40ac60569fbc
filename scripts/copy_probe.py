"""Does image_2's flow use image_1's VAE block? A ShapesWorld SFT diagnostic.

For rows of the `improving_full_learning` mode, the flow-matching loss (MSE on image_2's noised latent tokens) is
computed twice with the same noise and timestep: with image_1's clean VAE block in the context and with it removed
(its ViT block stays). A model that copies image_1 where the reflection says keep gets a much lower loss with the
block. Rows are split by whether image_1 is already correct (image_2 = image_1) or corrupted (one object differs).

    python scripts/copy_probe.py --model runs/demo/sft_stage2 --data runs/demo/data [--rows 200]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from irg_rl.models.checkpoint import load_checkpoint
from irg_rl.models.packing import PackedSequenceBuilder
from irg_rl.train.checkpointing import resolve_model_dir
from irg_rl.train.conversation_packing import PackingOptions, append_sample, encode_conversation
from irg_rl.train.losses import mse_per_token
from irg_rl.train.sampler import ModeStream
from irg_rl.train.sft_setup import ModelSampleEncoder

MODE = "improving_full_learning"


def _image_2_mse(model, enc, sample, cfg) -> float:
    builder = PackedSequenceBuilder(
        enc.special, cfg.max_latent_size, cfg.vit_max_num_patch_per_side, cfg.interpolate_pos
    )
    append_sample(builder, sample)
    seq = builder.build()
    with torch.no_grad():
        out = model.forward_packed(seq)
    n = [s for s in sample.segments if s.kind == "vae" and s.noised][-1].tokens.shape[0]
    return float(mse_per_token(out.velocity, seq.mse_targets)[-n:].mean())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="SFT run folder or checkpoint")
    ap.add_argument("--data", required=True, help="ShapesWorld data folder (with metadata.jsonl)")
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    ck = load_checkpoint(resolve_model_dir(args.model), dtype=torch.float32)
    model, cfg = ck.model.eval(), ck.config
    enc = ModelSampleEncoder(ck.tokenizer, ck.vae, cfg)
    kinds = [
        json.loads(x)["image_1_kind"] for x in Path(args.data, "metadata.jsonl").read_text().splitlines()
    ]
    prompts = [
        json.loads(x)["metadata"]["prompt"]
        for x in Path(args.data, "metadata.jsonl").read_text().splitlines()
    ]
    stream = ModeStream(args.data, MODE, shuffle_files=False)
    opts = PackingOptions(vae_cond_dropout=0.0, timestep_shift=3.0, seed=args.seed)
    rows = {"correct": [], "corrupted": []}
    for i in range(min(args.rows, stream.total)):
        _, _, conv = stream.read_at(i)
        user = next(t.content for t in conv if t.role == "user")
        if user != prompts[i]:
            raise ValueError(
                f"{args.data}: row {i} of {MODE} is not metadata row {i} ({user!r} vs {prompts[i]!r})"
            )
        full = encode_conversation(conv, MODE, i, enc, opts, f"row {i}")
        clean_vae = [k for k, s in enumerate(full.segments) if s.kind == "vae" and not s.noised]
        if not clean_vae:
            continue
        without = encode_conversation(conv, MODE, i, enc, opts, f"row {i}")
        del without.segments[clean_vae[0]]  # image_1's clean VAE block (the first clean one)
        pair = (_image_2_mse(model, enc, full, cfg), _image_2_mse(model, enc, without, cfg))
        rows["correct" if kinds[i] == "correct" else "corrupted"].append(pair)
    print(f"model {args.model}, data {args.data}, {MODE}, image_2 flow MSE (same noise and t):")
    print("| image_1 | rows | with image_1's VAE block | without | change with the block |")
    print("|---|---|---|---|---|")
    for kind, pairs in rows.items():
        if pairs:
            w = sum(p[0] for p in pairs) / len(pairs)
            wo = sum(p[1] for p in pairs) / len(pairs)
            print(f"| {kind} | {len(pairs)} | {w:.5f} | {wo:.5f} | {100 * (w / wo - 1):+.2f}% |")


if __name__ == "__main__":
    main()
