"""Self-verification credit by hand: the verdict reward reaches think_2 only, and image_2 steps are credited only
where the trajectory continued (normalised among the continued samples)."""

from __future__ import annotations

import math

import pytest
import torch

from irg_rl.train.rl.config import CreditConfig
from irg_rl.train.rl.credit import assign_credit

S2 = math.sqrt(2.0)


def _rewards():
    # one group of 4: sample 0 kept a right image_1 (stopped, image_2 = image_1), samples 1-3 continued
    return {
        "image_1": torch.tensor([[1.0, 1.0, 0.0, 0.0]]),
        "image_2": torch.tensor([[1.0, 0.0, 0.0, 1.0]]),
        "verdict": torch.tensor([[1.0, 0.0, 1.0, 0.0]]),
    }


def _cfg(**kw) -> CreditConfig:
    return CreditConfig(mode="per_round", image_2=1.0, improvement=0.0, no_regression=0.0, format=0.0, **kw)


def test_verdict_goes_to_think_2_and_image_2_only_where_continued():
    continued = torch.tensor([[False, True, True, True]])
    c = assign_credit(_rewards(), _cfg(verdict=1.0), continued=continued, eps=0.0)
    # round 1: r1 = [1, 1, 0, 0], mean 0.5, std 0.5 -> [1, 1, -1, -1]
    assert torch.allclose(c.round_1, torch.tensor([[1.0, 1.0, -1.0, -1.0]]))
    # round 2 without the verdict: r2 = [1, 0, 0, 1], mean 0.5, std 0.5 -> [1, -1, -1, 1]
    assert torch.allclose(c.round_2, torch.tensor([[1.0, -1.0, -1.0, 1.0]]))
    # think_2: r2 + verdict = [2, 0, 1, 1], mean 1, std sqrt(0.5) -> [sqrt 2, -sqrt 2, 0, 0]
    adv_t, valid_t = c.for_segment("think_2")
    assert torch.allclose(adv_t, torch.tensor([[S2, -S2, 0.0, 0.0]]), atol=1e-6) and bool(valid_t.all())
    # image_2: among the continued [0, 0, 1]: mean 1/3, std sqrt(2/9) -> [-1/sqrt 2, -1/sqrt 2, sqrt 2]; sample 0 none
    adv_i, valid_i = c.for_segment("image_2")
    assert torch.allclose(adv_i, torch.tensor([[0.0, -1 / S2, -1 / S2, S2]]), atol=1e-6)
    assert valid_i.tolist() == [[False, True, True, True]]
    assert c.stats["round_2_image_trained_share"] == pytest.approx(0.75)
    # image_1 and think_1 take round 1
    assert torch.equal(c.for_segment("image_1")[0], c.round_1)


def test_select_keeps_every_variant():
    c = assign_credit(
        _rewards(), _cfg(verdict=1.0), continued=torch.tensor([[False, True, True, True]]), eps=0.0
    )
    sub = c.select([3, 0])
    assert torch.allclose(sub.for_segment("think_2")[0], torch.tensor([0.0, S2]), atol=1e-6)
    assert torch.allclose(sub.for_segment("image_2")[0], torch.tensor([S2, 0.0]), atol=1e-6)
    assert sub.for_segment("image_2")[1].tolist() == [True, False]


def test_without_verdict_or_stops_nothing_changes():
    c = assign_credit(_rewards(), _cfg(), continued=torch.ones(1, 4, dtype=torch.bool), eps=0.0)
    assert c.round_2_text is None and c.round_2_image is None
    assert torch.equal(c.for_segment("think_2")[0], c.round_2)
    assert torch.equal(c.for_segment("image_2")[0], c.round_2)


def test_shared_mode_adds_the_verdict_to_the_one_reward():
    c = assign_credit(
        _rewards(),
        CreditConfig(mode="shared", improvement=0, no_regression=0, format=0, verdict=1.0),
        eps=0.0,
    )
    # shared r = image_2 + verdict = [2, 0, 1, 1] -> [sqrt 2, -sqrt 2, 0, 0] for every segment
    assert torch.allclose(c.round_1, torch.tensor([[S2, -S2, 0.0, 0.0]]), atol=1e-6)
    assert torch.equal(c.round_1, c.round_2)


def test_train_rounds_1_masks_the_round_2_variants():
    c = assign_credit(
        _rewards(), _cfg(verdict=1.0, train_rounds=[1]), continued=torch.tensor([[False, True, True, True]])
    )
    for name in ("think_2", "image_2"):
        adv, valid = c.for_segment(name)
        assert not bool(valid.any()) and not bool(adv.any())


def test_reading_goes_to_think_2_beside_the_verdict():
    rewards = {**_rewards(), "reading": torch.tensor([[0.0, 1.0, 1.0, 0.0]])}
    c = assign_credit(rewards, _cfg(reading=1.0), eps=0.0)
    # round 2 keeps r2 = [1, 0, 0, 1] -> [1, -1, -1, 1]; think_2: r2 + reading = [1, 1, 1, 1] -> no signal (0)
    assert torch.allclose(c.round_2, torch.tensor([[1.0, -1.0, -1.0, 1.0]]))
    assert torch.allclose(c.for_segment("think_2")[0], torch.zeros(1, 4))
    assert torch.equal(c.for_segment("image_2")[0], c.round_2)
    # with the verdict too: r2 + verdict + reading = [2, 1, 2, 1], mean 1.5, std 0.5 -> [1, -1, 1, -1]
    both = assign_credit(rewards, _cfg(verdict=1.0, reading=1.0), eps=0.0)
    assert torch.allclose(both.for_segment("think_2")[0], torch.tensor([[1.0, -1.0, 1.0, -1.0]]))
    # a reading weight without the component is named
    with pytest.raises(ValueError, match="reading"):
        assign_credit(_rewards(), _cfg(reading=1.0), eps=0.0)


def test_dpo_ranks_by_the_reading_too():
    from irg_rl.train.rl.dpo import ranking_rewards

    comps = {
        "image_1": torch.tensor([1.0, 0.0]),
        "image_2": torch.tensor([0.5, 0.5]),
        "reading": torch.tensor([0.0, 1.0]),
    }
    r = ranking_rewards(comps, _cfg(reading=2.0))
    assert torch.allclose(r, torch.tensor([0.5, 2.5]))
