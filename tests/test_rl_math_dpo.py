"""DPO maths: pair selection, sigmoid DPO on text, Diffusion-DPO on flow steps, stats, config validation."""

import math

import pytest
import torch

from irg_rl.config import ConfigError, config_from_dict
from irg_rl.inference.sde import gaussian_log_prob, sde_sample_step, sde_step_log_prob, sde_step_mean_std
from irg_rl.train.rl.config import CreditConfig, DPOConfig, GRPOConfig
from irg_rl.train.rl.dpo import ranking_rewards
from irg_rl.train.rl.dpo_loss import (
    DPOTerms,
    best_worst_pairs,
    dpo_loss,
    flow_step_log_ratio,
    ranked_pairs,
    sequence_log_probs,
    sigmoid_dpo_loss,
)
from irg_rl.train.rl.recipe import DPOSection


def _terms(pc, pr, rc, rr):
    return DPOTerms(*(torch.tensor(v, dtype=torch.float32) for v in (pc, pr, rc, rr)))


def test_best_worst_pairs_skip_ties_and_margin():
    r = torch.tensor([[0.1, 0.9, 0.5], [1.0, 1.0, 1.0], [0.3, 0.2, 0.3], [0.0, 0.0, 1.0]])
    p = best_worst_pairs(r)
    assert p.group.tolist() == [0, 2, 3] and p.num_skipped == 1
    assert p.chosen.tolist() == [1, 0, 2]  # group 2: first of the tied best
    assert p.rejected.tolist() == [0, 1, 0]
    chosen, rejected = p.flat(3)
    assert chosen.tolist() == [1, 6, 11] and rejected.tolist() == [0, 7, 9]
    p = best_worst_pairs(r, min_margin=0.5)  # group 2's margin is 0.1
    assert p.group.tolist() == [0, 3] and p.num_skipped == 2
    r[3, 1] = float("nan")
    with pytest.raises(ValueError, match="group 3 member 1"):
        best_worst_pairs(r)


def test_ranked_pairs_pair_ith_best_with_ith_worst():
    r = torch.tensor([[0.5, 0.9, 0.1, 0.7], [1.0, 1.0, 1.0, 0.0], [0.2, 0.2, 0.2, 0.2]])
    p = ranked_pairs(r, pairs_per_group=2)
    # group 0: best-to-worst order 1, 3, 0, 2 -> pairs (1, 2) and (3, 0)
    # group 1: descending 0, 1, 2, 3; ascending 3, 0, 1, 2 -> (0, 3) kept, (1, 0) is a tie and dropped
    # group 2: all tied -> no pair, counted as skipped
    assert p.group.tolist() == [0, 0, 1]
    assert p.chosen.tolist() == [1, 3, 0] and p.rejected.tolist() == [2, 0, 3]
    assert p.num_skipped == 1
    one = ranked_pairs(r, pairs_per_group=1)
    bw = best_worst_pairs(r)
    assert one.chosen.tolist() == bw.chosen.tolist() == [1, 0]
    assert one.rejected.tolist() == bw.rejected.tolist() == [2, 3]
    assert ranked_pairs(r, 2, min_margin=0.3).chosen.tolist() == [1, 0]  # group 0's second gap is 0.2
    with pytest.raises(ValueError, match="pairs_per_group"):
        ranked_pairs(r, pairs_per_group=3)


def test_default_ranking_does_not_prefer_a_worse_first_image():
    # A: image_1 half right, image_2 right; B: image_1 wrong, image_2 right (bigger improvement); C: both wrong.
    # no_regression is NaN where image_1 was not right (skipped).
    comps = {
        "image_1": torch.tensor([0.5, 0.0, 0.0]),
        "image_2": torch.tensor([1.0, 1.0, 0.0]),
        "improvement": torch.tensor([0.5, 1.0, 0.0]),
        "no_regression": torch.tensor([math.nan, math.nan, math.nan]),
        "format": torch.tensor([1.0, 1.0, 1.0]),
    }
    # default: image_1 + image_2 + .5 improvement + .1 format
    r = ranking_rewards(comps, DPOSection().ranking)
    assert torch.allclose(r, torch.tensor([0.5 + 1 + 0.25 + 0.1, 0 + 1 + 0.5 + 0.1, 0.1]))
    assert ranked_pairs(r[None], 1).chosen.tolist() == [0]
    # without image_1 the improvement term would rank B (the worse first image) above A
    old = ranking_rewards(comps, CreditConfig(mode="shared", shared_image_1=0.0))
    assert torch.allclose(old, torch.tensor([1.35, 1.6, 0.1]))
    assert ranked_pairs(old[None], 1).chosen.tolist() == [1]


