"""DiffusionNFT over IRG trajectories: the forward-process re-scoring pass, the noise draws, and the driver on a
small random checkpoint (text ratio 1 at the first inner update, v == v_old there, LoRA-only updates)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _engine_helpers import PROMPTS, components, sampling
from _rl_helpers import LORA, _apply, random_checkpoint, recipe_dict

from irg_rl.config import ConfigError, config_from_dict
from irg_rl.inference import IRGEngine, rescore
from irg_rl.inference.rescoring import NoisedLatents, rescore_noised
from irg_rl.inference.sde import sde_step_mean_std, timestep_grid
from irg_rl.train.rl.config import NFTConfig
from irg_rl.train.rl.nft import NFTTrainer, noise_images
from irg_rl.train.rl.recipe import NFTRecipe

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def engine_batch():
    model, tok, vae = components(seed=3)
    s = sampling(temperature=0.7)
    for turn in (s.turn1, s.turn2):  # guidance off: the SDE mean then uses the conditional velocity alone
        turn.cfg_text_scale, turn.cfg_img_scale = 1.0, 1.0
    return model, IRGEngine(model, tok, vae, s).generate(PROMPTS, None, 2, "sde")


def test_noised_pass_gives_the_conditional_velocity_and_the_same_think_logprobs(engine_batch):
    model, batch = engine_batch
    with torch.no_grad():
        ref = rescore(model, batch)
        # feed each image's recorded SDE states as the "noised copies": the velocity must reproduce the SDE mean
        given = [
            {n: NoisedLatents(x_t=tr.segment(n).x_t, t=tr.segment(n).t) for n in ("image_1", "image_2")}
            for tr in batch.trajectories
        ]
        out, vel = rescore_noised(model, batch, given)
    for name in ("think_1", "think_2"):
        assert torch.allclose(out.text_logprobs[name], ref.text_logprobs[name], atol=1e-5)
    for i, tr in enumerate(batch.trajectories):
        for name in ("image_1", "image_2"):
            seg = tr.segment(name)
            assert vel[i][name].shape == seg.x_t.shape
            for j in range(seg.t.numel()):
                mean, _ = sde_step_mean_std(
                    seg.x_t[j][None], vel[i][name][j][None], float(seg.t[j]), float(seg.t_next[j]), 0.7
                )
                assert torch.allclose(mean[0], ref.sde_mean[name][i, j], atol=1e-5)
    # an image left out adds no block and gets no velocity
    out2, vel2 = rescore_noised(model, batch, [{"image_1": g["image_1"]} for g in given])
    assert all(set(v) == {"image_1"} for v in vel2)


def test_noise_images_marks_copies_times_and_rows(engine_batch):
    _, batch = engine_batch
    cfg = NFTConfig(timesteps_per_image=3)
    trained = {
        "image_1": torch.tensor([True, False, True, True]),
        "image_2": torch.tensor([False, True, True, False]),
    }
    noised = noise_images(batch, trained, cfg, np.random.default_rng(0))
    grid = timestep_grid(6, batch.settings["timestep_shift"])[:-1].clamp(cfg.min_t, cfg.max_t)
    for i, per in enumerate(noised):
        assert set(per) == {n for n in trained if trained[n][i]}
        for name, g in per.items():
            x0 = batch[i].segment(name).latents
            assert g.x_t.shape == (3, *x0.shape)
            assert all(bool((grid - t).abs().min() < 1e-6) for t in g.t)
    # the same generator state gives the same draws (resume is exact)
    again = noise_images(batch, trained, cfg, np.random.default_rng(0))
    assert torch.equal(again[0]["image_1"].x_t, noised[0]["image_1"].x_t)


def _nft_recipe(ckpt, out, **over):
    base = recipe_dict(ckpt, out)
    base["grpo"] = {"group_size": 4, "inner_updates": 2}
    base["sampling"]["sde_window_size"] = 0
    base["nft"] = {"timesteps_per_image": 2}
    return config_from_dict(NFTRecipe, _apply(base, over))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("nft_ckpt"))


def test_nft_lora_step_changes_only_adapters_with_ratio_one(ckpt, tmp_path):
    trainer = NFTTrainer(_nft_recipe(ckpt, tmp_path / "out", **LORA, **{"nft.kl_coef": 0.1}))
    bagel = trainer.setup.bagel
    before = {n: p.detach().clone() for n, p in bagel.named_parameters()}
    stats = trainer.run()[-1]
    assert stats["ratio_check/ok"] == 1.0 and stats["ratio_check/text_max_dev"] < 1e-4
    assert stats["update/skipped_no_signal"] == 0.0
    # first inner update: v == v_old, so both implicit policies are the old one and the KL to the
    # adapter-disabled reference is 0 (a zero-initialised LoRA is the reference)
    assert stats["first/nft/num_images"] > 0
    assert stats["first/nft/positive"] == pytest.approx(stats["first/nft/negative"], rel=1e-6)
    assert stats["first/nft/kl"] == pytest.approx(0.0, abs=1e-10)
    # second inner update: the policy moved, the implicit policies differ
    assert stats["last/nft/positive"] != pytest.approx(stats["last/nft/negative"], rel=1e-6)
    changed = {n for n, p in bagel.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed and all("lora_" in n for n in changed), sorted(changed)[:5]


def test_nft_recipe_refuses_an_sde_window(ckpt, tmp_path):
    with pytest.raises(ConfigError, match="sampling.sde_window_size"):
        _nft_recipe(ckpt, tmp_path, **{"sampling.sde_window_size": 2})
    with pytest.raises(ConfigError, match="nft.beta"):
        _nft_recipe(ckpt, tmp_path, **{"nft.beta": 0.0})
