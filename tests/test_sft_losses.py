import math

import torch

from irg_rl.train.sft.losses import (
    ce_sum,
    mse_per_token,
    mse_sum,
    noise_latents,
    normalised_loss,
    sample_timesteps,
    shift_timesteps,
)


def test_shift_formula_by_hand():
    u = torch.tensor([0.0, 0.25, 0.5, 1.0])
    # s = 3: t = 3u / (1 + 2u)
    expected = torch.tensor([0.0, 0.75 / 1.5, 1.5 / 2.0, 1.0])
    assert torch.allclose(shift_timesteps(u, 3.0), expected)
    assert torch.allclose(shift_timesteps(u, 1.0), u)


def test_logit_normal_timesteps_shift_moves_mass_to_noise():
    g = torch.Generator().manual_seed(0)
    t1 = sample_timesteps(20000, 1.0, g)
    t4 = sample_timesteps(20000, 4.0, torch.Generator().manual_seed(0))
    assert 0 < float(t1.min()) and float(t1.max()) < 1
    assert abs(float(t1.median()) - 0.5) < 0.02  # sigmoid(N(0,1)) is symmetric around 0.5
    # median maps through the shift: 4 * 0.5 / (1 + 3 * 0.5) = 0.8
    assert abs(float(t4.median()) - 0.8) < 0.02


def test_noise_latents_and_target_by_hand():
    x0 = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    eps = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    t = torch.tensor([0.25, 1.0])
    x_t, target = noise_latents(x0, t, eps)
    assert torch.allclose(x_t, torch.tensor([[0.75 * 1 + 0.25 * 3, 0.75 * 2], [1.0, 1.0]]))
    assert torch.allclose(target, eps - x0)


def test_ce_and_mse_sums_by_hand():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    labels = torch.tensor([0, 0])
    total, n = ce_sum(logits, labels)
    assert n == 2
    assert abs(float(total) - (math.log(2.0) + math.log(4.0 / 3.0))) < 1e-6
    pred = torch.tensor([[1.0, 1.0], [0.0, 2.0]])
    tgt = torch.zeros(2, 2)
    assert torch.allclose(mse_per_token(pred, tgt), torch.tensor([1.0, 2.0]))
    s, m = mse_sum(pred, tgt)
    assert (float(s), m) == (3.0, 2)


def test_normalised_loss_recovers_global_mean():
    # two ranks x two micro-batches: sums 1, 2 | 3, 4 over 10 tokens in total -> global mean 1.0
    sums = [torch.tensor(x) for x in (1.0, 2.0, 3.0, 4.0)]
    # accelerate divides each micro loss by grad_accum and DDP averages over ranks
    grads = sum(normalised_loss(s, 10, world_size=2, grad_accum=2) / 2 / 2 for s in sums)
    assert abs(float(grads) - 1.0) < 1e-6
    assert float(normalised_loss(torch.tensor(5.0), 0, 2, 2)) == 0.0
