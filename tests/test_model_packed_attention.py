"""Per-sample packed attention (no padded work) gives the padded path's outputs and gradients."""

from __future__ import annotations

import pytest
import torch
from _engine_helpers import PROMPTS, components, sampling

from irg_rl.inference import IRGEngine
from irg_rl.inference.rescoring import build_rescoring_sequence
from irg_rl.models.kv_cache import PerSampleAttention, packed_attention

torch.set_num_threads(1)


def _run(model, seq, kind):
    model.zero_grad(set_to_none=True)
    model.packed_attention = kind
    out = model.forward_packed(seq)
    (out.ce_logits.float().pow(2).mean() + out.velocity.float().pow(2).mean()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out, grads


def test_per_sample_equals_padded_on_a_ragged_batch_with_images():
    model, tok, vae = components(seed=3)
    batch = IRGEngine(model, tok, vae, sampling(temperature=0.7)).generate(PROMPTS, None, 2, "sde")
    seq, _ = build_rescoring_sequence(model, batch)
    assert len(set(seq.sample_lens)) > 1  # samples of different lengths: the padded path does padded work
    a, ga = _run(model, seq, "padded")
    b, gb = _run(model, seq, "per_sample")
    assert torch.allclose(a.ce_logits, b.ce_logits, atol=1e-5)
    assert torch.allclose(a.velocity, b.velocity, atol=1e-5)
    assert ga.keys() == gb.keys() and len(ga) > 10
    for name in ga:
        assert torch.allclose(ga[name], gb[name], atol=1e-5, rtol=1e-4), name


def test_choice_and_causal_fast_path():
    n = 5
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    full = torch.ones(3, 3, dtype=torch.bool)
    att = packed_attention("auto", [n, 3], [causal, full], torch.device("cpu"))
    assert isinstance(att, PerSampleAttention) and att.masks[0] is None and att.masks[1] is not None
    q, k, v = torch.randn(8, 4, 6), torch.randn(8, 2, 6), torch.randn(8, 2, 6)
    ref = packed_attention("padded", [n, 3], [causal, full], torch.device("cpu"))(0, q, k, v)
    assert torch.allclose(att(0, q, k, v), ref, atol=1e-6)
    with pytest.raises(ValueError, match="packed attention"):
        packed_attention("flash", [n], [causal], torch.device("cpu"))
