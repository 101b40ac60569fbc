"""`scripts/bench.py rl` runs the real GRPO and DPO drivers on a random tiny checkpoint and writes its figures."""

import json

import pytest

from irg_rl.bench import rl as rl_bench


@pytest.mark.parametrize("algo", ["grpo", "dpo"])
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
    if algo == "grpo":  # 8 trajectories, 2 per pass
        assert res["ratio_check/text_max_dev"] < 1e-4
    else:  # one pair per pass (micro_batch 2), at most one pair per group
        assert 0 <= res["pairs/num"] <= 2 and res["update/passes"] == res["pairs/num"]
