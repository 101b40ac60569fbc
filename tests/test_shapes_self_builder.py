"""Reflection data from a model's own first images: labels, balance, and rows in the official format."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _shapes_scenes import RED_CIRCLE_BLUE_SQUARE

from irg_rl.data.format import iter_conversations, validate_dataset
from irg_rl.inference.verdict import parse_verdict
from irg_rl.tasks.shapes import ShapesWorldConfig, corrupt, layout_scene, render_scene
from irg_rl.tasks.shapes.self_builder import (
    IMPROVING_MODES,
    SelfReflectionDataConfig,
    balance,
    build_self_reflection_data,
    label_example,
    write_rows,
)
from irg_rl.tasks.shapes.text import KEEP_VERDICT, REVISE_VERDICT

WORLD = ShapesWorldConfig()
META = RED_CIRCLE_BLUE_SQUARE


def _images(seed: int):
    rng = np.random.default_rng(seed)
    scene = layout_scene(META, WORLD, rng)
    wrong, _ = corrupt(META, WORLD, rng, scene=scene)
    return render_scene(scene, WORLD), render_scene(wrong, WORLD)


def test_labels_keep_a_right_image_and_revise_a_wrong_one():
    right, wrong = _images(0)
    rng = np.random.default_rng(1)
    keep = label_example(META, "<think> plan </think>", right, WORLD, rng)
    revise = label_example(META, "<think> plan </think>", wrong, WORLD, rng)
    assert keep.kind == "model_right" and np.array_equal(keep.image_2, right)  # image_2 is image_1 exactly
    assert parse_verdict(keep.think_2, KEEP_VERDICT.pattern, REVISE_VERDICT.pattern) == "keep"
    assert revise.kind == "model_wrong" and not np.array_equal(revise.image_2, wrong)
    assert parse_verdict(revise.think_2, KEEP_VERDICT.pattern, REVISE_VERDICT.pattern) == "revise"
    from irg_rl.tasks.shapes import score_image

    assert score_image(revise.image_2, META, WORLD).strict == 1.0  # the corrected target is right


def test_balance_subsamples_the_majority():
    rng = np.random.default_rng(0)
    kept = balance(list(range(10)), list(range(10, 14)), 0.5, rng)
    assert len(kept) == 8 and sum(i < 10 for i in kept) == 4
    kept = balance(list(range(3)), list(range(3, 20)), 0.25, rng)
    assert sum(i < 3 for i in kept) == 3 and len(kept) == 12
    assert balance([], [1, 2], 0.5, rng) == []


def test_rows_pass_the_official_format_validator(tmp_path):
    examples = []
    for seed in range(3):
        right, wrong = _images(seed)
        rng = np.random.default_rng(seed)
        examples += [label_example(META, "<think> plan </think>", im, WORLD, rng) for im in (right, wrong)]
    write_rows(tmp_path, examples)
    report = validate_dataset(tmp_path)
    assert sorted(report) == sorted(IMPROVING_MODES)
    for stats in report.values():
        assert stats.rows == 6 and stats.skipped == 0
    lines = [json.loads(x) for x in (tmp_path / "metadata.jsonl").read_text().splitlines()]
    assert [x["verdict"] for x in lines] == ["keep", "revise"] * 3
    # the model's think_1 is context only; image_2 is trained in improving_full
    _, _, _, conv = next(iter_conversations(tmp_path, ["improving_full_learning"]))
    parts = conv[1].content
    assert parts[0].need_loss is False and parts[-1].need_loss is True


def test_a_checkpoint_with_no_right_image_is_a_clear_error(tmp_path):
    from _rl_helpers import random_checkpoint

    ckpt = random_checkpoint(tmp_path)
    cfg = SelfReflectionDataConfig(model=str(ckpt), num_prompts=4, batch_size=4)
    cfg.sampling.turn1.max_think_tokens = 4
    with pytest.raises(ValueError, match="right and .* wrong first images; both are needed"):
        build_self_reflection_data(tmp_path / "out", cfg, log=lambda m: None)
