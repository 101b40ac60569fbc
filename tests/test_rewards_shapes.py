"""`shapes` reward: exact ShapesWorld scores (correct renders are 1, corrupted ones lose credit), and score.py."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from rewards import RewardBatch, build_reward

shapes = pytest.importorskip("irg_rl.tasks.shapes")


@pytest.fixture(scope="module")
def world():
    cfg = shapes.ShapesWorldConfig()
    metas = shapes.generate_prompts(cfg, 12, seed=0)
    return cfg, metas


def test_correct_renders_score_one_and_match_scorer(world):
    cfg, metas = world
    imgs = [Image.fromarray(shapes.render(m, cfg, rng=i)) for i, m in enumerate(metas)]
    b = RewardBatch(prompts=[m["prompt"] for m in metas], images=imgs, metadata=metas)
    for mode in ("strict", "partial"):
        out = build_reward({"name": "shapes", "args": {"mode": mode}})(b)
        assert out.scores.tolist() == [1.0] * len(metas)
    # upscaled renders (as saved for viewing) score the same
    big = b.replace(images=[im.resize((128, 128), Image.NEAREST) for im in imgs])
    assert build_reward("shapes")(big).scores.tolist() == [1.0] * len(metas)


def test_corrupted_scenes_lose_exactly_the_scorer_credit(world):
    cfg, metas = world
    imgs, expected_strict, expected_partial = [], [], []
    for i, m in enumerate(metas):
        scene, _ = shapes.corrupt(m, cfg, rng=i)
        arr = shapes.render_scene(scene, cfg)
        res = shapes.score_image(arr, m, cfg)
        imgs.append(Image.fromarray(arr))
        expected_strict.append(res.strict)
        expected_partial.append(res.partial)
    b = RewardBatch(prompts=[m["prompt"] for m in metas], images=imgs, metadata=metas)
    strict = build_reward({"name": "shapes", "args": {"mode": "strict"}})(b)
    partial = build_reward("shapes")(b)
    assert strict.scores.tolist() == expected_strict
    assert partial.scores.tolist() == pytest.approx(expected_partial)
    assert sum(expected_strict) < len(metas)  # corruptions really break prompts
    assert all(0.0 <= p < 1.0 or s == 1.0 for p, s in zip(expected_partial, expected_strict, strict=True))


def test_nan_without_metadata_and_bad_metadata_error(world):
    cfg, metas = world
    img = Image.fromarray(shapes.render(metas[0], cfg, rng=0))
    out = build_reward("shapes")(RewardBatch(prompts=["free text"], images=[img]))
    assert math.isnan(out.scores[0]) and "include" in out.details[0]["na"]
    bad = {"tag": "single_object", "include": [{"class": "hexagon", "count": 1}], "prompt": "a hexagon"}
    with pytest.raises(ValueError, match="sample 0"):
        build_reward("shapes")(RewardBatch(prompts=["a hexagon"], images=[img], metadata=[bad]))


def test_score_script_on_a_folder_of_renders(world, tmp_path):
    cfg, metas = world
    rows = []
    for i, m in enumerate(metas[:4]):
        name = f"img_{i}.png"
        Image.fromarray(shapes.render(m, cfg, rng=i)).save(tmp_path / name)
        rows.append({"file": name, **m})
    meta_file = tmp_path / "meta.jsonl"
    meta_file.write_text("\n".join(json.dumps(r) for r in reversed(rows)))
    script = Path(__file__).resolve().parents[1] / "scripts" / "score.py"
    res = subprocess.run(
        [
            sys.executable,
            str(script),
            "--reward",
            "shapes",
            "--images",
            str(tmp_path),
            "--metadata",
            str(meta_file),
            "--arg",
            "mode=strict",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "mean over 4/4 applicable samples: 1.0000" in res.stdout
    demo = subprocess.run(
        [
            sys.executable,
            str(script),
            "--reward",
            "shapes",
            "--images",
            str(tmp_path / "demo"),
            "--render-shapes",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert demo.returncode == 0, demo.stderr
    assert (tmp_path / "demo" / "metadata.jsonl").is_file() and "applicable samples" in demo.stdout
    listed = subprocess.run(
        [sys.executable, str(script), "--list"], capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0 and "shapes" in listed.stdout and "geneval" in listed.stdout
