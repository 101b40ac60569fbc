"""The ShapesWorld IRGL builder writes six modes in the official format that read back."""

import dataclasses
import json

import numpy as np
import pytest

from irg_rl.data.format import iter_conversations, validate_dataset
from irg_rl.data.modes import MODES
from irg_rl.tasks.shapes import ShapesWorldConfig, reflection_has_structure, score_image, split_of
from irg_rl.tasks.shapes.data_builder import ShapesDataConfig, build_shapes_data


def test_builder_writes_six_modes(tmp_path):
    cfg = ShapesDataConfig(num_prompts=30, seed=4, correct_share=0.3, shard_size=16, preview_rows=3)
    summary = build_shapes_data(tmp_path, cfg)
    assert summary["conversations_per_mode"] == 30
    report = validate_dataset(tmp_path)
    assert sorted(report) == sorted(MODES)
    assert all(r.rows == 30 and r.skipped == 0 for r in report.values())
    by_mode = {}
    for mode, _, _, conv in iter_conversations(tmp_path):
        by_mode.setdefault(mode, []).append(conv)
    meta_rows = [json.loads(line) for line in (tmp_path / "metadata.jsonl").read_text().splitlines()]
    world = ShapesWorldConfig()
    for k, row in enumerate(meta_rows):
        conv = by_mode["improving_full_learning"][k]
        assert conv[0].content == row["metadata"]["prompt"]
        t1, img1, t2, img2 = conv[1].content
        assert (t1.type, t1.need_loss) == ("text", False)
        assert (img1.need_vae, img1.need_vit, img1.need_loss) == (
            True,
            True,
            row["image_1_kind"] == "correct",
        )
        assert reflection_has_structure(t2.content) and t2.need_loss
        assert img2.need_loss and not img2.need_vae
        assert score_image(np.asarray(img2.pil()), row["metadata"], world).strict == 1.0
        assert score_image(np.asarray(img1.pil()), row["metadata"], world).strict == row["image_1_strict"]
        assert split_of(row["metadata"], world) == "train"
    und = by_mode["initial_thinking_understanding_learning"][0][1].content
    assert [p.type for p in und] == ["image", "text"] and not und[0].need_loss and und[0].need_vit
    assert [p.type for p in by_mode["improving_thinking_understanding_learning"][0][1].content] == [
        "image",
        "image",
        "text",
    ]
    held = [json.loads(line) for line in (tmp_path / "prompts_heldout.jsonl").read_text().splitlines()]
    assert held and all(split_of(m, world) == "heldout" for m in held)
    assert (tmp_path / "preview.png").stat().st_size > 0 and (tmp_path / "world.yaml").is_file()
    assert {r["image_1_kind"] for r in meta_rows} >= {"correct", "missing_object"}


def test_builder_is_deterministic(tmp_path):
    cfg = ShapesDataConfig(num_prompts=8, seed=2)
    build_shapes_data(tmp_path / "a", cfg)
    build_shapes_data(tmp_path / "b", cfg)
    for mode in MODES:
        a = (tmp_path / "a" / mode / "part-00000.parquet").read_bytes()
        b = (tmp_path / "b" / mode / "part-00000.parquet").read_bytes()
        assert a == b


def test_script_cli(tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "scripts/make_shapes_data.py",
            "--out",
            str(tmp_path),
            "--num-prompts",
            "4",
            "world.layot=free",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "Did you mean 'world.layout'" in out.stderr
    with pytest.raises(ValueError, match="correct_share"):
        build_shapes_data(tmp_path, ShapesDataConfig(correct_share=1.5))


def test_layout_source_image_1_keeps_places_out_of_the_plan_and_final_prompt(tmp_path):
    build_shapes_data(tmp_path / "text", ShapesDataConfig(num_prompts=12, seed=1))
    build_shapes_data(tmp_path / "img", ShapesDataConfig(num_prompts=12, seed=1, layout_source="image_1"))

    def full(root):
        return [c for m, _, _, c in iter_conversations(root) if m == "improving_full_learning"]

    for text_conv, img_conv in zip(full(tmp_path / "text"), full(tmp_path / "img"), strict=True):
        prompt = img_conv[0].content
        t1, _, t2, _ = img_conv[1].content
        final = t2.content.split("Final Comprehensive Prompt for the Improved Image:")[1]
        assert " at the " not in t1.content and final.strip(" .</think>") == prompt
        assert reflection_has_structure(t2.content)
        text_t1 = text_conv[1].content[0].content
        assert " at the " in text_t1  # the default plan names places
    with pytest.raises(ValueError, match="layout_source"):
        ShapesDataConfig(layout_source="both").validate()


def test_improving_pairs_give_each_plan_a_keep_and_a_revise_image(tmp_path):
    """With pairs the improving rows of a prompt share prompt and think_1, one reflection keeps and one revises,
    and only image_1 tells them apart; the initial modes and each prompt's first example are unchanged."""
    cfg = ShapesDataConfig(num_prompts=12, seed=5, shard_size=5)
    plain = build_shapes_data(tmp_path / "plain", cfg)
    paired = build_shapes_data(tmp_path / "pairs", dataclasses.replace(cfg, improving_pairs=True))
    assert (plain["improving_rows_per_prompt"], paired["improving_rows_per_prompt"]) == (1, 2)
    report = validate_dataset(tmp_path / "pairs")
    assert {m: r.rows for m, r in report.items()} == {
        m: 24 if m.startswith("improving") else 12 for m in MODES
    }

    def rows(root, mode):
        return [c for m, _, _, c in iter_conversations(root) if m == mode]

    for mode in MODES:
        if mode.startswith("initial"):
            assert rows(tmp_path / "plain", mode) == rows(tmp_path / "pairs", mode)
    meta_rows = [
        json.loads(line) for line in (tmp_path / "pairs" / "metadata.jsonl").read_text().splitlines()
    ]
    plain_full = rows(tmp_path / "plain", "improving_full_learning")
    full = rows(tmp_path / "pairs", "improving_full_learning")
    assert len(full) == 24
    # rows are written per prompt: the first example, then its twin
    for k, row in enumerate(meta_rows):
        first, twin = full[2 * k], full[2 * k + 1]
        assert first == plain_full[k]
        assert first[0].content == twin[0].content == row["metadata"]["prompt"]
        assert first[1].content[0].content == twin[1].content[0].content  # the same think_1
        assert first[1].content[3].content == twin[1].content[3].content  # the same image_2
        assert {row["image_1_kind"] == "correct", row["twin_image_1_kind"] == "correct"} == {True, False}
        world = ShapesWorldConfig()
        strict = [
            score_image(np.asarray(c[1].content[1].pil()), row["metadata"], world).strict
            for c in (first, twin)
        ]
        assert sorted(strict) == [0.0, 1.0]
        assert first[1].content[2].content != twin[1].content[2].content  # different reflections
