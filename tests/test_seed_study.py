"""The GRPO/DPO seed study: summary maths by hand, and a one-step run per seed on a random checkpoint."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml
from _rl_helpers import random_checkpoint, recipe_dict

from experiments.demo.seed_study import SeedStudyOptions, run_seed_study, summarise

torch.set_num_threads(1)


def _row(think, irg, reg, imp, n=100):
    return {"n": n, "think": think, "irg": irg, "regression_rate": reg, "improvement_rate": imp}


def test_summarise_mean_range_gain_and_standard_error():
    start = _row(0.3, 0.2, 0.6, 0.1)
    s = summarise(start, {0: _row(0.4, 0.3, 0.5, 0.2), 1: _row(0.2, 0.25, 0.7, 0.3)})
    irg = s["metrics"]["irg"]
    assert irg["mean"] == pytest.approx(0.275) and irg["min"] == 0.25 and irg["max"] == 0.3
    assert irg["gain"] == pytest.approx(0.075)
    assert irg["se_start"] == pytest.approx(math.sqrt(0.2 * 0.8 / 100))
    assert s["metrics"]["regression_rate"]["gain"] == pytest.approx(0.0)
    assert "se_start" not in s["metrics"]["regression_rate"]


def test_seed_study_runs_each_seed_and_reuses_finished_stages(tmp_path):
    ckpt = random_checkpoint(tmp_path)
    recipe = recipe_dict(ckpt, tmp_path / "unused")
    recipe["grpo"] = {"group_size": 2, "inner_updates": 1}
    recipe["sampling"]["sde_window_size"] = 1
    (tmp_path / "grpo.yaml").write_text(yaml.safe_dump(recipe))
    prompts = [{"tag": "single_object", "include": [{"class": "circle", "count": 1}], "prompt": "a circle"}]
    (tmp_path / "heldout.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts * 2))
    opts = SeedStudyOptions(
        recipe=str(tmp_path / "grpo.yaml"),
        start=str(ckpt),
        heldout=str(tmp_path / "heldout.jsonl"),
        seeds=[0, 1],
        images_per_prompt=1,
        out=str(tmp_path / "study"),
        eval_overrides=[
            "sampling.steps=4",
            "sampling.turn1.max_think_tokens=4",
            "sampling.turn2.max_think_tokens=4",
            "eval.batch_size=2",
        ],
    )
    opts.cfg_eval_overrides = ["sampling.turn1.cfg_text_scale=2.0"]  # CFG-aware: a second, guided evaluation
    summary = run_seed_study(opts)
    assert set(summary["seeds"]) == {0, 1}
    assert (
        set(summary["cfg"]["seeds"]) == {0, 1}
        and (tmp_path / "study" / "eval_seed1_cfg" / "DONE.json").is_file()
    )
    guided = json.loads((tmp_path / "study" / "eval_start_cfg" / "results.json").read_text())
    assert guided["sampling"]["irg"]["turn1"]["cfg_text_scale"] == 2.0
    assert (
        "## With guidance (sampling.turn1.cfg_text_scale=2.0)"
        in (tmp_path / "study" / "summary.md").read_text()
    )
    assert summary["start"]["n"] == 2
    for seed in (0, 1):
        assert (tmp_path / "study" / f"train_seed{seed}" / "DONE.json").is_file()
        assert summary["seeds"][seed]["model"] != summary["start"]["model"]
    assert "GRPO seed study" in (tmp_path / "study" / "summary.md").read_text()
    stamp = (tmp_path / "study" / "train_seed0" / "DONE.json").stat().st_mtime_ns
    run_seed_study(opts)  # a rerun reuses every finished stage
    assert (tmp_path / "study" / "train_seed0" / "DONE.json").stat().st_mtime_ns == stamp


def test_seed_study_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="heldout"):
        run_seed_study(SeedStudyOptions(heldout=str(tmp_path / "nope.jsonl")))


def test_summary_table_rows_have_as_many_cells_as_the_header():
    from experiments.demo.seed_study import summary_markdown

    start = _row(0.3, 0.2, 0.6, 0.1)
    s = summarise(start, {0: _row(0.4, 0.3, 0.5, 0.2), 1: _row(0.2, 0.25, 0.7, 0.3)})
    table = [ln for ln in summary_markdown(SeedStudyOptions(), s).splitlines() if ln.startswith("|")]
    assert len(table) >= 6 and len({ln.count("|") for ln in table}) == 1


def test_margin_line_reads_the_margins_against_both_seed_ranges():
    from experiments.demo.seed_study import _margin_line

    seeds = {
        0: {"think": 0.60, "irg": 0.64},
        1: {"think": 0.70, "irg": 0.75},
        2: {"think": 0.50, "irg": 0.52},
    }
    line = _margin_line(seeds, irg_range=0.75 - 0.52)
    # margins +0.04 / +0.05 / +0.02: their range 0.03 is above the smallest margin 0.02; turn 2's range 0.23 too
    assert "+0.040 / +0.050 / +0.020 (range 0.030)" in line
    assert "margins' seed range: False" in line and "(0.230): False" in line
    seeds[2] = {"think": 0.50, "irg": 0.545}
    assert "margins' seed range: True" in _margin_line(seeds, irg_range=0.21)
