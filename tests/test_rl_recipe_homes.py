"""A GRPO recipe has one home for its SDE and group settings (grpo.*): a conflicting sampling.* is refused."""

from __future__ import annotations

import pytest

from irg_rl.config import ConfigError, config_from_dict
from irg_rl.train.grpo import _sync_sampling
from irg_rl.train.rl_recipe import GRPORecipe


def _recipe(**sampling) -> GRPORecipe:
    return config_from_dict(GRPORecipe, {"train": {"output_dir": "unused"}, "sampling": sampling})


def test_conflicting_sampling_noise_level_is_refused_naming_both():
    with pytest.raises(ConfigError, match=r"sampling.noise_level=0.3 conflicts with grpo.noise_level=0.7"):
        _sync_sampling(_recipe(noise_level=0.3))


def test_defaults_and_agreeing_values_are_taken_from_grpo():
    r = _recipe()
    r.grpo.noise_level, r.grpo.group_size = 0.5, 4
    _sync_sampling(r)
    assert r.sampling.noise_level == 0.5 and r.sampling.samples_per_prompt == 4
    _sync_sampling(r)  # idempotent: the synced values agree with grpo.*


def test_sliding_window_start_by_hand():
    from irg_rl.inference.sde import sliding_window_start

    # max_start 4, one step later every 2 RL steps: 0 0 1 1 2 2 3 3 4 4 0 0 ...
    assert [sliding_window_start(k, 4, 2, 1) for k in range(12)] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 0, 0]
    # stride 3 wraps modulo max_start + 1 = 5: 0 3 1 4 2
    assert [sliding_window_start(k, 4, 1, 3) for k in range(5)] == [0, 3, 1, 4, 2]
    with pytest.raises(ValueError):
        sliding_window_start(0, 4, 0, 1)


def test_grpo_sliding_schedule_moves_the_trained_steps(tmp_path):
    import torch
    from _rl_helpers import grpo_recipe, random_checkpoint

    from irg_rl.train.grpo import GRPOTrainer
    from irg_rl.train.rl_outputs import load_rollout

    torch.set_num_threads(1)
    over = {
        "grpo.sde_window_start": None,
        "grpo.sde_window_size": 1,
        "grpo.sde_window_max_start": 2,
        "grpo.sde_window_schedule": "sliding",
        "grpo.inner_updates": 1,
        "train.max_steps": 4,
        "eval.num_prompts": 0,
    }
    GRPOTrainer(grpo_recipe(random_checkpoint(tmp_path), tmp_path / "out", **over)).run()
    starts = []
    for step in range(1, 5):
        batch, _ = load_rollout(tmp_path / "out" / "rollouts" / f"step-{step:06d}.pt")
        starts.append(int(batch[0].segment("image_1").step_index[0]))
    assert starts == [0, 1, 2, 0]
