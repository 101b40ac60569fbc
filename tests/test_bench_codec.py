"""`python -m experiments.bench codec --quick`: every stage runs, the result has its structure, the grid codec is exact."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from experiments.bench import BENCHMARKS
from experiments.bench.codec import CODECS, codec_ceiling, main, markdown_tables, parse_args, render_images
from irg_rl.tasks.shapes import ShapesWorldConfig
from irg_rl.tasks.shapes.grid_codec import GridCodec

ROOT = Path(__file__).resolve().parents[1]
RECIPES = [
    "--recipe",
    str(ROOT / "recipes/shapes/sft_stage1.yaml"),
    "--eval-recipe",
    str(ROOT / "recipes/shapes/eval.yaml"),
]


def test_grid_codec_ceiling_is_exact_on_grid_scenes():
    world = ShapesWorldConfig()
    images, metas = render_images(world, 10, "heldout", seed=3, corruptions=False)
    assert images.shape == (10, 32, 32, 3) and images.dtype == np.uint8
    c = codec_ceiling(GridCodec(world, dim=8), images, metas, world)
    assert c["mse"] == 0.0 and c["strict"] == 1.0 and c["partial"] == 1.0
    assert c["latent_shape"] == [8, 4, 4]


def test_eval_points_must_lie_within_the_run():
    with pytest.raises(SystemExit):
        parse_args(["--sft-steps", "10", "--eval-at", "5", "20"])


def test_quick_bench_runs_every_stage(tmp_path, capsys):
    assert "codec" in BENCHMARKS
    torch.manual_seed(0)
    out = tmp_path / "result.json"
    main(["--quick", "--out", str(out), *RECIPES])
    result = json.loads(out.read_text())
    stdout = capsys.readouterr().out  # (DeepSpeed's import may log a line before the JSON)
    assert json.loads(stdout[stdout.index("{\n") :]) == result
    c = result["ceiling"]
    assert c["grid"]["strict"] == 1.0 and c["grid"]["mse"] == 0.0
    assert c["tiny"]["latent_shape"] == c["grid"]["latent_shape"] == [8, 4, 4]  # 16 tokens per image each
    assert c["tiny"]["strict"] < 1.0 and c["tiny"]["mse"] > 0.0  # a few-step AE is not exact: below the grid
    assert c["tiny"]["train"]["steps"] >= 1
    s = result["starts"]
    assert s["identical_model_weights"] and s["same_vocab"] and s["tiny_ae_round_trip"]
    assert s["vae_kinds"] == ["grid", "tiny"]
    for k in CODECS:
        sft = result["sft"][k]
        assert [p["step"] for p in sft["evals"]] == [1, 2]
        for p in sft["evals"]:
            for turn in ("no_think", "think"):  # strict (all right) can never exceed partial credit
                assert 0.0 <= p[f"{turn}_strict"] <= p[f"{turn}_partial"] <= 1.0
        assert sft["seconds_per_step"] > 0 and sft["tokens_per_s"] > 0
    # same seed, same data: both runs see the same batches (the codecs give the same token counts)
    assert result["sft"]["grid"]["tokens_per_step"] == result["sft"]["tiny"]["tokens_per_step"]
    table = markdown_tables(result)
    assert table.count("| grid | ") == 1 + 2 + 1 and table.count("| tiny | ") == 1 + 2 + 1
