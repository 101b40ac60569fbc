"""Crash recovery of GRPO and DPO: a run killed with SIGKILL (after a checkpoint, or while writing one) and
resumed equals the uninterrupted run bitwise; its logs hold each step once; recipe changes on resume are
listed, refused, or (allowed) take effect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _rl_helpers import grpo_recipe, random_checkpoint

from irg_rl.config import ConfigError
from irg_rl.train.rl.grpo import GRPOTrainer

torch.set_num_threads(1)
TESTS = Path(__file__).parent
# what a step computed (not timings): compared bitwise between the resumed and the uninterrupted run
KEYS = (
    "loss",
    "reward/image_1_mean",
    "reward/image_2_mean",
    "reward/format_mean",
    "ratio_check/flow_max_dev",
)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("rl_ckpt"))


def _run(algo: str, ckpt: Path, out: Path, max_steps: int, kill: str = "") -> int:
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(TESTS)}
    args = [sys.executable, str(TESTS / "_resume_driver.py"), algo, str(ckpt), str(out), str(max_steps)]
    proc = subprocess.run(
        args + ([kill] if kill else []), env=env, capture_output=True, text=True, timeout=600
    )
    if not kill and proc.returncode != 0:
        raise AssertionError(
            f"driver failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc.returncode


def _rows(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def uninterrupted(ckpt, tmp_path_factory):
    outs = {}
    for algo in ("grpo", "dpo"):
        outs[algo] = tmp_path_factory.mktemp(f"{algo}_ref") / "out"
        _run(algo, ckpt, outs[algo], 4)
    return outs


@pytest.mark.parametrize("algo", ["grpo", "dpo"])
def test_kill_after_checkpoint_resumes_bitwise(algo, ckpt, uninterrupted, tmp_path):
    out = tmp_path / "out"
    assert _run(algo, ckpt, out, 4, "after_save:2") == -9  # SIGKILL
    assert [r["step"] for r in _rows(out)] == [1, 2]
    _run(algo, ckpt, out, 4)
    ref, got = _rows(uninterrupted[algo]), _rows(out)
    assert [r["step"] for r in got] == [1, 2, 3, 4]
    keys = [k for k in KEYS if k in ref[0]]
    assert "loss" in keys and len(keys) >= 3
    for a, b in zip(ref, got, strict=True):
        assert {k: a[k] for k in keys} == {k: b[k] for k in keys}, f"step {a['step']}"
    if algo == "grpo":
        # eval.json keeps the evaluation of step 2 made before the kill
        assert [e["step"] for e in json.loads((out / "eval.json").read_text())] == [2, 4]


def test_kill_while_writing_a_checkpoint_resumes_from_the_previous_one(ckpt, uninterrupted, tmp_path):
    out = tmp_path / "out"
    assert _run("grpo", ckpt, out, 4, "in_save:4") == -9
    # steps 3 and 4 were logged before the kill, but the latest complete checkpoint is step 2
    assert [r["step"] for r in _rows(out)] == [1, 2, 3, 4]
    assert json.loads((out / "checkpoints" / "latest").read_text())["step"] == 2
    assert (out / "checkpoints" / "step-000004.tmp").is_dir()  # the cut write, cleaned on resume
    _run("grpo", ckpt, out, 4)
    got, ref = _rows(out), _rows(uninterrupted["grpo"])
    assert [r["step"] for r in got] == [
        1,
        2,
        3,
        4,
    ]  # the rows written after step 2 were replaced, not repeated
    assert [r["loss"] for r in got] == [r["loss"] for r in ref]
    assert not (out / "checkpoints" / "step-000004.tmp").exists()


def _stopped_run(ckpt, out, **over):
    base = {"train.max_steps": 2, "train.save_every": 1, "train.stop_after_steps": 1, "eval.num_prompts": 0}
    GRPOTrainer(grpo_recipe(ckpt, out, **{**base, **over})).run()


def test_recipe_change_refused_with_both_values(ckpt, tmp_path):
    _stopped_run(ckpt, tmp_path / "out")
    over = {"train.max_steps": 2, "eval.num_prompts": 0, "train.resume_from": "auto", "grpo.group_size": 2}
    with pytest.raises(ConfigError, match=r"grpo.group_size: 4 in the checkpoint, 2 now"):
        GRPOTrainer(grpo_recipe(ckpt, tmp_path / "out", **over))


def test_allowed_lr_change_takes_effect_and_safe_changes_are_listed(ckpt, tmp_path, capsys):
    _stopped_run(ckpt, tmp_path / "out")
    over = {
        "train.max_steps": 3,
        "eval.num_prompts": 0,
        "train.resume_from": "auto",
        "optim.lr": 5e-4,
        "train.allow_recipe_change": True,
    }
    t = GRPOTrainer(grpo_recipe(ckpt, tmp_path / "out", **over))
    printed = capsys.readouterr().out
    assert "resumed from step 1" in printed
    assert "train.max_steps changed 2 -> 3" in printed and "optim.lr changed 0.001 -> 0.0005" in printed
    assert [g["lr"] for g in t.setup.opt.param_groups] == pytest.approx(
        [5e-4] * len(t.setup.opt.param_groups)
    )
    assert t.setup.scheduler.get_last_lr()[0] == pytest.approx(5e-4)
    t.close()
