"""sampling.on_keep: stop. Trajectories whose think_2 says keep end with image_2 := image_1 (no SDE step); the
others are sampled exactly as with refine; a mixed batch re-scores to its recorded log-probs (ratio 1)."""

from __future__ import annotations

import re

import pytest
import torch
from _engine_helpers import PROMPTS, components, sampling

from irg_rl.config import ConfigError
from irg_rl.inference import IRGEngine, TrajectoryBatch, rescore
from irg_rl.inference.engine_config import IRGSamplingConfig
from irg_rl.train.rl.batch import ratio_deviation, sequence_logps

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def runs():
    model, tok, vae = components(seed=3)
    refine = IRGEngine(model, tok, vae, sampling(temperature=0.9)).generate(PROMPTS, None, 3, "sde")
    texts = refine.texts("think_2")
    # keep = exactly the reflection of trajectory 0 (and any identical one): a known mix of keep and revise
    keep = "^" + re.escape(texts[0]) + "$"
    n_keep = sum(t == texts[0] for t in texts)
    assert 1 <= n_keep < len(texts), "the random model must sample at least two different reflections"
    cfg = sampling(temperature=0.9, keep_pattern=keep, on_keep="stop")
    stop = IRGEngine(model, tok, vae, cfg).generate(PROMPTS, None, 3, "sde")
    return model, refine, stop, n_keep


def test_keep_rows_stop_and_the_others_match_refine(runs):
    _, refine, stop, n_keep = runs
    assert stop.texts("think_2") == refine.texts("think_2")  # the reflections do not depend on on_keep
    assert [t.stopped for t in stop] == [t.verdict == "keep" for t in stop]
    assert sum(t.stopped for t in stop) == n_keep and stop[0].stopped
    assert stop.stats["image_2_stopped"] == n_keep
    assert stop.stats["denoise_steps_saved"] == n_keep * 6
    for a, b in zip(refine, stop, strict=True):
        seg = b.segment("image_2")
        if b.stopped:
            assert torch.equal(seg.image, b.segment("image_1").image)
            assert torch.equal(seg.latents, b.segment("image_1").latents)
            assert seg.logprobs.numel() == 0 and seg.x_t.shape[0] == 0
        else:  # each sample has its own generators: leaving rows out changes nothing for the others
            ref = a.segment("image_2")
            assert torch.allclose(seg.latents, ref.latents, atol=1e-5)
            assert torch.allclose(seg.logprobs, ref.logprobs, atol=1e-4)
            assert torch.equal(seg.step_index, ref.step_index)


def test_mixed_batch_rescores_to_recorded_logprobs(runs, tmp_path):
    model, _, stop, n_keep = runs
    batch = TrajectoryBatch.load(stop.save(tmp_path / "b.pt"))  # the saved form keeps verdicts and stops
    assert [t.stopped for t in batch] == [t.stopped for t in stop]
    mask = batch.sde_mask("image_2")
    assert mask.shape == (6, 2) and int((~mask.any(1)).sum()) == n_keep
    with torch.no_grad():
        out = rescore(model, batch)
    assert torch.equal(out.sde_mask["image_2"], mask)
    dev = ratio_deviation(batch, out)
    assert dev["text"] < 1e-5 and dev["flow"] < 1e-5
    ratio = torch.exp(out.sde_logprobs["image_2"] - batch.sde_logprobs("image_2"))[mask]
    assert ratio.numel() == 2 * (6 - n_keep) and (ratio - 1).abs().max() < 1e-5
    # a stopped trajectory's flow log-prob sum covers image_1's steps only
    _, flow = sequence_logps(batch, out)
    i = next(k for k, t in enumerate(batch) if t.stopped)
    assert torch.allclose(flow[i], out.sde_logprobs["image_1"][i].sum(), atol=1e-6)


def test_stop_needs_a_keep_pattern_and_a_valid_regex():
    with pytest.raises(ConfigError, match="keep_pattern"):
        IRGSamplingConfig(on_keep="stop").validate()
    with pytest.raises(ConfigError, match="on_keep must be one of"):
        IRGSamplingConfig(on_keep="halt").validate()
    with pytest.raises(ConfigError, match="revise_pattern: not a valid regular expression"):
        IRGSamplingConfig(keep_pattern="ok", revise_pattern="(").validate()
