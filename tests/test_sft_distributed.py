"""Two-process DeepSpeed ZeRO-2 SFT on CPU (gloo) through `accelerate launch`, then resume on one process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _sft_data import SMALL_MODEL, make_dataset

ROOT = Path(__file__).resolve().parent.parent


def _launch(
    nproc: int, data: Path, out: Path, *overrides: str, config: str = "cpu_zero2_2proc.yaml"
) -> subprocess.CompletedProcess:
    accelerate = Path(sys.executable).parent / "accelerate"
    cmd = [
        str(accelerate), "launch", "--config_file", str(ROOT / "recipes/accelerate" / config),
        "--num_processes", str(nproc), str(ROOT / "scripts/sft.py"),
        f"data.root={data}", f"train.output_dir={out}", *SMALL_MODEL, "data.samples_per_micro_batch=2",
        "optim.warmup_steps=0", "optim.lr=1e-3", "log.progress_bar=false", "train.log_every=1", *overrides,
    ]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


@pytest.mark.slow
def test_two_process_zero2_cpu_run_then_resume_on_one_process(tmp_path):
    data = make_dataset(tmp_path / "data", num_prompts=12)
    out = tmp_path / "run"
    _launch(2, data, out, "train.max_steps=2", "train.save_every=2", "train.resume_from=never")
    state = json.loads((out / "checkpoints" / "step-000002" / "trainer.json").read_text())
    assert state["world_size"] == 2 and [h["step"] for h in state["history"]] == [1, 2]
    assert (out / "checkpoints" / "step-000002" / "model" / "ema.safetensors").is_file()
    # resume the 2-process ZeRO-2 checkpoint on 1 process (elastic optimizer state, re-sharded data position)
    _launch(1, data, out, "train.max_steps=3", "train.resume_from=auto")
    state = json.loads((out / "checkpoints" / "step-000003" / "trainer.json").read_text())
    assert state["world_size"] == 1 and [h["step"] for h in state["history"]] == [1, 2, 3]


@pytest.mark.slow
def test_two_process_zero2_kill_and_resume_reproduces_losses(tmp_path):
    data = make_dataset(tmp_path / "data", num_prompts=12)
    _launch(2, data, tmp_path / "ref", "train.max_steps=3", "train.save_every=0", "train.resume_from=never")
    ref = json.loads((tmp_path / "ref" / "history.json").read_text())
    out = tmp_path / "run"
    _launch(
        2,
        data,
        out,
        "train.max_steps=3",
        "train.save_every=2",
        "train.stop_after_steps=2",
        "train.resume_from=never",
    )
    _launch(2, data, out, "train.max_steps=3", "train.resume_from=auto")
    resumed = json.loads((out / "history.json").read_text())
    assert [h["step"] for h in resumed] == [1, 2, 3]
    for x, y in zip(ref, resumed, strict=True):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-6)


@pytest.mark.slow
def test_two_process_zero3_lora_exports_merged_weights(tmp_path):
    from safetensors.torch import load_file

    from irg_rl.models.checkpoint import load_checkpoint

    data = make_dataset(tmp_path / "data", num_prompts=12)
    out = tmp_path / "run"
    _launch(
        2,
        data,
        out,
        "train.max_steps=2",
        "train.save_every=2",
        "train.resume_from=never",
        "freeze.lora.enabled=true",
        "freeze.lora.r=4",
        config="cpu_zero3_2proc.yaml",
    )
    model_dir = out / "checkpoints" / "step-000002" / "model"
    raw = load_file(str(model_dir / "model.safetensors"))
    assert raw and not any(".lora_" in k for k in raw)  # merged into the original names
    model = load_checkpoint(model_dir).model  # the loader reads the EMA file strictly
    assert set(raw) == set(model.state_dict())
