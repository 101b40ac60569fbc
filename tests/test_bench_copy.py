"""The copy bench's task: image_2 is image_1, and the bench trains and reports."""

from __future__ import annotations

import json

import torch

from experiments.bench import copy as copy_bench
from irg_rl.models.configs import tiny
from irg_rl.tasks.shapes.grid_codec import make_codes


def test_copy_batch_image_2_is_image_1():
    cfg = tiny()
    gen = torch.Generator().manual_seed(0)
    codes = make_codes(copy_bench.NUM_CODES, cfg.vae_latent_channels)
    seq = copy_bench.copy_batch(cfg, codes, batch=3, empty=0.5, gen=gen)
    assert seq.attn_modes.count("noise") == 6 and seq.attn_modes.count("full") == 3
    # x_t = (1 - t) x0 + t eps and target = eps - x0, so x0 = x_t - t * target
    t = seq.vae_timesteps.view(3, 3, 16)[:, :, 0]
    tokens = seq.vae_tokens.view(3, 3, 16, -1)
    targets = seq.mse_targets.view(3, 2, 16, -1)
    x0_image_1 = tokens[:, 0] - t[:, 0, None, None] * targets[:, 0]
    x0_image_2 = tokens[:, 2] - t[:, 2, None, None] * targets[:, 1]
    torch.testing.assert_close(x0_image_1, tokens[:, 1], atol=1e-5, rtol=0)  # the clean block is image_1
    torch.testing.assert_close(x0_image_2, tokens[:, 1], atol=1e-5, rtol=0)  # and image_2 is the same image
    assert (t[:, 1] == 0).all() and (t[:, [0, 2]] > 0).all()


def test_bench_trains_and_reports(capsys):
    copy_bench.main(
        ["--scales", "4", "--seeds", "0", "--steps", "4", "--batch", "2", "--every", "2", "--threads", "1"]
    )
    out = capsys.readouterr().out
    first = json.loads(out.splitlines()[0])
    assert [r["step"] for r in first["log"]] == [2, 4]
    assert all(r["image_1_mse"] > 0 and r["image_2_mse"] > 0 for r in first["log"])
    assert "| 4 | 0 | not in 4 |" in out
