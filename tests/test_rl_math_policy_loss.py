"""Clipped GRPO objective, aggregation, KL terms and the ratio self-test against hand-computed values."""

import math

import numpy as np
import pytest
import torch

from irg_rl.inference.sde import sde_sample_step, sde_step_log_prob
from irg_rl.train.rl.config import GRPOConfig
from irg_rl.train.rl.policy_loss import (
    PolicyTerms,
    aggregate,
    clipped_surrogate,
    gaussian_kl_same_std,
    grpo_loss,
    kl_penalty,
    policy_loss,
    ratio_is_one,
    token_log_probs,
)

RATIOS = np.array([[1.5, 0.9, 1.0], [0.7, 1.1, 1.3]])
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
ADV = torch.tensor([1.0, -1.0])


def _terms(**kw):
    return PolicyTerms(
        logp=torch.tensor(np.log(RATIOS), dtype=torch.float32),
        old_logp=torch.zeros(2, 3),
        advantages=ADV,
        mask=MASK,
        **kw,
    )


def test_clipped_surrogate_by_hand():
    t = _terms()
    loss, ratio, low, high = clipped_surrogate(t.logp, t.old_logp, t.advantages, 0.2, 0.2)
    # A = +1: max(-r, -clip(r)) -> [-1.2 (clipped), -0.9, -1.0]; A = -1: max(r, clip(r)) -> [0.8 (clipped), 1.1, 1.3]
    assert torch.allclose(loss, torch.tensor([[-1.2, -0.9, -1.0], [0.8, 1.1, 1.3]]))
    assert torch.allclose(ratio, torch.tensor(RATIOS, dtype=torch.float32))
    # r = 1.3 with A < 0 is not clipped: the unclipped term is the larger (pessimistic) one
    assert high.tolist() == [[True, False, False], [False, False, False]]
    assert low.tolist() == [[False, False, False], [True, False, False]]


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("token_mean", (-1.2 - 0.9 - 1.0 + 0.8 + 1.1) / 5),
        ("seq_mean_token_mean", ((-1.2 - 0.9 - 1.0) / 3 + (0.8 + 1.1) / 2) / 2),
        ("seq_mean_token_sum", ((-1.2 - 0.9 - 1.0) + (0.8 + 1.1)) / 2),
        ("seq_mean_token_sum_norm", (-1.2 - 0.9 - 1.0 + 0.8 + 1.1) / 6),
    ],
)
def test_policy_loss_aggregations_by_hand(mode, expected):
    loss, stats = policy_loss(_terms(), clip_low=0.2, clip_high=0.2, aggregation=mode, prefix="text/")
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert stats["text/clip_frac"] == pytest.approx(2 / 5)
    assert stats["text/clip_frac_low"] == pytest.approx(1 / 5)
    assert stats["text/clip_frac_high"] == pytest.approx(1 / 5)
    assert stats["text/ratio_mean"] == pytest.approx(np.mean([1.5, 0.9, 1.0, 0.7, 1.1]), abs=1e-6)
    assert (stats["text/ratio_min"], stats["text/ratio_max"]) == pytest.approx((0.7, 1.5))
    assert stats["text/ratio_max_dev"] == pytest.approx(0.5)
    r = np.array([1.5, 0.9, 1.0, 0.7, 1.1])
    assert stats["text/approx_kl"] == pytest.approx(np.mean(r - 1 - np.log(r)), abs=1e-6)
    assert stats["text/num_elements"] == 5


def test_aggregate_skips_empty_sequences_and_all_masked_is_zero():
    v = torch.tensor([[1.0, 3.0], [5.0, 7.0]], requires_grad=True)
    m = torch.tensor([[1, 1], [0, 0]])
    assert aggregate(v, m, "seq_mean_token_mean").item() == 2.0
    assert aggregate(v, m, "seq_mean_token_sum").item() == 4.0
    zero = aggregate(v, torch.zeros(2, 2), "token_mean")
    assert zero.item() == 0.0 and zero.requires_grad
    with pytest.raises(ValueError, match="aggregation"):
        aggregate(v, m, "sum")


