"""Flow-matching SDE maths (irg_rl.inference.sde) against hand-computed values."""

import math

import pytest
import torch

from irg_rl.inference.sde import (
    euler_step,
    gaussian_log_prob,
    sde_sample_step,
    sde_step_log_prob,
    sde_step_mean_std,
    sde_window_mask,
    timestep_grid,
)

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def test_timestep_grid_shift_by_hand():
    # linear [1, .75, .5, .25, 0]; shift 3: 3t / (1 + 2t) -> [1, 2.25/2.5, 1.5/2, .75/1.5, 0]
    assert torch.allclose(timestep_grid(4, 3.0), torch.tensor([1.0, 0.9, 0.75, 0.5, 0.0]))
    assert torch.allclose(timestep_grid(4), torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))
    with pytest.raises(ValueError, match="num_steps"):
        timestep_grid(0)


def test_euler_step_sign_convention():
    # x - v * (t - t_next): dt = 0.25 > 0
    x = torch.tensor([[1.0, -2.0]])
    v = torch.tensor([[0.5, 1.0]])
    assert torch.allclose(euler_step(x, v, 0.5, 0.25), torch.tensor([[0.875, -2.25]]))
    with pytest.raises(ValueError, match="t_next < t"):
        euler_step(x, v, 0.25, 0.5)


def test_sde_mean_std_by_hand():
    # a = 0.5, t = 0.5, t_next = 0.25: std_t = 0.5 * sqrt(0.5 / 0.5) = 0.5, coef = std_t^2 / (2t) = 0.25
    # x + (1 - t) v = [1.25, -1.5]; drift = v + coef * that = [0.8125, 0.625]; mean = x - drift * 0.25
    x = torch.tensor([[1.0, -2.0]])
    v = torch.tensor([[0.5, 1.0]])
    mean, std = sde_step_mean_std(x, v, 0.5, 0.25, noise_level=0.5)
    assert torch.allclose(mean, torch.tensor([[0.796875, -2.15625]]))
    # per-step std = std_t * sqrt(dt) = 0.5 * 0.5, shaped [B, 1]
    assert std.shape == (1, 1) and torch.allclose(std, torch.tensor([[0.25]]))


def test_sde_guard_at_t_one_and_per_sample_times():
    # t = 1 uses t_next = 0.75 in 1 - t: std_t = 0.5 * sqrt(1 / 0.25) = 1, coef = 0.25 / (2 * 0.25) = 0.5;
    # x + 0 * v = 1; drift = 2 + 0.5 = 2.5; mean = 1 - 2.5 * 0.25 = 0.375; std = 1 * sqrt(0.25) = 0.5
    x = torch.tensor([[[1.0, -2.0]], [[1.0, 1.0]]])  # [B=2, 1, 2]
    v = torch.tensor([[[0.5, 1.0]], [[2.0, 2.0]]])
    mean, std = sde_step_mean_std(x, v, torch.tensor([0.5, 1.0]), torch.tensor([0.25, 0.75]), noise_level=0.5)
    assert torch.allclose(mean[0], torch.tensor([[0.796875, -2.15625]]))
    assert torch.allclose(mean[1], torch.tensor([[0.375, 0.375]]))
    assert std.shape == (2, 1, 1)
    assert torch.allclose(std.flatten(), torch.tensor([0.25, 0.5]))
    assert torch.isfinite(mean).all()


