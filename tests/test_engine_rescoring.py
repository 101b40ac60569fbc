"""Teacher-forced re-scoring reproduces the recorded log-probs (ratio 1) and carries gradients."""

from __future__ import annotations

import pytest
import torch
from _engine_helpers import PROMPTS, components, sampling

from irg_rl.inference import IRGEngine, TrajectoryBatch, rescore
from irg_rl.inference.rescoring import build_rescoring_sequence

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup():
    model, tok, vae = components(seed=3)
    batch = IRGEngine(model, tok, vae, sampling(temperature=0.7)).generate(PROMPTS, None, 2, "sde")
    return model, batch


def test_ratio_is_one_for_text_and_sde_steps(setup, tmp_path):
    model, batch = setup
    batch = TrajectoryBatch.load(batch.save(tmp_path / "b.pt"))  # offline DPO path: stored, then re-scored
    with torch.no_grad():
        out = rescore(model, batch)
    for name in ("think_1", "think_2"):
        _, recorded, mask = batch.text_tensors(name)
        assert torch.equal(out.text_mask[name], mask)
        ratio = torch.exp(out.text_logprobs[name] - recorded)[mask]
        assert ratio.numel() >= 4 and (ratio - 1).abs().max() < 1e-5
    for name in ("image_1", "image_2"):
        recorded = batch.sde_logprobs(name)
        assert recorded.shape == (4, 2)
        ratio = torch.exp(out.sde_logprobs[name] - recorded)
        assert (ratio - 1).abs().max() < 1e-5
        assert out.sde_mean[name].shape == (4, *batch[0].segment(name).x_t.shape)


def test_rescoring_detects_changed_weights_and_has_gradients(setup):
    model, batch = setup
    out = rescore(model, batch)
    loss = out.sde_logprobs["image_2"].sum() + out.text_logprobs["think_2"].sum()
    loss.backward()
    assert model.llm2vae.weight.grad.abs().sum() > 0
    assert model.language_model.lm_head.weight.grad.abs().sum() > 0
    gen_q = model.language_model.model.layers[0]
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for n, p in gen_q.named_parameters() if "moe_gen" in n
    )
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        model.llm2vae.bias.add_(0.05)
        changed = rescore(model, batch)
        model.llm2vae.bias.sub_(0.05)
    assert (
        changed.sde_logprobs["image_1"] - batch.sde_logprobs("image_1")
    ).abs().max() > 1e-4  # equal within ~1e-7 otherwise


def test_rescoring_sequence_layout(setup):
    """Per trajectory: one main sample (+ one image-CFG sample), noise blocks for every recorded branch step."""
    model, batch = setup
    seq, lay = build_rescoring_sequence(model, batch)
    assert len(seq.sample_lens) == 2 * len(batch)
    branches = {(b, name) for _, name, b, _ in lay.blocks}
    assert branches == {
        ("main", "image_1"),
        ("text_neg", "image_1"),
        ("main", "image_2"),
        ("text_neg", "image_2"),
        ("img_neg", "image_2"),
    }
    assert seq.attn_modes.count("noise") == len(lay.blocks)