def test_kl_estimators_by_hand():
    logp = torch.tensor([[math.log(0.5), math.log(0.2)]])
    ref = torch.tensor([[math.log(0.25), math.log(0.4)]])
    d = np.log([0.5, 0.2]) - np.log([0.25, 0.4])  # [log 2, -log 2]
    assert np.allclose(kl_penalty(logp, ref, "k1").numpy(), [d])
    assert np.allclose(kl_penalty(logp, ref, "k2").numpy(), [0.5 * d**2])
    # k3 = exp(ref - logp) - (ref - logp) - 1: [0.5 + log2 - 1, 2 - log2 - 1]
    assert np.allclose(kl_penalty(logp, ref, "k3").numpy(), [[0.5 + math.log(2) - 1, 1 - math.log(2)]])


def test_kl_term_added_to_loss():
    ref = torch.zeros(2, 3)
    loss, stats = policy_loss(_terms(ref_logp=ref), clip_low=0.2, clip_high=0.2, kl_coef=0.1)
    r = np.array([1.5, 0.9, 1.0, 0.7, 1.1])
    k3 = np.mean(1 / r + np.log(r) - 1)  # ref - logp = -log r
    assert stats["kl"] == pytest.approx(k3, abs=1e-6)
    assert loss.item() == pytest.approx(-1.2 / 5 + 0.1 * k3, abs=1e-6)
    with pytest.raises(ValueError, match="no reference"):
        policy_loss(_terms(), clip_low=0.2, clip_high=0.2, kl_coef=0.1)


def test_gaussian_kl_same_std_by_hand():
    mean = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    ref = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    std = torch.tensor([[0.5], [1.0]])
    # row 0: mean((1, 4)) / (2 * .25) = 5; row 1: mean((0, 1)) / 2 = 0.25
    assert torch.allclose(gaussian_kl_same_std(mean, ref, std), torch.tensor([5.0, 0.25]))