def test_gaussian_log_prob_by_hand():
    # N(mean, 0.25^2) at x = [1, -2], mean = [0.796875, -2.15625]: diffs 0.203125, 0.15625
    x = torch.tensor([[1.0, -2.0]])
    mean = torch.tensor([[0.796875, -2.15625]])
    lp1 = -(0.203125**2) / (2 * 0.0625) - math.log(0.25) - LOG_SQRT_2PI  # 0.13727770...
    lp2 = -(0.15625**2) / (2 * 0.0625) - math.log(0.25) - LOG_SQRT_2PI  # 0.27204332...
    out = gaussian_log_prob(x, mean, torch.tensor([[0.25]]))
    assert out.shape == (1,) and out.dtype == torch.float32
    assert out.item() == pytest.approx((lp1 + lp2) / 2, abs=1e-6)
    assert out.item() == pytest.approx(0.2046605154, abs=1e-6)
    with pytest.raises(ValueError, match="std must be > 0"):
        gaussian_log_prob(x, mean, 0.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sampled_log_prob_rescored_exactly(dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 2, 2, generator=g).to(dtype)
    v = torch.randn(3, 4, 2, 2, generator=g).to(dtype)
    x_next, lp = sde_sample_step(x, v, 0.8, 0.6, noise_level=0.7, generator=g)
    assert x_next.dtype == dtype and lp.shape == (3,) and lp.dtype == torch.float32
    lp2, mean, std = sde_step_log_prob(x, v, 0.8, 0.6, 0.7, x_next)
    assert torch.equal(lp, lp2)
    # and by hand from the returned mean/std
    manual = (-((x_next.float() - mean) ** 2) / (2 * std**2) - torch.log(std) - LOG_SQRT_2PI).mean(
        dim=(1, 2, 3)
    )
    assert torch.allclose(lp, manual, atol=1e-5)


def test_sampling_is_seeded():
    x, v = torch.ones(2, 3), torch.zeros(2, 3)
    a = sde_sample_step(x, v, 0.5, 0.4, 0.7, torch.Generator().manual_seed(1))
    b = sde_sample_step(x, v, 0.5, 0.4, 0.7, torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_small_noise_mean_is_euler_step():
    g = torch.Generator().manual_seed(0)
    x, v = torch.randn(2, 5, generator=g), torch.randn(2, 5, generator=g)
    euler = euler_step(x, v, 0.7, 0.55)
    mean0, std0 = sde_step_mean_std(x, v, 0.7, 0.55, noise_level=0.0)
    assert torch.equal(mean0, euler) and torch.all(std0 == 0)
    mean_small, _ = sde_step_mean_std(x, v, 0.7, 0.55, noise_level=1e-4)
    assert torch.allclose(mean_small, euler, atol=1e-7)
    with pytest.raises(ValueError, match="noise_level > 0"):
        sde_sample_step(x, v, 0.7, 0.55, noise_level=0.0)


def test_sde_preserves_toy_gaussian_marginals():
    # x0 ~ N(0, s0^2), eps ~ N(0, 1): x_t ~ N(0, (1-t)^2 s0^2 + t^2), exact velocity E[eps - x0 | x_t] is linear
    s0 = 0.5

    def velocity(x, t):
        return (t - (1 - t) * s0**2) * x / ((1 - t) ** 2 * s0**2 + t**2)

    g = torch.Generator().manual_seed(0)
    grid = timestep_grid(50)
    x = torch.randn(20000, 1, generator=g)
    for i in range(50):
        t, t_next = grid[i].item(), grid[i + 1].item()
        x, _ = sde_sample_step(x, velocity(x, t), t, t_next, noise_level=0.7, generator=g)
        if i == 24:
            expected = math.sqrt((1 - t_next) ** 2 * s0**2 + t_next**2)
            assert x.std().item() == pytest.approx(expected, rel=0.03)
    assert x.std().item() == pytest.approx(s0, rel=0.04)
    assert abs(x.mean().item()) < 0.02


def test_sde_window_mask():
    assert sde_window_mask(5, 2, start=1).tolist() == [False, True, True, False, False]
    assert sde_window_mask(3, 10).all()  # larger than the trajectory: every step
    assert not sde_window_mask(4, 0, start=0).any()
    g = torch.Generator().manual_seed(0)
    starts = {int(sde_window_mask(10, 2, max_start=3, generator=g).nonzero()[0]) for _ in range(50)}
    assert starts == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="does not fit"):
        sde_window_mask(5, 2, start=4)
