"""The rollout benchmark's FLOPs count on hand-computed token counts (guidance off, then on)."""

from __future__ import annotations

import pytest

from experiments.bench.flops import trajectory_flops
from irg_rl.inference.engine_config import IRGSamplingConfig
from irg_rl.models.configs import bagel_7b_mot


def _sampling(cfg_on: bool) -> IRGSamplingConfig:
    s = IRGSamplingConfig(resolution=512, steps=10)
    if not cfg_on:
        for turn in (s.turn1, s.turn2):
            turn.cfg_text_scale = turn.cfg_img_scale = 1.0
    return s


def test_linear_flops_count_every_token_once_per_branch():
    cfg = bagel_7b_mot()
    llm = cfg.llm
    d, L, hd, ff = llm.hidden_size, llm.num_hidden_layers, llm.head_dim, llm.intermediate_size
    per_token = 2 * L * (2 * d * d + 2 * d * llm.num_key_value_heads * hd + 3 * d * ff)
    assert per_token == pytest.approx(13.05e9, rel=1e-3)  # ~7B active parameters x 2
    n, m = 32 * 32, (512 // 14) ** 2  # latent tokens at 512^2 (16 px each), ViT tokens of image_1
    S, P, T1, T2, K = 30, 10, 64, 128, 10
    off = trajectory_flops(cfg, _sampling(False), S, P, (T1, T2))
    assert off["linear"] == per_token * (S + P + T1 + K * n + n + m + T2 + K * n)
    assert off["lm_head"] == 2 * d * llm.vocab_size * (T1 + T2)
    # guidance on: turn 1 adds a text-CFG branch where 0.4 < t <= 1 (shifted grid), turn 2 two branches everywhere
    on = trajectory_flops(cfg, _sampling(True), S, P, (T1, T2))
    from irg_rl.inference.sde import timestep_grid

    active1 = sum(0.4 < float(t) <= 1.0 for t in timestep_grid(K, 3.0)[:-1])
    assert 0 < active1 < K
    assert on["linear"] - off["linear"] == per_token * n * (active1 + 2 * K)
    assert on["total"] == pytest.approx(on["linear"] + on["attention"] + on["lm_head"])
    assert on["attention"] > off["attention"] > 0
