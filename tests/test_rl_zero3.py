"""Two-process GRPO and DPO under DeepSpeed ZeRO-3 on CPU (gloo) through `accelerate launch`: full fine-tuning
with a sharded frozen-copy reference, and LoRA with the adapter-disabled reference. The ratio check passing on
every step shows the gathered weight export reached the rollout copy exactly; the checkpoint loads and has moved."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _rl_helpers import dpo_recipe, grpo_recipe, random_checkpoint

from irg_rl.config import to_yaml
from irg_rl.models.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent


def _launch(script: Path, recipe_path: Path) -> subprocess.CompletedProcess:
    accelerate = Path(sys.executable).parent / "accelerate"
    cmd = [
        str(accelerate), "launch", "--config_file", str(ROOT / "recipes/accelerate/cpu_zero3_2proc.yaml"),
        str(script), "--config", str(recipe_path),
    ]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    # a rank waiting on a collective the other never enters hangs: the timeout turns that into a failure
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def _run(tmp_path: Path, name: str, script: Path, algo: str = "grpo", **over) -> tuple[dict, dict, Path]:
    ckpt = random_checkpoint(tmp_path / "ckpt")
    out = tmp_path / name
    common = {"train.max_steps": 2, "train.save_every": 2, "train.image_grid_every": 0, "eval.num_prompts": 0}
    if algo == "grpo":
        over = {
            "train.micro_batch": 3, "train.strict_ratio_check": True, "grpo.inner_updates": 1,
            "grpo.kl_coef": 0.05, **common, **over,
        }  # fmt: skip
        recipe_obj = grpo_recipe(ckpt, out, **over)
    else:
        recipe_obj = dpo_recipe(ckpt, out, **{**common, **over})
    recipe = tmp_path / f"{name}.yaml"
    recipe.write_text(to_yaml(recipe_obj))
    _launch(script, recipe)
    history = json.loads((out / "history.json").read_text())
    before = load_checkpoint(ckpt, dtype=torch.float32).model.state_dict()
    after = load_checkpoint(
        out / "checkpoints" / "step-000002" / "model", dtype=torch.float32
    ).model.state_dict()
    return history, {k: not torch.equal(before[k], after[k]) for k in before}, out


def _check_history(history: list[dict]) -> None:
    assert [h["step"] for h in history] == [1, 2]
    # before the first update the reference (sharded copy, or the adapter-disabled policy) equals the policy
    assert history[0]["text/kl"] < 1e-6 and history[0]["flow/kl"] < 1e-6
    for h in history:  # the rollout copy (fed by the gathered export) scores exactly like the sharded trainer
        assert h["ratio_check/ok"] == 1.0 and h["ratio_check/text_max_dev"] < 1e-4, h
        assert h["update/skipped_no_signal"] == 0.0 and h["text/kl"] >= 0.0


@pytest.mark.slow
def test_two_process_zero3_grpo_full_finetune_ragged_micro_batches(tmp_path):
    # rank 0 has one micro-batch, rank 1 two: rank 0 must pad with a zero-weight pass (policy and reference)
    history, moved, out = _run(tmp_path, "full", Path(__file__).parent / "_ragged_grpo.py")
    _check_history(history)
    assert history[1]["text/kl"] > 0.0  # the sharded frozen reference differs from the stepped policy
    assert sum(moved.values()) > len(moved) // 2, "full fine-tuning moves most tensors"
    state = json.loads((out / "checkpoints" / "step-000002" / "trainer.json").read_text())
    assert state["world_size"] == 2


@pytest.mark.slow
def test_two_process_zero3_grpo_lora(tmp_path):
    lora = {
        "freeze.lora.enabled": True,
        "freeze.lora.target_modules": r".*(q_proj|v_proj|o_proj)_moe_gen|llm2vae",
        "freeze.lora.r": 4,
    }
    history, moved, _ = _run(tmp_path, "lora", ROOT / "scripts/grpo.py", **lora)
    _check_history(history)
    assert history[1]["text/kl"] > 0.0  # the adapter-disabled reference differs from the adapted policy
    changed = sorted(k for k, m in moved.items() if m)
    assert changed and all("_moe_gen" in k or k.startswith("llm2vae") for k in changed), changed


@pytest.mark.slow
def test_two_process_zero3_dpo_full_finetune(tmp_path):
    # frozen-copy reference sharded like the policy; both ranks run the passes while either has a pair, and as
    # many passes as the rank with the most pairs (one pair per pass at micro_batch 2)
    over = {"pairs.pairs_per_group": 2, "pairs.inner_updates": 2, "train.micro_batch": 2}
    history, moved, out = _run(tmp_path, "dpo", ROOT / "scripts/dpo.py", algo="dpo", **over)
    assert [h["step"] for h in history] == [1, 2]
    assert history[0]["pairs/num"] >= 1
    assert history[0]["update/passes"] >= history[0]["pairs/num"]
    # before the first update the gathered reference equals the policy: loss log 2 per kind
    assert history[0]["first/text/loss"] == pytest.approx(0.6931, abs=1e-3)
    assert history[0]["first/flow/loss"] == pytest.approx(0.6931, abs=1e-3)
    assert sum(moved.values()) > len(moved) // 2, "full fine-tuning moves most tensors"
    state = json.loads((out / "checkpoints" / "step-000002" / "trainer.json").read_text())
    assert state["world_size"] == 2
