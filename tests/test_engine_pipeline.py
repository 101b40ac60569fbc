"""The batched IRG engine: branch contexts follow the official IRG pipeline's contexts, batched == research baseline, trajectories."""

from __future__ import annotations

import pytest
import torch
from _engine_helpers import PROMPTS, components, sampling

from irg_rl.config import ConfigError
from irg_rl.inference import IRGEngine, TrajectoryBatch, research_generate

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def parts():
    return components()


def test_branch_contexts_match_the_design_table(parts):
    b = IRGEngine(*parts, sampling()).generate(PROMPTS, samples_per_prompt=2)
    assert b.branch_segments == {
        "image_1": {"main": ["system", "prompt", "think_1"], "text_neg": ["system"]},
        "image_2": {
            "main": ["system", "prompt", "think_1", "image_1_vae", "image_1_vit", "think_2"],
            "text_neg": ["system", "prompt", "think_1", "image_1_vae", "image_1_vit"],
            "img_neg": ["system", "prompt", "think_1", "think_2"],
        },
    }
    assert [s.name for s in b[0].segments] == ["think_1", "image_1", "think_2", "image_2"]
    assert (
        b[0].segment("image_2").image.shape == (32, 32, 3)
        and b[0].segment("image_2").image.dtype == torch.uint8
    )


def test_baselines_one_round_and_no_thinking(parts):
    b = IRGEngine(*parts, sampling(rounds=1)).generate(PROMPTS)
    assert [s.name for s in b[0].segments] == ["think_1", "image_1"]
    assert b[0].segment("image_1").cond_tokens is None
    b = IRGEngine(*parts, sampling(rounds=1, think=False, system_prompt="")).generate(PROMPTS)
    assert [s.name for s in b[0].segments] == ["image_1"]
    assert b.branch_segments["image_1"] == {"main": ["prompt"], "text_neg": []}


def test_batched_engine_equals_research_baseline_when_deterministic(parts):
    eng = IRGEngine(*parts, sampling(temperature=0.0))
    fast = eng.generate(PROMPTS, samples_per_prompt=2, mode="euler")
    slow = research_generate(eng, PROMPTS, samples_per_prompt=2, mode="euler")
    assert len(fast) == len(slow) == 4
    for a, b in zip(fast.trajectories, slow.trajectories, strict=True):
        assert a.seed == b.seed
        for name in ("think_1", "think_2"):
            assert a.segment(name).token_ids.tolist() == b.segment(name).token_ids.tolist()
            assert torch.allclose(a.segment(name).logprobs, b.segment(name).logprobs, atol=1e-5)
        for name in ("image_1", "image_2"):
            assert torch.allclose(a.segment(name).latents, b.segment(name).latents, atol=1e-4)
            assert torch.equal(a.segment(name).image, b.segment(name).image)
    # G samples of one prompt differ (own seeds), the same seed reproduces
    assert not torch.equal(fast[0].segment("image_1").latents, fast[1].segment("image_1").latents)
    again = eng.generate(PROMPTS, samples_per_prompt=2, mode="euler")
    assert torch.equal(again[3].segment("image_2").latents, fast[3].segment("image_2").latents)


def test_sampled_trajectory_matches_baseline_and_batch_composition(parts):
    """With temperature and SDE noise, a trajectory only depends on its own seed (per-sample generators)."""
    eng = IRGEngine(*parts, sampling(temperature=1.0))
    both = eng.generate(PROMPTS, samples_per_prompt=1, mode="sde")
    alone = eng.generate(PROMPTS[1:], samples_per_prompt=1, mode="sde", seed=7 + 1_000_003)
    a, b = both[1], alone[0]
    assert a.segment("think_2").token_ids.tolist() == b.segment("think_2").token_ids.tolist()
    assert torch.allclose(a.segment("image_2").x_next, b.segment("image_2").x_next, atol=1e-4)


def test_trajectory_batch_roundtrip(parts, tmp_path):
    b = IRGEngine(*parts, sampling(temperature=1.0)).generate(PROMPTS, [{"tag": "a"}, {"tag": "b"}], 2, "sde")
    seg = b[0].segment("image_2")
    assert seg.x_t.shape[0] == 2 and seg.step_index.tolist() == [1, 2]
    ids, lp, mask = b.text_tensors("think_1")
    assert ids.shape == lp.shape == mask.shape and mask.any() and (lp[mask] <= 0).all()
    b2 = TrajectoryBatch.load(b.save(tmp_path / "traj.pt"))
    assert b2.settings == b.settings and b2.branch_segments == b.branch_segments and b2.mode == "sde"
    assert b2[2].metadata == {"tag": "b"} and b2[2].prompt == PROMPTS[1]
    assert torch.equal(b2.sde_logprobs("image_2"), b.sde_logprobs("image_2"))
    assert torch.equal(b2[1].segment("image_1").cond_tokens, b[1].segment("image_1").cond_tokens)
    assert b2.texts("think_2") == b.texts("think_2")


