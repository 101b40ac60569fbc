"""The GRPO driver on a small random checkpoint (local rollout): ratio == 1 at the first inner step for text
tokens and SDE steps, a LoRA step changes only the adapters, outputs are written, checkpoints resume."""

from __future__ import annotations

import json

import pytest
import torch
from _rl_helpers import LORA, grpo_recipe, random_checkpoint

from irg_rl.train.rl.grpo import GRPOTrainer
from irg_rl.train.rl.outputs import load_rollout

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("rl_ckpt"))


def test_lora_step_changes_only_adapters_and_ratio_is_one(ckpt, tmp_path):
    trainer = GRPOTrainer(grpo_recipe(ckpt, tmp_path / "out", **LORA, **{"grpo.kl_coef": 0.05}))
    bagel = trainer.setup.bagel
    before = {n: p.detach().clone() for n, p in bagel.named_parameters()}
    history = trainer.run()
    stats = history[-1]
    # the self-test of the real driver: re-scored == recorded log-probs before the first update
    assert stats["ratio_check/ok"] == 1.0
    assert stats["ratio_check/text_max_dev"] < 1e-4 and stats["ratio_check/flow_max_dev"] < 1e-4
    assert stats["first/text/num_elements"] > 0 and stats["first/flow/num_elements"] > 0
    assert stats["first/text/ratio_max_dev"] < 1e-4 and stats["first/flow/ratio_max_dev"] < 1e-4
    assert stats["update/skipped_no_signal"] == 0.0
    changed, frozen_changed = [], []
    for n, p in bagel.named_parameters():
        moved = not torch.equal(before[n], p.detach())
        if p.requires_grad:
            assert ".lora_" in n
            changed.append(moved)
        elif moved:
            frozen_changed.append(n)
    assert frozen_changed == []
    assert any(changed)
    # the second inner update sees a changed policy: ratios move away from 1
    assert stats["last/text/ratio_max_dev"] > 1e-4
    for key in (
        "time/rollout_s",
        "time/update_s",
        "trajectories_per_s",
        "reward/image_2_mean",
        "reward/improvement_rate",
        "reward/regression_rate",
        "adv/zero_std_share",
        "first/text/kl",
    ):
        assert key in stats, key
    # outputs: rollouts for offline DPO, per-trajectory JSON, image grid, checkpoint loadable by the loader
    out = tmp_path / "out"
    batch, comps = load_rollout(out / "rollouts" / "step-000001.pt")
    assert len(batch) == 8 and comps["image_2"].shape == (8,)
    recs = [json.loads(x) for x in (out / "rollouts" / "step-000001.jsonl").read_text().splitlines()]
    assert len(recs) == 8 and "think_2" in recs[0]["texts"] and "image_2" in recs[0]["rewards"]
    assert (out / "rollouts" / recs[0]["images"]["image_2"]).is_file()
    assert (out / "grids" / "step-000001.png").is_file()
    assert (out / "checkpoints" / "step-000001" / "model" / "ema.safetensors").is_file()
    assert json.loads((out / "eval.json").read_text())[-1]["eval/num_prompts"] == 4


def test_full_finetune_shared_credit_and_resume(ckpt, tmp_path):
    over = {
        "grpo.credit.mode": "shared",
        "grpo.inner_updates": 1,
        "train.max_steps": 2,
        "train.save_every": 1,
        "train.stop_after_steps": 1,
        "eval.num_prompts": 0,
    }
    t1 = GRPOTrainer(grpo_recipe(ckpt, tmp_path / "out", **over))
    before = {n: p.detach().clone() for n, p in t1.setup.bagel.named_parameters()}
    h1 = t1.run()
    assert len(h1) == 1 and h1[0]["ratio_check/ok"] == 1.0
    moved = [n for n, p in t1.setup.bagel.named_parameters() if not torch.equal(before[n], p.detach())]
    assert any("moe_gen" in n for n in moved) and any("lm_head" in n or "embed" in n for n in moved)
    t2 = GRPOTrainer(grpo_recipe(ckpt, tmp_path / "out", **{**over, "train.resume_from": "auto"}))
    assert t2.setup.step == 1
    h2 = t2.run()
    assert [h["step"] for h in h2] == [1, 2]
    assert h2[-1]["ratio_check/ok"] == 1.0  # the resumed weights reached the rollout copy


