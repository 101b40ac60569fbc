"""The DPO driver: online pairs from fresh groups, then offline pairs from the rollouts a GRPO run saved."""

from __future__ import annotations

import pytest
import torch
from _rl_helpers import dpo_recipe, grpo_recipe, random_checkpoint

from irg_rl.train.rl.dpo import DPOTrainer
from irg_rl.train.rl.grpo import GRPOTrainer

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("rl_dpo_ckpt"))


def test_online_then_offline_dpo(ckpt, tmp_path):
    trainer = DPOTrainer(dpo_recipe(ckpt, tmp_path / "online"))
    before = {n: p.detach().clone() for n, p in trainer.setup.bagel.named_parameters()}
    stats = trainer.run()[-1]
    assert stats["pairs/num"] >= 1
    # before the first update the policy equals the reference: implicit rewards 0, loss log 2 per kind
    assert stats["text/loss"] == pytest.approx(0.6931, abs=1e-3)
    assert stats["flow/loss"] == pytest.approx(0.6931, abs=1e-3)
    assert any(not torch.equal(before[n], p) for n, p in trainer.setup.bagel.named_parameters())

    GRPOTrainer(
        grpo_recipe(ckpt, tmp_path / "grpo", **{"eval.num_prompts": 0, "grpo.inner_updates": 1})
    ).run()
    off = dpo_recipe(
        ckpt,
        tmp_path / "offline",
        **{"dpo.pair_mode": "offline", "pairs.rollouts_dir": str(tmp_path / "grpo" / "rollouts")},
    )
    stats = DPOTrainer(off).run()[-1]
    assert stats["pairs/num"] + stats["pairs/skipped_groups"] == 2


def test_ranked_pairs_and_inner_updates(ckpt, tmp_path):
    recipe = dpo_recipe(ckpt, tmp_path / "ranked", **{"pairs.pairs_per_group": 2, "pairs.inner_updates": 2})
    stats = DPOTrainer(recipe).run()[-1]
    groups = recipe.prompts.per_step
    assert 1 <= stats["pairs/num"] <= 2 * groups
    # the first inner step sees policy == reference (log 2); the second sees the updated policy
    assert stats["first/text/loss"] == pytest.approx(0.6931, abs=1e-3)
    assert stats["text/loss"] != pytest.approx(0.6931, abs=1e-6)


def test_pairs_per_group_above_half_the_group_is_rejected(ckpt, tmp_path):
    with pytest.raises(Exception, match="pairs.pairs_per_group"):
        dpo_recipe(ckpt, tmp_path / "bad", **{"pairs.pairs_per_group": 3}).validate()


def test_micro_batches_over_pairs_give_the_same_step(ckpt, tmp_path):
    """`train.micro_batch` splits the pairs over passes without changing the update: one pair per pass (2), uneven
    passes of 3 + 1 pairs (6), and passes padded with zero-weight repeats as on a ZeRO-3 rank with fewer pairs."""
    over = {
        "pairs.pairs_per_group": 2,
        "pairs.inner_updates": 2,
        "train.save_every": 0,
        "optim.grad_clip": 1.0,
    }
    # a large Adam eps makes the step proportional to the gradient: with the default 1e-15 a gradient that is 0 up
    # to float rounding takes a full lr step of either sign, so summation order alone would move weights apart
    over["optim.eps"] = 1e-3
    runs = {}
    for name, mb, pad in (("whole", 0, 0), ("pair", 2, 0), ("uneven", 6, 0), ("padded", 2, 2)):
        trainer = DPOTrainer(dpo_recipe(ckpt, tmp_path / name, **over, **{"train.micro_batch": mb}))
        if pad:  # as if another rank had `pad` more passes (single process: lockstep returns n unchanged)
            trainer.setup.lockstep = lambda n, pad=pad: n + pad
        start = {n: p.detach().clone() for n, p in trainer.setup.bagel.named_parameters()}
        stats = trainer.run()[-1]
        runs[name] = (stats, {n: p.detach().clone() for n, p in trainer.setup.bagel.named_parameters()})
    whole, w_whole = runs["whole"]
    P = whole["pairs/num"]
    assert P == 4  # two groups, two pairs each: the split into 3 + 1 is uneven
    expected_passes = {"whole": 1, "pair": P, "uneven": 2, "padded": P + 2}
    moved = max((w_whole[n] - start[n]).abs().max().item() for n in start)
    assert moved > 1e-5
    for name, (stats, weights) in runs.items():
        assert stats["update/passes"] == expected_passes[name], name
        for key in ("pairs/num", "first/loss", "loss", "text/loss", "flow/reward_margin", "grad_norm"):
            assert stats[key] == pytest.approx(whole[key], rel=1e-4, abs=1e-6), (name, key)
        apart = max((w_whole[n] - weights[n]).abs().max().item() for n in w_whole)
        assert apart < 1e-3 * moved, (name, apart, moved)  # the weights moved alike
