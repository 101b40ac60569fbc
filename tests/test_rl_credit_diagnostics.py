"""Within-group correlation of round-2 credit with the image_1 outcome, against hand-computed values."""

import math

import pytest
import torch

from irg_rl.train.rl.config import CreditConfig
from irg_rl.train.rl.credit import assign_credit
from irg_rl.train.rl.credit_diagnostics import within_group_corr


def test_pooled_within_group_corr_by_hand():
    state = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    outcome = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    # centred: x = [.5, -.5], [0, 0]; y = [-.5, .5], [.5, -.5] -> sxy = -.5, sxx = .5, syy = 1
    assert within_group_corr(outcome, state) == pytest.approx(-0.5 / math.sqrt(0.5))


def test_group_offsets_are_removed_and_exact_dependence_is_one():
    state = torch.tensor([[0.0, 1.0, 2.0], [10.0, 11.0, 12.0]])
    assert within_group_corr(2 * state + 3, state) == pytest.approx(1.0)
    # the same values without the between-group offset give the same answer
    assert within_group_corr(-state, state) == pytest.approx(within_group_corr(-state, state - state[:, :1]))
    assert within_group_corr(-state, state) == pytest.approx(-1.0)


def test_no_variance_is_nan_and_shapes_are_checked():
    assert math.isnan(within_group_corr(torch.ones(2, 4), torch.rand(2, 4)))
    with pytest.raises(ValueError, match=r"\[num_groups, G\]"):
        within_group_corr(torch.ones(8), torch.ones(8))


def _rewards(image_1, image_2):
    one = torch.tensor([image_1])
    two = torch.tensor([image_2])
    return {"image_1": one, "image_2": two, "improvement": two - one}


def test_improvement_weight_leaks_image_1_into_round_2_credit():
    rewards = _rewards([1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0])
    leak = CreditConfig(mode="per_round", image_2=1.0, improvement=0.5, no_regression=0.0, format=0.0)
    clean = CreditConfig(mode="per_round", image_2=1.0, improvement=0.0, no_regression=0.0, format=0.0)
    # round 2 = 1.5 image_2 - .5 image_1: x = [.5,-.5,.5,-.5], y = [.5, 1, -1, -.5] -> sxy = -.5, sxx = 1, syy = 2.5
    expected = -0.5 / math.sqrt(2.5)
    assert assign_credit(rewards, leak).stats["round_2_vs_image_1_corr"] == pytest.approx(expected)
    # image_2 here is independent of image_1 within the group, so without the improvement term there is no leak
    assert assign_credit(rewards, clean).stats["round_2_vs_image_1_corr"] == pytest.approx(0.0)
