"""DiffusionNFT maths on hand-computed values: the reward probability, the implicit policies, the loss and its
gradient at v == v_old (the first inner update), adaptive weighting and the velocity penalty."""

from __future__ import annotations

import pytest
import torch

from irg_rl.train.rl.nft_loss import implicit_velocities, nft_image_loss, reward_probability, velocity_kl


def test_reward_probability_clips_and_maps_linearly():
    adv = torch.tensor([-10.0, -5.0, -2.5, 0.0, 2.5, 5.0, 10.0])
    r = reward_probability(adv, 5.0)
    assert torch.allclose(r, torch.tensor([0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0]))
    with pytest.raises(ValueError, match="clip_max"):
        reward_probability(adv, 0.0)


def test_implicit_policies_mirror_about_the_old_velocity():
    v, v_old = torch.tensor([2.0, -1.0]), torch.tensor([1.0, 1.0])
    pos, neg = implicit_velocities(v, v_old, beta=0.5)
    assert torch.allclose(pos, torch.tensor([1.5, 0.0]))  # 1 + 0.5 * (2 - 1), 1 + 0.5 * (-1 - 1)
    assert torch.allclose(neg, torch.tensor([0.5, 2.0]))  # 1 - 0.5 * (2 - 1), 1 - 0.5 * (-1 - 1)
    assert torch.allclose((pos + neg) / 2, v_old)


def _one(x0, eps, t, v, v_old):
    """One sample, one token, two dims: shapes [1, 1, 2]."""
    f = lambda a: torch.tensor(a, dtype=torch.float32).reshape(1, 1, 2)  # noqa: E731
    x0, eps, v, v_old = f(x0), f(eps), f(v), f(v_old)
    tt = torch.tensor([t])
    return x0, (1 - t) * x0 + t * eps, tt, v, v_old


def test_loss_on_hand_values_without_adaptive_weight():
    # x0 = (0, 0), eps = (1, 2), t = 0.5: x_t = (0.5, 1), target eps - x0 = (1, 2)
    x0, x_t, t, v, v_old = _one([0, 0], [1, 2], 0.5, [2.0, 2.0], [1.0, 1.0])
    r = torch.tensor([0.75])
    loss, parts = nft_image_loss(v, v_old, x_t, x0, t, r, beta=1.0, adaptive_weight=False)
    # v_pos = v = (2, 2): x0_pos = x_t - 0.5 v_pos = (-0.5, 0) -> mean sq 0.125
    # v_neg = 2 v_old - v = (0, 0): x0_neg = (0.5, 1) -> mean sq 0.625
    assert parts["positive"].item() == pytest.approx(0.125)
    assert parts["negative"].item() == pytest.approx(0.625)
    assert parts["weight"].item() == 1.0
    assert loss.item() == pytest.approx(0.75 * 0.125 + 0.25 * 0.625)
    # the old policy's velocity MSE: ((1 - 1)^2 + (1 - 2)^2) / 2
    assert parts["old_mse"].item() == pytest.approx(0.5)


def test_adaptive_weight_divides_by_the_old_mean_abs_x0_error():
    x0, x_t, t, v, v_old = _one([0, 0], [1, 2], 0.5, [2.0, 2.0], [1.0, 1.0])
    r = torch.tensor([0.75])
    plain, _ = nft_image_loss(v, v_old, x_t, x0, t, r, beta=1.0, adaptive_weight=False)
    weighted, parts = nft_image_loss(v, v_old, x_t, x0, t, r, beta=1.0, adaptive_weight=True)
    # x0_old = x_t - 0.5 v_old = (0, 0.5): mean |x0_old - x0| = 0.25
    assert parts["weight"].item() == pytest.approx(0.25)
    assert weighted.item() == pytest.approx(plain.item() / 0.25)


@pytest.mark.parametrize("r,sign", [(1.0, 1.0), (0.0, -1.0), (0.5, 0.0)])
def test_gradient_at_the_old_policy_pulls_positives_and_pushes_negatives(r, sign):
    beta, t = 0.7, 0.5
    x0, x_t, tt, _, v_old = _one([0, 0], [1, 2], t, [0, 0], [1.0, 1.0])
    v = v_old.clone().requires_grad_(True)
    loss, parts = nft_image_loss(v, v_old, x_t, x0, tt, torch.tensor([r]), beta=beta, adaptive_weight=False)
    assert parts["positive"].item() == pytest.approx(
        parts["negative"].item()
    )  # both policies are the old one
    loss.sum().backward()
    # d/dv = 2 beta t^2 (2r - 1) (v_old - target) / D with target (1, 2) and D = 2 dims
    expected = 2 * beta * t**2 * (2 * r - 1) * (torch.tensor([1.0, 1.0]) - torch.tensor([1.0, 2.0])) / 2
    assert torch.allclose(v.grad.reshape(-1), expected, atol=1e-7)
    # a step along -grad moves v towards the target for a positive sample, away from it for a negative one
    step = v.detach() - 0.1 * v.grad
    d_before = (v_old - torch.tensor([1.0, 2.0]).reshape(1, 1, 2)).norm()
    d_after = (step - torch.tensor([1.0, 2.0]).reshape(1, 1, 2)).norm()
    assert torch.sign(d_before - d_after).item() == sign


def test_shapes_are_checked_and_velocity_kl_is_the_mean_square():
    v = torch.tensor([[[1.0, 3.0]]])
    assert velocity_kl(v, torch.tensor([[[0.0, 1.0]]])).item() == pytest.approx((1 + 4) / 2)
    with pytest.raises(ValueError, match="share one"):
        nft_image_loss(v, v[..., :1], v, v, torch.ones(1), torch.ones(1), beta=1.0)
    with pytest.raises(ValueError, match=r"must be \[B=1\]"):
        nft_image_loss(v, v, v, v, torch.ones(2), torch.ones(1), beta=1.0)
