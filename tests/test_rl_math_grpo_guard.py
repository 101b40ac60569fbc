"""GRPO-Guard's ratio normalisation on hand values: the drift bias, the std rescaling, ratio 1 at equal inputs,
the 1 / dt step weight in the loss, the Gaussian identity it corrects, and the driver's first-step ratio."""

from __future__ import annotations

import pytest
import torch
from _rl_helpers import grpo_recipe, random_checkpoint

from irg_rl.inference.sde import gaussian_log_prob
from irg_rl.train.rl.grpo import GRPOTrainer
from irg_rl.train.rl.policy_loss import PolicyTerms, guard_log_ratio, policy_loss


def test_guard_log_ratio_by_hand():
    logp, old = torch.tensor([[-1.0]]), torch.tensor([[-1.5]])
    mean = torch.full((1, 1, 2, 2), 0.1)  # differs from old_mean by 0.1 in each of 4 dims
    old_mean = torch.zeros(1, 1, 2, 2)
    std = torch.tensor([[0.2]])
    # b = 0.01 / (2 * 0.04) = 0.125; (0.5 + 0.125) * 0.2 = 0.125
    assert guard_log_ratio(logp, old, mean, old_mean, std).item() == pytest.approx(0.125)
    assert guard_log_ratio(old, old, old_mean, old_mean, std).item() == 0.0  # the first inner step: ratio 1


def test_bias_is_minus_the_expected_log_ratio_under_the_old_policy():
    """E_old[log p_new(x) - log p_old(x)] = -mean((mu_new - mu_old)^2) / (2 std^2) per dim: b re-centres it."""
    g = torch.Generator().manual_seed(0)
    mu_old, mu_new, std = torch.zeros(4000, 8), torch.full((4000, 8), 0.05), 0.1
    x = mu_old + std * torch.randn(4000, 8, generator=g)
    lr = gaussian_log_prob(x, mu_new, std) - gaussian_log_prob(x, mu_old, std)  # per-dim mean, [4000]
    b = 0.05**2 / (2 * std**2)
    assert lr.mean().item() == pytest.approx(-b, abs=0.01)
    guarded = guard_log_ratio(
        lr[:, None], torch.zeros(4000, 1), mu_new[:, None], mu_old[:, None], torch.full((4000, 1), std)
    )
    assert guarded.mean().item() == pytest.approx(0.0, abs=0.01 * std)


def test_step_weight_scales_the_clipped_term():
    terms = PolicyTerms(
        logp=torch.zeros(1, 2),
        old_logp=torch.zeros(1, 2),
        advantages=torch.tensor([1.0]),
        mask=torch.ones(1, 2, dtype=torch.bool),
        log_ratio=torch.zeros(1, 2),
        weight=torch.tensor([[2.0, 4.0]]),
    )
    loss, stats = policy_loss(terms, clip_low=1e-6, clip_high=1e-6)
    assert loss.item() == pytest.approx(-(2.0 + 4.0) / 2)  # -ratio * A * weight, token mean
    assert stats["ratio_max_dev"] == 0.0


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("guard_ckpt"))


def test_grpo_with_guard_ratio_is_one_at_the_first_inner_step(ckpt, tmp_path):
    recipe = grpo_recipe(
        ckpt,
        tmp_path / "out",
        **{"grpo.flow_ratio": "guard", "grpo.flow_clip_low": 1e-3, "grpo.flow_clip_high": 1e-3},
    )
    trainer = GRPOTrainer(recipe)
    before = {n: p.detach().clone() for n, p in trainer.setup.bagel.named_parameters()}
    stats = trainer.run()[-1]
    assert stats["ratio_check/ok"] == 1.0
    assert stats["first/flow/num_elements"] > 0 and stats["first/flow/ratio_max_dev"] < 1e-6
    assert any(not torch.equal(p.detach(), before[n]) for n, p in trainer.setup.bagel.named_parameters())
