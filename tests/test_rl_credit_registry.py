"""Credit rules and round-2 baselines are registered by name: a new one plugs in without touching assign_credit."""

from __future__ import annotations

import pytest
import torch

from irg_rl.config import ConfigError
from irg_rl.train.rl.advantages import CreditAdvantages
from irg_rl.train.rl.credit import (
    CREDIT_RULES,
    ROUND_2_BASELINES,
    CreditConfig,
    assign_credit,
    register_credit_rule,
    register_round_2_baseline,
)


def test_builtins_are_registered():
    assert set(CREDIT_RULES) >= {"shared", "per_round"}
    assert set(ROUND_2_BASELINES) >= {"group", "image_1", "image_1_reward"}


def test_a_registered_rule_is_used_by_assign_credit_and_train_rounds_still_apply():
    @register_credit_rule("image_1_only_test")
    def rule(x, cfg):
        r1 = x.rewards["image_1"]
        adv = r1 - r1.mean(dim=1, keepdim=True)  # hand rule: centred image_1 reward for both rounds
        valid = torch.ones_like(r1, dtype=torch.bool)
        return CreditAdvantages(adv, adv.clone(), valid, valid.clone(), x.stats)

    try:
        r = {"image_1": torch.tensor([[1.0, 0.0]]), "image_2": torch.tensor([[0.0, 0.0]])}
        out = assign_credit(r, CreditConfig(mode="image_1_only_test", train_rounds=[2]))
        assert out.round_2.tolist() == [[0.5, -0.5]]
        assert out.round_1.tolist() == [[0.0, 0.0]] and not out.valid_1.any()  # round 1 not trained
        with pytest.raises(ValueError, match="registered twice"):
            register_credit_rule("image_1_only_test")(rule)
    finally:
        CREDIT_RULES.pop("image_1_only_test")


def test_a_registered_round_2_baseline_sets_the_normalisation_sets():
    @register_round_2_baseline("pairs_test")
    def pairs(r1, group_ids, branches):
        return torch.arange(r1.numel()) // 2  # members (0, 1) and (2, 3) of the one group

    try:
        r = {"image_1": torch.zeros(1, 4), "image_2": torch.tensor([[1.0, 0.0, 3.0, 3.0]])}
        cfg = CreditConfig(round_2_baseline="pairs_test", improvement=0, no_regression=0, format=0)
        out = assign_credit(r, cfg)
        # pair (1, 0) -> +-1 (population std 0.5, eps 1e-6); pair (3, 3) has no signal
        assert out.round_2[0, :2].tolist() == pytest.approx([1.0, -1.0], abs=1e-5)
        assert out.valid_2.tolist() == [[True, True, False, False]]
    finally:
        ROUND_2_BASELINES.pop("pairs_test")


def test_an_unknown_name_lists_the_registered_ones():
    with pytest.raises(
        ConfigError, match=r"credit.mode: must be a registered credit rule \['per_round', 'shared'"
    ):
        CreditConfig(mode="per_turn").validate()
    with pytest.raises(ConfigError, match="registered round-2 baseline"):
        CreditConfig(round_2_baseline="nope").validate()
