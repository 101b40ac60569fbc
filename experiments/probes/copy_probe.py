"""Does image_2's flow use image_1's VAE block? A ShapesWorld SFT diagnostic (`python -m experiments.copy_probe`).

For rows of the `improving_full_learning` mode, image_2's flow-matching loss (MSE on its noised latent tokens) is
computed twice with the same noise and timestep: with image_1's clean VAE block in the context and without it (its
ViT block stays). A model that copies unchanged content from image_1 gets a clearly lower loss with the block.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from irg_rl.models.checkpoint import load_checkpoint
from irg_rl.models.packing import PackedSequenceBuilder
from irg_rl.train.checkpointing import resolve_model_dir
from irg_rl.train.sft.conversation_packing import PackingOptions, append_sample, encode_conversation
from irg_rl.train.sft.losses import mse_per_token
from irg_rl.train.sft.sampler import ModeStream
from irg_rl.train.sft.setup import ModelSampleEncoder

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


def probe(
    model_dir: str, data_dir: str, rows: int = 200, seed: int = 0
) -> dict[str, list[tuple[float, float]]]:
    """Per image_1 kind ("correct" / "corrupted"): (image_2 MSE with image_1's VAE block, without) per row."""
    torch.manual_seed(seed)
    ck = load_checkpoint(resolve_model_dir(model_dir), dtype=torch.float32)
    model, cfg = ck.model.eval(), ck.config
    enc = ModelSampleEncoder(ck.tokenizer, ck.vae, cfg)
    meta = [json.loads(x) for x in Path(data_dir, "metadata.jsonl").read_text().splitlines()]
    stream = ModeStream(data_dir, MODE, shuffle_files=False)
    opts = PackingOptions(vae_cond_dropout=0.0, timestep_shift=cfg.timestep_shift, seed=seed)
    out: dict[str, list[tuple[float, float]]] = {"correct": [], "corrupted": []}
    for i in range(min(rows, stream.total)):
        _, _, conv = stream.read_at(i)
        user = next(t.content for t in conv if t.role == "user")
        if user != meta[i]["metadata"]["prompt"]:
            raise ValueError(f"{data_dir}: row {i} of {MODE} is not metadata.jsonl row {i}; rebuild the data")
        full = encode_conversation(conv, MODE, i, enc, opts, f"row {i}")
        # image_1's clean VAE block is the first clean one; its ViT block stays
        drop = next(k for k, s in enumerate(full.segments) if s.kind == "vae" and not s.noised)
        without = dataclasses.replace(full, segments=[s for k, s in enumerate(full.segments) if k != drop])
        pair = (_image_2_mse(model, enc, full, cfg), _image_2_mse(model, enc, without, cfg))
        out["correct" if meta[i]["image_1_kind"] == "correct" else "corrupted"].append(pair)
    return out
