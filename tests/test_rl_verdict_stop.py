"""GRPO and DPO over batches in which a keep verdict stopped some trajectories (sampling.on_keep: stop)."""

from __future__ import annotations

import math

import pytest
import torch
from _rl_helpers import dpo_recipe, grpo_recipe, random_checkpoint

from irg_rl.config import ConfigError
from irg_rl.train.rl.dpo import DPOTrainer
from irg_rl.train.rl.grpo import GRPOTrainer

torch.set_num_threads(1)

# the random model's reflections are token soup; "asks" occurs in some of them (a mixed batch, checked below)
STOP = {"sampling.keep_pattern": "asks", "sampling.on_keep": "stop", "eval.num_prompts": 0}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("rl_ckpt"))


def test_grpo_step_on_a_mixed_batch(ckpt, tmp_path):
    over = {**STOP, "grpo.credit.verdict": 1.0}
    trainer = GRPOTrainer(grpo_recipe(ckpt, tmp_path / "out", **over))
    before = {n: p.detach().clone() for n, p in trainer.setup.bagel.named_parameters()}
    h = trainer.run()[0]
    stopped = h["verdict/stopped_share"] * h["trajectories"]
    assert 1 <= stopped <= h["trajectories"] - 1, "the test needs stopped and continued trajectories"
    assert h["ratio_check/ok"] == 1.0 and h["ratio_check/flow_max_dev"] < 1e-4
    # stopped trajectories get no image_2 credit; the continued ones are normalised among themselves
    assert h["adv/round_2_image_trained_share"] <= 1 - h["verdict/stopped_share"] + 1e-6
    # the verdict reward is logged (a random model's image_1 is never right, so keep always disagrees)
    assert h["verdict/keep_given_wrong"] == pytest.approx(h["verdict/stopped_share"])
    assert h["reward/verdict_mean"] == pytest.approx(1 - h["verdict/stopped_share"])
    assert math.isfinite(h["loss"])
    assert any(not torch.equal(before[n], p.detach()) for n, p in trainer.setup.bagel.named_parameters())


def test_dpo_step_on_a_mixed_batch(ckpt, tmp_path):
    h = DPOTrainer(dpo_recipe(ckpt, tmp_path / "out", **STOP)).run()[0]
    assert 0 < h["verdict/stopped_share"] < 1
    assert math.isfinite(h["loss"]) and h["pairs/num"] >= 1


def test_verdict_credit_without_a_keep_pattern_is_refused(ckpt, tmp_path):
    with pytest.raises(ConfigError, match="grpo.credit.verdict=1.0 needs sampling.keep_pattern"):
        grpo_recipe(ckpt, tmp_path / "out", **{"grpo.credit.verdict": 1.0}).validate()


def test_grpo_step_with_the_reading_reward(ckpt, tmp_path):
    over = {**STOP, "grpo.credit.reading": 1.0, "rewards.reading": [{"name": "shapes_reading"}]}
    h = GRPOTrainer(grpo_recipe(ckpt, tmp_path / "out", **over)).run()[0]
    # a random model's reflection never opens with an "I see ..." reading: 0 for every trajectory, logged
    assert h["reward/reading_mean"] == 0.0 and h["reward/reading/shapes_reading_mean"] == 0.0
    assert math.isfinite(h["loss"])
