"""`python -m experiments.bench rl` runs the real GRPO and DPO drivers on a random tiny checkpoint and writes its figures."""

import json

import pytest

from experiments.bench import rl as rl_bench


@pytest.mark.parametrize("algo", ["grpo", "dpo", "nft"])
def test_rl_bench_reports_the_time_split(algo, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    out = tmp_path / "bench.json"
    args = ["--algo", algo, "--steps", "1", "--prompts", "2", "--group", "4", "--threads", "1"]
    rl_bench.main([*args, "--think-tokens", "8", "16", "--micro-batch", "2", "--json", str(out)])
    res = json.loads(out.read_text())
    assert res["config"].startswith(f"rl bench: tiny preset, {algo.upper()} 2x4")
    parts = ("time/rollout_s", "time/reward_wait_s", "time/update_s", "time/sync_s")
    assert all(res[k] >= 0 for k in parts) and res["time/rollout_s"] > 0
    assert res["time/step_s"] >= sum(res[k] for k in parts) * 0.99
    assert res["trajectories_per_s"] == pytest.approx(8 / res["time/step_s"], rel=0.05)
    if algo in ("grpo", "nft"):  # 8 trajectories, 2 per pass; NFT samples with the ODE (no flow ratio)
        assert res["ratio_check/text_max_dev"] < 1e-4
    else:  # one pair per pass (micro_batch 2), at most one pair per group
        assert 0 <= res["pairs/num"] <= 2 and res["update/passes"] == res["pairs/num"]


def test_gpu_check_dry_run_runs_every_part(tmp_path):
    """The GPU script's sequence at the tiny preset on CPU: every part exits 0 and writes its figures."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).parent.parent
    env = {**os.environ, "OUT": str(tmp_path), "PY": sys.executable, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        ["bash", "experiments/gpu_check.sh", "--dry-run"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    for part in ("rollout_512", "grpo_lora", "nft_lora", "rollout_1024", "sft"):
        assert f"== {part}: rc 0" in res.stdout, res.stdout
    for part in ("rollout_512", "rollout_1024"):
        row = json.loads((tmp_path / f"{part}.json").read_text())["rows"][0]
        assert row["trajectories_per_s"] > 0 and row["flops_per_trajectory"] > 0
    nft = json.loads((tmp_path / "nft_lora.json").read_text())
    assert (
        nft["config"].startswith("rl bench: tiny preset, NFT 1x2") and nft["ratio_check/text_max_dev"] < 1e-4
    )
