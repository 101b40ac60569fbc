"""Group-normalised advantages, NaN policy and credit assignment against hand-computed values."""

import math

import numpy as np
import pytest
import torch

from irg_rl.config import ConfigError
from irg_rl.train.rl.advantages import combine_rewards, group_advantages
from irg_rl.train.rl.config import CreditConfig
from irg_rl.train.rl.credit import assign_credit

REWARDS = torch.tensor([[1.0, 0.0, 0.0, 1.0], [2.0, 2.0, 2.0, 2.0], [0.0, 1.0, 2.0, 3.0]])


def test_group_advantages_by_hand_and_zero_std_dropped():
    res = group_advantages(REWARDS, eps=0.0)
    # group 0: mean .5, population std .5; group 2: mean 1.5, std sqrt(1.25) = 1.1180340
    expected = torch.tensor(
        [[1.0, -1.0, -1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [-1.3416408, -0.4472136, 0.4472136, 1.3416408]]
    )
    assert torch.allclose(res.advantages, expected, atol=1e-6)
    assert res.valid.tolist() == [[True] * 4, [False] * 4, [True] * 4]
    assert (res.num_groups, res.num_zero_std) == (3, 1)


def test_group_advantages_unbiased_eps_and_clip():
    res = group_advantages(REWARDS[2:], eps=0.0, unbiased=True)
    # sample std sqrt(5/3) = 1.2909944
    assert torch.allclose(res.advantages, torch.tensor([[-1.1618950, -0.3872983, 0.3872983, 1.1618950]]))
    res = group_advantages(REWARDS[:1], eps=0.5)
    assert torch.allclose(res.advantages, torch.tensor([[0.5, -0.5, -0.5, 0.5]]))  # 0.5 / (0.5 + 0.5)
    res = group_advantages(REWARDS[2:], eps=0.0, adv_clip=1.0)
    assert torch.allclose(res.advantages, torch.tensor([[-1.0, -0.4472136, 0.4472136, 1.0]]))


def test_flat_group_ids_match_grouped_and_allow_any_sizes():
    perm = torch.tensor([5, 0, 11, 7, 2, 9, 1, 3, 10, 4, 8, 6])
    flat = REWARDS.reshape(-1)[perm]
    ids = (torch.arange(12) // 4 * 10 + 3)[perm]  # arbitrary labels 3, 13, 23
    res = group_advantages(flat, ids)
    ref = group_advantages(REWARDS).advantages.reshape(-1)[perm]
    assert torch.allclose(res.advantages, ref) and res.num_zero_std == 1
    # unequal sizes: group 0 = [1, 3, 5] mean 3, std sqrt(8/3); group 9 has one sample -> zero-std
    res = group_advantages(torch.tensor([1.0, 3.0, 5.0, 10.0]), torch.tensor([0, 0, 0, 9]), eps=0.0)
    assert torch.allclose(res.advantages, torch.tensor([-1.2247449, 0.0, 1.2247449, 0.0]))
    assert res.valid.tolist() == [True, True, True, False] and res.num_zero_std == 1


def test_nan_reward_is_an_error_naming_the_sample():
    r = REWARDS.clone()
    r[0, 1] = float("nan")
    with pytest.raises(ValueError, match="group 0 member 1"):
        group_advantages(r)
    with pytest.raises(ValueError, match="sample 2"):
        group_advantages(torch.tensor([0.0, 1.0, float("inf")]), torch.tensor([0, 0, 0]))


def test_combine_rewards_nan_policies():
    nan = float("nan")
    comps = {
        "image_2": torch.tensor([1.0, 0.0, nan]),
        "improvement": torch.tensor([nan, 1.0, nan]),
        "format": torch.tensor([0.5, 0.5, 1.0]),
    }
    w = {"image_2": 1.0, "improvement": 0.5, "format": 0.1}
    # skip: NaN adds nothing -> [1 + .05, 0 + .5 + .05, .1]
    assert torch.allclose(combine_rewards(comps, w), torch.tensor([1.05, 0.55, 0.1]))
    # renormalize: divided by the applicable weights [1.1, 1.6, 0.1]
    out = combine_rewards(comps, w, missing="renormalize")
    assert torch.allclose(out, torch.tensor([1.05 / 1.1, 0.55 / 1.6, 1.0]))
    with pytest.raises(ValueError, match="sample 2"):
        combine_rewards(comps, {"image_2": 1.0, "improvement": 0.5})
    with pytest.raises(ValueError, match="no_regression"):
        combine_rewards(comps, {"image_2": 1.0, "no_regression": 0.5})


def _np_adv(r):
    r = np.asarray(r, dtype=np.float64)
    return (r - r.mean()) / (r.std() + 1e-6)


def _irg_rewards():
    nan = float("nan")
    return {
        "image_1": torch.tensor([[0.0, 1.0, 0.0, 1.0]]),
        "image_2": torch.tensor([[1.0, 1.0, 0.0, 1.0]]),
        "improvement": torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
        "no_regression": torch.tensor([[nan, 1.0, nan, 1.0]]),
        "format": torch.tensor([[1.0, 1.0, 0.0, 0.5]]),
    }


def test_per_round_credit_by_hand():
    cfg = CreditConfig(mode="per_round", image_2=1.0, improvement=0.5, no_regression=0.5, format=0.1)
    out = assign_credit(_irg_rewards(), cfg)
    # round 2 = image_2 + .5 improvement + .5 no_regression (NaN skipped) + .1 format
    r2 = [1 + 0.5 + 0.1, 1 + 0.5 + 0.1, 0.0, 1 + 0.5 + 0.05]
    assert np.allclose(out.round_2.numpy()[0], _np_adv(r2), atol=1e-5)
    assert np.allclose(out.round_1.numpy()[0], _np_adv([0, 1, 0, 1]), atol=1e-5)
    assert out.valid_1.all() and out.valid_2.all()
    assert out.stats["nan_no_regression"] == 2 and out.stats["zero_std_share"] == 0


def test_shared_credit_by_hand_and_zero_std_counted():
    cfg = CreditConfig(mode="shared", shared_image_1=1.0)
    rewards = _irg_rewards()
    out = assign_credit(rewards, cfg)
    r = [1 + 0.5 + 0.1 + 0.0, 1 + 0.5 + 0.1 + 1.0, 0.0 + 0.0, 1 + 0.5 + 0.05 + 1.0]
    assert np.allclose(out.round_1.numpy()[0], _np_adv(r), atol=1e-5)
    assert torch.equal(out.round_1, out.round_2)
    # a second group where every trajectory is scored the same: dropped and counted
    two = {k: torch.cat([v, v[:, :1].expand(1, 4)]) for k, v in rewards.items()}
    two["no_regression"] = torch.tensor([[math.nan, 1.0, math.nan, 1.0], [0.0, 0.0, 0.0, 0.0]])
    out = assign_credit(two, cfg)
    assert out.valid_1.tolist() == [[True] * 4, [False] * 4]
    assert out.stats["zero_std_groups"] == 1 and out.stats["zero_std_share"] == 0.5
    assert torch.all(out.round_1[1] == 0)


def test_credit_errors_name_the_problem():
    rewards = _irg_rewards()
    rewards["image_1"] = torch.tensor([[0.0, math.nan, 0.0, 1.0]])
    with pytest.raises(ValueError, match="image_1 reward is NaN.*group 0 member 1"):
        assign_credit(rewards, CreditConfig(mode="per_round"))
    with pytest.raises(ConfigError, match="credit.mode"):
        assign_credit(_irg_rewards(), CreditConfig(mode="per_segment"))
    del rewards["format"]
    with pytest.raises(ValueError, match="format"):
        assign_credit(rewards, CreditConfig(mode="shared"))


def test_train_rounds_masks_the_untrained_round():
    cfg = CreditConfig(mode="per_round", image_2=1.0, improvement=0.5, no_regression=0.5, format=0.1)
    both = assign_credit(_irg_rewards(), cfg)
    cfg.train_rounds = [2]
    only_2 = assign_credit(_irg_rewards(), cfg)
    assert not only_2.valid_1.any() and torch.equal(only_2.round_1, torch.zeros_like(both.round_1))
    assert torch.equal(only_2.round_2, both.round_2) and torch.equal(only_2.valid_2, both.valid_2)
    shared = CreditConfig(mode="shared", train_rounds=[1])
    out = assign_credit(_irg_rewards(), shared)
    assert out.valid_1.all() and not out.valid_2.any() and float(out.round_2.abs().sum()) == 0.0
    for bad in ([], [3], [2, 2]):
        with pytest.raises(ConfigError, match="train_rounds"):
            CreditConfig(train_rounds=bad).validate()


def test_round_2_baseline_image_1_by_hand():
    """G = 4 = 2 first rounds x 2 continuations. image_2 [1, .5, .5, 0] and [1, 1, 0, 1]: against the group the
    first group's advantages are [1.414, 0, 0, -1.414]; against the same image_1 each pair is [1, -1]. In the
    second group the first pair ties (dropped: no signal about what round 2 added), the second is [-1, 1]."""
    rewards = {
        "image_1": torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]),
        "image_2": torch.tensor([[1.0, 0.5, 0.5, 0.0], [1.0, 1.0, 0.0, 1.0]]),
    }
    only_image_2 = dict(improvement=0.0, no_regression=0.0, format=0.0)
    group = assign_credit(rewards, CreditConfig(**only_image_2), eps=0.0)
    assert torch.allclose(group.round_2[0], torch.tensor([math.sqrt(2), 0.0, 0.0, -math.sqrt(2)]), atol=1e-6)
    own = assign_credit(
        rewards, CreditConfig(round_2_baseline="image_1", **only_image_2), eps=0.0, branches=2
    )
    assert torch.allclose(own.round_2, torch.tensor([[1.0, -1.0, 1.0, -1.0], [0.0, 0.0, -1.0, 1.0]]))
    assert own.valid_2.tolist() == [[True] * 4, [False, False, True, True]]
    assert torch.equal(own.round_1, group.round_1)  # round 1 still against the whole group
    assert own.stats["round_2_baseline_groups"] == 4 and own.stats["zero_std_groups_round_2"] == 1
    assert abs(own.stats["round_2_adv_vs_image_1_corr"]) < 1e-9  # the credit no longer leans on image_1
    with pytest.raises(ValueError, match="branches"):
        assign_credit(rewards, CreditConfig(round_2_baseline="image_1", **only_image_2), branches=1)
    with pytest.raises(ConfigError, match="round_2_baseline"):
        CreditConfig(mode="shared", round_2_baseline="image_1").validate()
    with pytest.raises(ConfigError, match="round_2_baseline"):
        CreditConfig(round_2_baseline="first").validate()