def test_bf16_sampler_gap_and_trainer_old_logprobs(ckpt, tmp_path):
    """A bfloat16 rollout worker against the fp32 trainer (what GPU runs do) breaks ratio == 1 with the recorded
    log-probs; `grpo.old_logprobs: trainer` takes the trainer's first-pass log-probs instead (ratio exactly 1),
    still logs the gap, and does not trip `train.strict_ratio_check`."""
    common = {"rollout.dtype": "bfloat16", "eval.num_prompts": 0, "train.save_every": 0}
    rollout = GRPOTrainer(grpo_recipe(ckpt, tmp_path / "rollout", **common)).run()[-1]
    assert rollout["ratio_check/ok"] == 0.0 and rollout["first/text/ratio_max_dev"] > 1e-3
    trainer = GRPOTrainer(
        grpo_recipe(
            ckpt,
            tmp_path / "trainer",
            **common,
            **{"grpo.old_logprobs": "trainer", "train.strict_ratio_check": True},
        )
    ).run()[-1]
    assert trainer["ratio_check/ok"] == 0.0 and trainer["ratio_check/text_max_dev"] > 1e-3  # the gap, logged
    assert trainer["first/text/ratio_max_dev"] == 0.0 and trainer["first/flow/ratio_max_dev"] == 0.0
    assert (
        trainer["last/text/ratio_max_dev"] > 0.0
    )  # later inner updates move away from the first-pass policy


def test_round2_branches_with_image_1_baseline_trains(ckpt, tmp_path):
    over = {
        "sampling.round2_branches": 2,
        "grpo.credit.round_2_baseline": "image_1",
        "eval.num_prompts": 0,
        "train.save_every": 0,
    }
    stats = GRPOTrainer(grpo_recipe(ckpt, tmp_path / "ok", **over)).run()[-1]
    assert stats["ratio_check/ok"] == 1.0
    assert stats["adv/round_2_baseline_groups"] == 2 * 2  # 2 prompts x 2 first rounds
    from irg_rl.config import ConfigError

    with pytest.raises(ConfigError, match="multiple of sampling.round2_branches"):
        GRPOTrainer(grpo_recipe(ckpt, tmp_path / "bad", **{**over, "sampling.round2_branches": 3}))
    with pytest.raises(ConfigError, match="round2_branches >= 2"):
        GRPOTrainer(grpo_recipe(ckpt, tmp_path / "bad2", **{**over, "sampling.round2_branches": 1}))


def test_grad_checkpointing_gives_the_same_step(ckpt, tmp_path):
    """`train.grad_checkpointing` only trades memory for recompute: same rollout, same losses, same new weights."""
    over = {"eval.num_prompts": 0, "train.save_every": 0, "train.image_grid_every": 0}
    runs = []
    for gc in (False, True):
        trainer = GRPOTrainer(
            grpo_recipe(ckpt, tmp_path / f"gc{gc}", **over, **{"train.grad_checkpointing": gc})
        )
        wrapped = [m for m in trainer.setup.bagel.modules() if getattr(m, "_irg_ckpt", False)]
        assert bool(wrapped) == gc
        stats = trainer.run()[-1]
        runs.append((stats, {n: p.detach().clone() for n, p in trainer.setup.bagel.named_parameters()}))
    (plain, w_plain), (ckpted, w_ckpted) = runs
    assert ckpted["ratio_check/ok"] == 1.0
    for key in ("reward/image_2_mean", "first/loss", "last/loss", "first/grad_norm"):
        assert ckpted[key] == pytest.approx(plain[key], rel=1e-4, abs=1e-7), key
    assert max((w_plain[n] - w_ckpted[n]).abs().max().item() for n in w_plain) < 1e-5