def test_dpo_loss_log2_at_equal_logits_and_decreasing_with_margin():
    # policy == reference: delta = 0 -> log 2
    losses, cr, rr = sigmoid_dpo_loss(
        _terms([-3.0, -1.0], [-2.0, -5.0], [-3.0, -1.0], [-2.0, -5.0]), beta=0.1
    )
    assert torch.allclose(losses, torch.full((2,), math.log(2)))
    assert torch.all(cr == 0) and torch.all(rr == 0)
    margins = [-1.0, 0.0, 1.0, 2.0, 4.0]
    losses, _, _ = sigmoid_dpo_loss(_terms(margins, [0.0] * 5, [0.0] * 5, [0.0] * 5), beta=1.0)
    assert torch.all(losses[1:] < losses[:-1])
    # -log sigmoid(m) = log(1 + e^-m)
    assert torch.allclose(losses, torch.tensor([math.log1p(math.exp(-m)) for m in margins]))


def test_dpo_by_hand_with_label_smoothing_and_stats():
    # chosen log-ratio -1 - (-2) = 1, rejected -3 - (-2) = -1, beta .5 -> logit 1
    t = _terms([-1.0], [-3.0], [-2.0], [-2.0])
    losses, cr, rr = sigmoid_dpo_loss(t, beta=0.5)
    assert losses.item() == pytest.approx(math.log1p(math.exp(-1)), abs=1e-6)  # 0.3132617
    assert (cr.item(), rr.item()) == (0.5, -0.5)
    losses, _, _ = sigmoid_dpo_loss(t, beta=0.5, label_smoothing=0.1)
    assert losses.item() == pytest.approx(0.9 * 0.3132617 + 0.1 * 1.3132617, abs=1e-6)
    loss, stats = dpo_loss(t, None, DPOConfig(beta_text=0.5))
    assert loss.item() == pytest.approx(0.3132617, abs=1e-6)
    assert stats["text/reward_accuracy"] == 1.0 and stats["text/reward_margin"] == pytest.approx(1.0)
    assert stats["text/chosen_reward"] == 0.5 and stats["text/rejected_reward"] == -0.5


def test_sequence_log_probs_sums_masked():
    lp = torch.tensor([[-1.0, -2.0, -4.0], [-0.5, -0.5, -9.0]])
    assert sequence_log_probs(lp, torch.tensor([[1, 1, 1], [1, 1, 0]])).tolist() == [-7.0, -1.0]


def test_flow_step_log_ratio_mse_form():
    # x = [1, 1], mean [0, 1], ref [1, 1], std 1: -((1 + 0) - (0 + 0)) / 2, averaged over 2 dims -> -0.25
    x, mean, ref = torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]])
    assert flow_step_log_ratio(x, mean, ref, 1.0).item() == pytest.approx(-0.25)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 2, generator=g)
    m1, s = sde_step_mean_std(x, torch.randn(4, 3, 2, generator=g), 0.7, 0.6, 0.7)
    m2, _ = sde_step_mean_std(x, torch.randn(4, 3, 2, generator=g), 0.7, 0.6, 0.7)
    x_next = m1 + s * torch.randn(4, 3, 2, generator=g)
    diff = gaussian_log_prob(x_next, m1, s) - gaussian_log_prob(x_next, m2, s)
    assert torch.allclose(flow_step_log_ratio(x_next, m1, m2, s), diff, atol=1e-5)


def test_flow_dpo_gradient_prefers_chosen():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, generator=g)  # row 0: chosen trajectory's latent, row 1: rejected
    v_ref = torch.randn(2, 6, generator=g)
    with torch.no_grad():
        x_next, _ = sde_sample_step(x, v_ref, 0.5, 0.4, 0.7, g)
    delta = torch.zeros(1, 6, requires_grad=True)  # policy velocity = reference + delta (shared)

    def log_ratios(d):
        lp, _, _ = sde_step_log_prob(x, v_ref + d, 0.5, 0.4, 0.7, x_next)
        ref, _, _ = sde_step_log_prob(x, v_ref, 0.5, 0.4, 0.7, x_next)
        return lp, ref

    lp, ref = log_ratios(delta)
    loss, stats = dpo_loss(None, DPOTerms(lp[:1], lp[1:], ref[:1], ref[1:]), DPOConfig(beta_flow=1000.0))
    assert loss.item() == pytest.approx(math.log(2), abs=1e-5)
    (grad,) = torch.autograd.grad(loss, delta)
    with torch.no_grad():
        lp2, ref2 = log_ratios(-1e-3 * grad)
    assert (lp2[0] - ref2[0]) - (lp2[1] - ref2[1]) > 0


def test_configs_validate_and_name_the_field():
    with pytest.raises(ConfigError, match="dpo.label_smoothing"):
        config_from_dict(DPOConfig, {"label_smoothing": 0.5})
    with pytest.raises(ConfigError, match="grpo.text_aggregation"):
        config_from_dict(GRPOConfig, {"text_aggregation": "mean"})
    with pytest.raises(ConfigError, match="grpo.group_size"):
        config_from_dict(GRPOConfig, {"group_size": 1})
    cfg = config_from_dict(GRPOConfig, {"sde_window_schedule": "sliding", "credit": {"mode": "shared"}})
    assert cfg.sde_window_schedule == "sliding" and cfg.credit.mode == "shared"
    assert config_from_dict(GRPOConfig, {}).flow_clip_high == 1e-4
