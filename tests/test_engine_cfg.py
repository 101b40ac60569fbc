"""Guidance maths (irg_rl.inference.cfg) against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from irg_rl.inference.cfg import cfg_active, combine_cfg


def test_interval_is_open_below_closed_above():
    assert cfg_active(1.0, [0.4, 1.0]) and cfg_active(0.41, [0.4, 1.0])
    assert not cfg_active(0.4, [0.4, 1.0]) and not cfg_active(0.2, [0.4, 1.0])
    assert cfg_active(0.01, [0.0, 1.0])


def test_no_guidance_when_text_scale_at_most_one():
    v = torch.randn(2, 3, 4)
    out = combine_cfg(v, None, None, text_scale=1.0, img_scale=5.0)
    assert torch.equal(out, v)


def test_global_renorm_by_hand():
    # one sample, one token: v = (3, 4) |v| = 5; v_neg = (0, 0); s = 2 -> (6, 8), |.| = 10 -> rescaled to (3, 4)
    v, neg = torch.tensor([[[3.0, 4.0]]]), torch.zeros(1, 1, 2)
    assert torch.allclose(combine_cfg(v, neg, None, 2.0, 1.0, "global"), v)
    # renorm only shrinks: v_neg = (6, 8) -> guided = (0, 0) + ... = 6+2(3-6), 8+2(4-8) = (0, 0); scale clamps at 1
    out = combine_cfg(v, torch.tensor([[[6.0, 8.0]]]), None, 2.0, 1.0, "global")
    assert torch.allclose(out, torch.zeros(1, 1, 2))


def test_global_norm_is_per_sample_and_channel_per_token():
    v = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [0.0, 0.0]]])
    neg = torch.tensor([[[0.0, 0.0], [0.0, 0.5]], [[0.0, 0.0], [0.0, 0.0]]])
    g = combine_cfg(v, neg, None, 3.0, 1.0, "global")
    raw = neg + 3.0 * (v - neg)  # [[3,0],[0,2]] and [[6,0],[0,0]]
    assert torch.allclose(g[0], raw[0] * (2**0.5 / 13**0.5))
    assert torch.allclose(g[1], raw[1] * (2.0 / 6.0))
    c = combine_cfg(v, neg, None, 3.0, 1.0, "channel")
    assert torch.allclose(c[0], torch.tensor([[1.0, 0.0], [0.0, 1.0]]))


def test_serial_text_then_image_with_text_channel_renorm():
    v = torch.tensor([[[1.0, 0.0]]])
    v_t = torch.tensor([[[0.5, 0.0]]])
    v_i = torch.tensor([[[0.0, 1.0]]])
    # text: 0.5 + 4 * 0.5 = 2.5 along x, renormalised per token to |v| = 1 -> (1, 0); image: (0,1) + 2((1,0)-(0,1))
    out = combine_cfg(v, v_t, v_i, 4.0, 2.0, "text_channel")
    assert torch.allclose(out, torch.tensor([[[2.0, -1.0]]]))
    # global: image guidance first, then one renorm of the result to |v| = 1
    raw = v_i + 2.0 * (v_t + 4.0 * (v - v_t) - v_i)  # (5, -1)
    out = combine_cfg(v, v_t, v_i, 4.0, 2.0, "global")
    assert torch.allclose(out, raw / raw.norm())


def test_missing_branch_is_an_error():
    v = torch.zeros(1, 1, 2)
    with pytest.raises(ValueError, match="text-CFG"):
        combine_cfg(v, None, None, 2.0, 1.0)
    with pytest.raises(ValueError, match="image-CFG"):
        combine_cfg(v, v, None, 2.0, 2.0)