def test_token_log_probs_uses_float32_and_matches_hand_values():
    # softmax([0, ln 2, ln 3]) = [1/6, 2/6, 3/6]
    logits = torch.log(torch.tensor([[[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]])).to(torch.bfloat16)
    out = token_log_probs(logits, torch.tensor([[2, 0]]))
    assert out.dtype == torch.float32
    assert torch.allclose(out, torch.log(torch.tensor([[0.5, 0.5]])), atol=1e-2)  # bf16 logits
    with pytest.raises(ValueError, match="line up"):
        token_log_probs(logits, torch.tensor([[2]]))


def test_ratio_is_one():
    lp = torch.randn(2, 4)
    assert ratio_is_one(lp, lp.clone()) == (True, 0.0)
    bad = lp.clone()
    bad[1, 2] += 0.01
    ok, dev = ratio_is_one(lp, bad, tol=1e-3)
    assert not ok and dev == pytest.approx(1 - math.exp(-0.01), rel=1e-3)
    mask = torch.ones(2, 4, dtype=torch.bool)
    mask[1, 2] = False
    assert ratio_is_one(lp, bad, mask)[0]


def test_first_inner_step_ratio_is_one_text_and_flow():
    torch.manual_seed(0)
    emb = torch.nn.Embedding(7, 7)
    tokens = torch.randint(0, 7, (3, 5))
    with torch.no_grad():  # "sampling" pass
        old = token_log_probs(emb(tokens[:, :-1]), tokens[:, 1:])
    new = token_log_probs(emb(tokens[:, :-1]), tokens[:, 1:])  # training pass
    text = PolicyTerms(new, old, torch.tensor([1.0, -0.5, 0.2]), torch.ones(3, 4))
    # flow: recorded step log-prob vs re-scored with the same velocity
    w = torch.nn.Parameter(torch.tensor(0.3))
    x = torch.randn(3, 2, 2)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        x_next, old_f = sde_sample_step(x, w * x, 0.6, 0.45, 0.7, g)
    new_f, _, _ = sde_step_log_prob(x, w * x, 0.6, 0.45, 0.7, x_next)
    flow = PolicyTerms(new_f[:, None], old_f[:, None], torch.tensor([1.0, -0.5, 0.2]), torch.ones(3, 1))
    _, stats = grpo_loss(text, flow, GRPOConfig())
    assert stats["text/ratio_max_dev"] < 1e-6 and stats["flow/ratio_max_dev"] < 1e-6
    assert ratio_is_one(new, old)[0] and ratio_is_one(new_f, old_f, tol=1e-6)[0]


def _sgd_step(param, loss, lr):
    (grad,) = torch.autograd.grad(loss, param)
    with torch.no_grad():
        param -= lr * grad


@pytest.mark.parametrize("adv", [1.0, -1.0])
def test_gradient_sign_text(adv):
    theta = torch.zeros(1, 1, 5, requires_grad=True)
    token = torch.tensor([[2]])
    old = token_log_probs(theta, token).detach()
    terms = PolicyTerms(token_log_probs(theta, token), old, torch.tensor([adv]), torch.ones(1, 1))
    loss, _ = policy_loss(terms, clip_low=0.2, clip_high=0.2)
    _sgd_step(theta, loss, lr=0.5)
    after = token_log_probs(theta, token).detach()
    assert (after - old).item() * adv > 0


@pytest.mark.parametrize("adv", [1.0, -1.0])
def test_gradient_sign_flow(adv):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 8, generator=g)
    w = torch.zeros(1, 8, requires_grad=True)  # velocity = w
    with torch.no_grad():
        x_next, old = sde_sample_step(x, w, 0.5, 0.4, 0.7, g)
    new, _, _ = sde_step_log_prob(x, w, 0.5, 0.4, 0.7, x_next)
    cfg = GRPOConfig()
    loss, _ = grpo_loss(
        None, PolicyTerms(new[:, None], old[:, None], torch.tensor([adv]), torch.ones(1, 1)), cfg
    )
    _sgd_step(w, loss, lr=1e-3)
    after, _, _ = sde_step_log_prob(x, w.detach(), 0.5, 0.4, 0.7, x_next)
    assert (after - old).item() * adv > 0


def test_grpo_loss_combines_kinds_with_weights_and_clip_ranges():
    cfg = GRPOConfig(text_loss_weight=0.5, flow_loss_weight=2.0, flow_clip_low=1e-4, flow_clip_high=1e-4)
    flow_ratio = torch.tensor([[1.0 + 5e-5, 1.0 + 5e-4]])
    flow = PolicyTerms(torch.log(flow_ratio), torch.zeros(1, 2), torch.tensor([1.0]), torch.ones(1, 2))
    loss, stats = grpo_loss(_terms(), flow, cfg)
    text_expected = (-1.2 - 0.9 - 1.0 + 0.8 + 1.1) / 5
    flow_expected = -((1 + 5e-5) + (1 + 1e-4)) / 2  # second step clipped at 1 + 1e-4
    assert stats["text/loss"] == pytest.approx(text_expected, abs=1e-6)
    assert stats["flow/loss"] == pytest.approx(flow_expected, abs=1e-6)
    assert stats["flow/clip_frac"] == 0.5
    assert loss.item() == pytest.approx(0.5 * text_expected + 2.0 * flow_expected, abs=1e-5)
    with pytest.raises(ValueError, match="nothing to optimise"):
        grpo_loss(None, None, cfg)


def test_per_element_advantages_per_round():
    # tokens 0-1 belong to round 1 (A = 1), token 2 to round 2 (A = -1); ratios all 1.1, clip 0.2 (inactive)
    logp = torch.log(torch.full((1, 3), 1.1))
    adv = torch.tensor([[1.0, 1.0, -1.0]])
    loss, _ = policy_loss(
        PolicyTerms(logp, torch.zeros(1, 3), adv, torch.ones(1, 3)), clip_low=0.2, clip_high=0.2
    )
    assert loss.item() == pytest.approx((-1.1 - 1.1 + 1.1) / 3, abs=1e-6)
