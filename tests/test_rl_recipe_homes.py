"""One home per setting in RL recipes: the SDE keys live in sampling.*, the group size in the algorithm's section;
a key that moved is refused naming its new home, and a conflicting sampling.samples_per_prompt is refused."""

from __future__ import annotations

import pytest

from irg_rl.config import ConfigError, config_from_dict
from irg_rl.train.rl.grpo import _sync_sampling
from irg_rl.train.rl.recipe import DPORecipe, GRPORecipe


def _recipe(schema=GRPORecipe, **sections) -> GRPORecipe:
    return config_from_dict(schema, {"train": {"output_dir": "unused"}, **sections})


@pytest.mark.parametrize(
    "key", ["noise_level", "sde_window_size", "sde_window_start", "sde_window_max_start"]
)
def test_a_moved_grpo_key_names_its_new_home(key):
    with pytest.raises(ConfigError, match=rf"'grpo.{key}' is no longer a key; set 'sampling.{key}' instead"):
        _recipe(grpo={key: 1})


def test_the_sde_settings_are_read_from_sampling_only():
    r = _recipe(sampling={"noise_level": 0.3, "sde_window_size": 3}, grpo={"group_size": 4})
    _sync_sampling(r)
    assert (r.sampling.noise_level, r.sampling.sde_window_size, r.sampling.samples_per_prompt) == (0.3, 3, 4)
    assert not hasattr(r.grpo, "noise_level")


def test_conflicting_samples_per_prompt_is_refused_naming_both():
    with pytest.raises(ConfigError, match=r"sampling.samples_per_prompt=3 conflicts with grpo.group_size=8"):
        _sync_sampling(_recipe(sampling={"samples_per_prompt": 3}))
    r = _recipe(sampling={"samples_per_prompt": 8})
    _sync_sampling(r)  # agreeing values pass, and syncing is idempotent
    _sync_sampling(r)
    assert r.sampling.samples_per_prompt == 8


def test_dpo_takes_its_group_size_from_pairs():
    from irg_rl.train.rl.recipe import sync_group_size

    r = _recipe(DPORecipe, sampling={"samples_per_prompt": 3}, pairs={"group_size": 4})
    with pytest.raises(ConfigError, match=r"conflicts with pairs.group_size=4"):
        sync_group_size(r.sampling, r.pairs.group_size, "pairs.group_size")


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

    from irg_rl.train.rl.grpo import GRPOTrainer
    from irg_rl.train.rl.outputs import load_rollout

    torch.set_num_threads(1)
    over = {
        "sampling.sde_window_start": None,
        "sampling.sde_window_size": 1,
        "sampling.sde_window_max_start": 2,
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