def test_round_2_baseline_same_image_1_reward_by_hand():
    """image_1 [1, 1, 0, 0] / [.5, .5, .5, 1], image_2 [1, .5, .5, 0] / [1, 0, .5, 1]. Against the whole group, row
    0 is [1.414, 0, 0, -1.414] (round 2 credited for the better image_1). Among equal image_1 scores: row 0 is
    {1, .5} -> [1, -1] and {.5, 0} -> [1, -1]; row 1's three 0.5s have r2 {1, 0, .5}: mean .5, std sqrt(1/6), so
    [1.2247, -1.2247, 0]; its lone 1.0 has no peer and is dropped."""
    rewards = {
        "image_1": torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.5, 0.5, 0.5, 1.0]]),
        "image_2": torch.tensor([[1.0, 0.5, 0.5, 0.0], [1.0, 0.0, 0.5, 1.0]]),
    }
    only_image_2 = dict(improvement=0.0, no_regression=0.0, format=0.0)
    cfg = CreditConfig(round_2_baseline="image_1_reward", **only_image_2)
    same = assign_credit(rewards, cfg, eps=0.0)
    z = math.sqrt(1.5)  # 0.5 / sqrt(1/6)
    assert torch.allclose(same.round_2, torch.tensor([[1.0, -1.0, 1.0, -1.0], [z, -z, 0.0, 0.0]]), atol=1e-6)
    assert same.valid_2.tolist() == [[True] * 4, [True, True, True, False]]
    assert same.stats["round_2_baseline_groups"] == 4 and same.stats["zero_std_groups_round_2"] == 1
    assert same.stats["round_2_trained_share"] == 7 / 8
    assert abs(same.stats["round_2_adv_vs_image_1_corr"]) < 1e-9
    group = assign_credit(rewards, CreditConfig(**only_image_2), eps=0.0)
    assert torch.equal(same.round_1, group.round_1)  # round 1 still against the whole group
    # flat [B] rewards with group labels give the same credit
    labels = torch.tensor([7] * 4 + [3] * 4)
    flat = assign_credit({k: v.reshape(-1) for k, v in rewards.items()}, cfg, labels, eps=0.0)
    assert torch.allclose(flat.round_2, same.round_2.reshape(-1), atol=1e-6)
    with pytest.raises(ConfigError, match="image_1_reward needs mode: per_round"):
        CreditConfig(mode="shared", round_2_baseline="image_1_reward").validate()
