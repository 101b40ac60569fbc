"""Attention-mask rules of packed sequences (BAGEL's packed attention) and RoPE position ids."""

from __future__ import annotations

import torch
from _model_helpers import SPECIAL, random_model

from irg_rl.models import PackedSequenceBuilder, build_attention_mask

torch.set_num_threads(1)


def test_mask_rules_by_hand():
    # sample 0: text(2) full(3) noise(3) text(2); sample 1: text(2)
    m = build_attention_mask([2, 3, 3, 2, 2], ["causal", "full", "noise", "causal", "causal"], [10, 2])
    text0, full, noise, text1, other = range(0, 2), range(2, 5), range(5, 8), range(8, 10), range(10, 12)
    assert m[1, 0] and not m[0, 1]  # text causal
    assert all(m[q, k] for q in full for k in full)  # full block bidirectional
    assert all(m[q, k] for q in full for k in text0)  # sees its causal prefix
    assert all(
        m[q, k] for q in noise for k in list(text0) + list(full) + list(noise)
    )  # noise sees prefix+self
    assert not any(m[q, k] for q in text1 for k in noise)  # later tokens never see a noised block
    assert all(m[q, k] for q in text1 for k in full)  # but do see the clean block
    assert not any(m[q, k] for q in other for k in range(10))  # samples are block-diagonal
    assert not any(m[q, k] for q in range(10) for k in other)


def _seq(model, noised_tokens, vit_img):
    cfg = model.config
    b = PackedSequenceBuilder(SPECIAL, cfg.max_latent_size, cfg.vit_max_num_patch_per_side)
    b.add_text([1, 5, 6, 2])
    b.add_vit_image(vit_img, (2, 2))
    b.add_vae_image(noised_tokens, (2, 2), t=0.5, noised=True)
    b.add_text([1, 7, 8, 2], loss=True)
    return b.build()


def test_behaviour_noised_block_invisible_and_vit_bidirectional():
    model = random_model()
    P, pd = model.config.patch_latent_dim, model.config.vit.patch_dim
    g = torch.Generator().manual_seed(0)
    x1, x2 = torch.randn(4, P, generator=g), torch.randn(4, P, generator=g)
    vit1 = torch.randn(4, pd, generator=g)
    vit2 = vit1.clone()
    vit2[-1] += 1.0  # change only the last ViT patch
    with torch.no_grad():
        a = model.forward_packed(_seq(model, x1, vit1), return_hidden=True)
        b = model.forward_packed(_seq(model, x2, vit1), return_hidden=True)
        c = model.forward_packed(_seq(model, x1, vit2), return_hidden=True)
    seq = _seq(model, x1, vit1)
    torch.testing.assert_close(a.ce_logits, b.ce_logits)  # text after a noised block ignores its content
    assert not torch.allclose(a.velocity, b.velocity)
    first_vit = seq.vit_indexes[0]
    assert not torch.allclose(a.hidden[first_vit], c.hidden[first_vit])  # ViT token 0 sees ViT token 3
    assert not torch.allclose(a.ce_logits, c.ce_logits)


def test_positions_follow_bagel_rules():
    model = random_model()
    seq = _seq(
        model, torch.zeros(4, model.config.patch_latent_dim), torch.zeros(4, model.config.vit.patch_dim)
    )
    # text 0..3, ViT block (6 tokens) at 4, noised block (6 tokens) at 5, next text continues at 5
    expected = [0, 1, 2, 3] + [4] * 6 + [5] * 6 + [5, 6, 7, 8]
    assert seq.position_ids.tolist() == expected
    assert seq.attn_modes == ["causal", "full", "noise", "causal"]
    assert seq.ce_labels.tolist() == [7, 8, 2]


def test_packed_forward_under_bf16_autocast():
    """accelerate's bf16 mixed precision runs the fp32 model under autocast: the MoT routing must cope."""
    model = random_model()
    P, pd = model.config.patch_latent_dim, model.config.vit.patch_dim
    g = torch.Generator().manual_seed(0)
    seq = _seq(model, torch.randn(4, P, generator=g), torch.randn(4, pd, generator=g))
    with torch.no_grad():
        ref = model.forward_packed(seq)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = model.forward_packed(seq)
    torch.testing.assert_close(mixed.velocity.float(), ref.velocity, atol=0.1, rtol=0.1)
    torch.testing.assert_close(mixed.ce_logits.float(), ref.ce_logits, atol=0.1, rtol=0.1)