def test_bad_input_errors(parts, tmp_path):
    eng = IRGEngine(*parts, sampling())
    with pytest.raises(TypeError, match="list of strings"):
        eng.generate("a red circle")
    with pytest.raises(ValueError, match="mode"):
        eng.generate(PROMPTS, mode="ddim")
    with pytest.raises(ValueError, match="metadata"):
        eng.generate(PROMPTS, metadata=[{}])
    with pytest.raises(ValueError, match="resolution"):
        IRGEngine(*parts, sampling(resolution=36)).generate(PROMPTS)
    with pytest.raises(ConfigError, match="sampling.turn2.cfg_renorm_type"):
        s = sampling()
        s.turn2.cfg_renorm_type = "pixel"
        IRGEngine(*parts, s)
    (tmp_path / "x.pt").write_bytes(b"nope")
    with pytest.raises(Exception, match="x.pt|TrajectoryBatch|pickle|load"):
        TrajectoryBatch.load(tmp_path / "x.pt")


def test_group_initial_noise_shares_x1_within_a_prompt_only(parts):
    """Without thinking the context is the same for a prompt's samples, so with a shared x_1 they stay equal up to
    the SDE window (start 1) and differ after it; prompts still get their own noise. Off: x_1 differs per sample."""
    kw = dict(think=False, rounds=1, samples_per_prompt=3, sde_window_start=1, temperature=1.0)
    shared = IRGEngine(*parts, sampling(group_initial_noise=True, **kw)).generate(PROMPTS, mode="sde")
    own = IRGEngine(*parts, sampling(**kw)).generate(PROMPTS, mode="sde")
    x_t = [t.segment("image_1").x_t[0] for t in shared]
    x_next = [t.segment("image_1").x_next[0] for t in shared]
    assert torch.equal(x_t[0], x_t[1]) and torch.equal(x_t[0], x_t[2]) and torch.equal(x_t[3], x_t[5])
    assert not torch.allclose(x_next[0], x_next[1]) and not torch.allclose(x_t[0], x_t[3])
    own_x_t = [t.segment("image_1").x_t[0] for t in own]
    assert not torch.allclose(own_x_t[0], own_x_t[1])
    with pytest.raises(NotImplementedError, match="group_initial_noise"):
        research_generate(IRGEngine(*parts, sampling(group_initial_noise=True, **kw)), PROMPTS, mode="sde")


def test_round2_branches_share_the_first_round_and_rescore_to_ratio_one(parts):
    """round2_branches=2, G=4: samples (0, 1) and (2, 3) of a prompt share think_1 + image_1 exactly and each
    continue with their own think_2 + image_2; teacher-forced re-scoring reproduces every recorded log-prob."""
    from irg_rl.inference import rescore

    kw = dict(samples_per_prompt=4, sde_window_start=1, temperature=1.0, round2_branches=2)
    b = IRGEngine(*parts, sampling(**kw)).generate(PROMPTS, mode="sde")
    assert len(b) == 4 * len(PROMPTS) and [t.sample_index for t in b][:4] == [0, 1, 2, 3]
    t = list(b)
    for a, c in ((0, 1), (2, 3), (4, 5)):
        assert torch.equal(t[a].segment("think_1").token_ids, t[c].segment("think_1").token_ids)
        assert torch.equal(t[a].segment("image_1").x_next, t[c].segment("image_1").x_next)
        assert torch.equal(t[a].segment("image_1").cond_tokens, t[c].segment("image_1").cond_tokens)
        assert not torch.equal(t[a].segment("image_2").x_next, t[c].segment("image_2").x_next)
    assert not torch.equal(t[0].segment("image_1").x_next, t[2].segment("image_1").x_next)
    out = rescore(parts[0], b)
    for name in ("think_1", "think_2"):
        _, recorded, mask = b.text_tensors(name)
        assert (torch.exp(out.text_logprobs[name] - recorded)[mask] - 1).abs().max() < 1e-5
    for name in ("image_1", "image_2"):
        assert (torch.exp(out.sde_logprobs[name] - b.sde_logprobs(name)) - 1).abs().max() < 1e-5
    with pytest.raises(ValueError, match="round2_branches"):
        IRGEngine(*parts, sampling(**kw)).generate(PROMPTS, samples_per_prompt=3, mode="sde")
    with pytest.raises(NotImplementedError, match="round2_branches"):
        research_generate(IRGEngine(*parts, sampling(**kw)), PROMPTS, mode="sde")
