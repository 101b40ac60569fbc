"""ShapesWorld prompts, rendering, grid codes, corruptions and texts."""

import json

import numpy as np
import pytest

from irg_rl.tasks.shapes import (
    CORRUPTION_KINDS,
    TAGS,
    ShapesWorldConfig,
    applicable_corruptions,
    cell_classes,
    corrupt,
    enumerate_prompts,
    generate_prompts,
    image_to_cell_classes,
    layout_scene,
    reflection_has_structure,
    render,
    render_scene,
    scene_from_cell_classes,
    score_image,
    split_of,
    validate_meta,
    write_reflection,
    write_think1,
)


def test_prompt_schema_matches_geneval_examples():
    cfg = ShapesWorldConfig()
    metas = {m["prompt"]: m for m in enumerate_prompts(cfg, "train") + enumerate_prompts(cfg, "heldout")}
    assert metas["a photo of three squares"] == {
        "tag": "counting",
        "include": [{"class": "square", "count": 3}],
        "exclude": [{"class": "square", "count": 4}],
        "prompt": "a photo of three squares",
    }
    assert metas["a photo of a circle left of a square"]["include"] == [
        {"class": "square", "count": 1},
        {"class": "circle", "count": 1, "position": ["left of", 0]},
    ]
    assert metas["a photo of a red circle and a blue triangle"]["include"] == [
        {"class": "circle", "count": 1, "color": "red"},
        {"class": "triangle", "count": 1, "color": "blue"},
    ]
    assert {m["tag"] for m in metas.values()} == set(TAGS)
    for m in metas.values():
        validate_meta(m, cfg)
        json.dumps(m)


def test_splits_disjoint_and_cover_space():
    cfg = ShapesWorldConfig(
        shapes=["circle", "square", "triangle", "diamond"], colors=["red", "blue", "green"]
    )
    train = {m["prompt"] for m in enumerate_prompts(cfg, "train")}
    held = {m["prompt"] for m in enumerate_prompts(cfg, "heldout")}
    assert train and held and not train & held
    assert {m["tag"] for m in enumerate_prompts(cfg, "heldout")} == set(TAGS)
    sampled = generate_prompts(cfg, 500, seed=3, split="train")
    assert {m["prompt"] for m in sampled} <= train
    assert all(split_of(m, cfg) == "train" for m in sampled[:50])
    assert {m["prompt"] for m in generate_prompts(cfg, 50, seed=3, split="heldout")} <= held


def test_generation_is_deterministic_by_seed():
    cfg = ShapesWorldConfig()
    a, b, c = (generate_prompts(cfg, 40, seed=s) for s in (7, 7, 8))
    assert a == b and a != c
    ia = [render(m, cfg, np.random.default_rng(i)) for i, m in enumerate(a)]
    ib = [render(m, cfg, np.random.default_rng(i)) for i, m in enumerate(b)]
    assert all(np.array_equal(x, y) for x, y in zip(ia, ib, strict=True))
    assert write_think1(a[0], 5) == write_think1(a[0], 5)


def test_prompt_balance_by_tag_or_by_prompt():
    cfg = ShapesWorldConfig()
    pool = enumerate_prompts(cfg, "train")
    per_tag = {t: sum(m["tag"] == t for m in pool) for t in TAGS}
    by_tag = generate_prompts(cfg, 6 * 20, seed=1)
    assert all(sum(m["tag"] == t for m in by_tag) == 20 for t in TAGS)
    # one pass over the split uses every train prompt exactly once, so tags weigh by their prompt counts
    by_prompt = generate_prompts(cfg, len(pool), seed=1, balance="prompt")
    assert sorted(m["prompt"] for m in by_prompt) == sorted(m["prompt"] for m in pool)
    assert {t: sum(m["tag"] == t for m in by_prompt) for t in TAGS} == per_tag
    longer = generate_prompts(cfg, len(pool) + 5, seed=1, balance="prompt")
    assert (
        longer[: len(pool)] == by_prompt
        and generate_prompts(cfg, 30, seed=2, balance="prompt") != by_prompt[:30]
    )
    with pytest.raises(ValueError, match="balance must be one of"):
        generate_prompts(cfg, 4, balance="tags")


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="colors.*'purpel'.*Did you mean 'purple'"):
        ShapesWorldConfig(colors=["red", "purpel"])
    with pytest.raises(ValueError, match="layout"):
        ShapesWorldConfig(layout="grd")
    with pytest.raises(ValueError, match=r"include\[0\].class"):
        validate_meta(
            {"tag": "single_object", "include": [{"class": "car", "count": 1}], "prompt": "x"},
            ShapesWorldConfig(),
        )


def test_render_grid_centres_objects_in_cells():
    cfg = ShapesWorldConfig()
    meta = {
        "tag": "single_object",
        "include": [{"class": "square", "count": 1}],
        "prompt": "a photo of a square",
    }
    img = render(meta, cfg, 0)
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    ys, xs = np.nonzero((img != 255).any(-1))
    assert (ys.max() - ys.min() + 1, xs.max() - xs.min() + 1) == (cfg.object_px, cfg.object_px)
    assert (ys.min() + ys.max() + 1) / 2 % cfg.cell_px == cfg.cell_px / 2


def test_cell_class_round_trip():
    cfg = ShapesWorldConfig()
    rng = np.random.default_rng(0)
    for meta in generate_prompts(cfg, 60, seed=1):
        scene = layout_scene(meta, cfg, rng)
        classes = cell_classes(scene, cfg)
        assert classes.shape == (16,) and classes.max() < cfg.num_cell_classes
        again = scene_from_cell_classes(classes, cfg)
        img = render_scene(again, cfg)
        assert np.array_equal(img, render_scene(scene, cfg))
        assert np.array_equal(image_to_cell_classes(img, cfg), classes)


@pytest.mark.parametrize("layout", ["grid", "free"])
def test_every_corruption_is_flagged(layout):
    cfg = ShapesWorldConfig(layout=layout)
    rng = np.random.default_rng(5)
    seen = set()
    for meta in enumerate_prompts(cfg, "train") + enumerate_prompts(cfg, "heldout"):
        for kind in applicable_corruptions(meta, cfg, CORRUPTION_KINDS):
            scene, got = corrupt(meta, cfg, rng, kind=kind)
            assert got == kind
            score = score_image(render_scene(scene, cfg), meta, cfg)
            assert score.strict == 0.0, (meta["prompt"], kind, score.description)
            assert score.partial < 1.0
            seen.add(kind)
    assert seen == set(CORRUPTION_KINDS)
    with pytest.raises(ValueError, match="cannot break"):
        corrupt(
            {"tag": "single_object", "include": [{"class": "circle", "count": 1}], "prompt": "p"},
            cfg,
            0,
            "wrong_position",
        )


def test_extra_copy_is_opt_in_and_adds_one_copy_of_a_drawn_object():
    from collections import Counter

    from irg_rl.tasks.shapes.corrupt import DEFAULT_CORRUPTION_KINDS
    from irg_rl.tasks.shapes.data_builder import ShapesDataConfig

    cfg = ShapesWorldConfig()
    meta = next(m for m in enumerate_prompts(cfg, "train") if m["tag"] == "color_attr")
    # not drawn by default (the default data stay as they were), drawn when allowed
    assert "extra_copy" not in applicable_corruptions(meta, cfg)
    assert "extra_copy" not in DEFAULT_CORRUPTION_KINDS
    assert applicable_corruptions(meta, cfg, ["extra_copy"]) == ["extra_copy"]
    # GenEval's own rules allow extras: then it breaks only prompts with an exclude clause
    assert (
        applicable_corruptions(meta, ShapesWorldConfig(forbid_extra_objects=False), CORRUPTION_KINDS).count(
            "extra_copy"
        )
        == 0
    )
    scene = layout_scene(meta, cfg, 0)
    wrong, kind = corrupt(meta, cfg, 1, scene=scene, allowed=["extra_copy"])
    assert kind == "extra_copy" and len(wrong) == len(scene) + 1
    added = Counter((o.shape, o.color) for o in wrong) - Counter((o.shape, o.color) for o in scene)
    assert sum(added.values()) == 1 and next(iter(added)) in {(o.shape, o.color) for o in scene}
    with pytest.raises(ValueError, match="corruption_kinds"):
        ShapesDataConfig(corruption_kinds=["extra"]).validate()


def test_think_texts_vary_and_reflections_have_structure():
    cfg = ShapesWorldConfig()
    rng = np.random.default_rng(0)
    thinks, words = set(), []
    for meta in generate_prompts(cfg, 120, seed=2):
        scene = layout_scene(meta, cfg, rng)
        t1 = write_think1(meta, rng, scene, cfg)
        assert t1.startswith("<think> ") and t1.endswith(" </think>")
        thinks.add(" ".join(t1.split()[1:4]))
        correct = rng.random() < 0.3
        scene_1 = scene if correct else corrupt(meta, cfg, rng, scene=scene)[0]
        s1 = score_image(render_scene(scene_1, cfg), meta, cfg)
        r = write_reflection(meta, s1, rng, scene, cfg)
        assert reflection_has_structure(r), r
        assert ("keep" in r) == correct
        words += [len(t1.split()), len(r.split())]
    assert len(thinks) >= 3  # several opening templates are in use
    assert np.mean(words) < 80
    assert not reflection_has_structure("<think> fine </think>")
    assert not reflection_has_structure(r.replace("Step-by-Step Modification Guidance", "Steps"))


def test_checklist_reflection_marks_each_requirement_before_the_verdict():
    from _shapes_scenes import RED_CIRCLE_BLUE_SQUARE as meta
    from _shapes_scenes import circle_and_square

    from irg_rl.tasks.shapes.text import KEEP_VERDICT, REVISE_VERDICT
    from irg_rl.tasks.shapes.world import SceneObject

    cfg = ShapesWorldConfig()
    wrong, right = circle_and_square("green", cfg), circle_and_square("blue", cfg)
    extra = right + [SceneObject("triangle", "red", 28, 4, cfg.object_px)]
    texts = {}
    for name, scene in (("wrong", wrong), ("right", right), ("extra", extra)):
        score = score_image(render_scene(scene, cfg), meta, cfg)
        texts[name] = write_reflection(meta, score, 0, right, cfg, style="checklist")
        assert reflection_has_structure(texts[name])
    assert "Check: a red circle, yes; a blue square, no; nothing else, yes." in texts["wrong"]
    assert "Check: a red circle, yes; a blue square, yes; nothing else, yes." in texts["right"]
    assert "Check: a red circle, yes; a blue square, yes; nothing else, no." in texts["extra"]
    # the verdict comes after the checklist, and the checklist itself matches neither verdict pattern
    for name, pattern in (("wrong", REVISE_VERDICT), ("right", KEEP_VERDICT), ("extra", REVISE_VERDICT)):
        check_end = texts[name].index("Check:") + texts[name][texts[name].index("Check:") :].index(".")
        assert pattern.search(texts[name]).start() > check_end
        assert not KEEP_VERDICT.search(texts[name][:check_end]) and not REVISE_VERDICT.search(
            texts[name][:check_end]
        )
    # the other style has no checklist, and an unknown style is refused
    score = score_image(render_scene(wrong, cfg), meta, cfg)
    assert "Check:" not in write_reflection(meta, score, 0, right, cfg, style="verdict_first")
    with pytest.raises(ValueError, match="style"):
        write_reflection(meta, score, 0, right, cfg, style="list")
    with pytest.raises(ValueError, match="reflection_style"):
        ShapesWorldConfig(reflection_style="list")


def test_located_reflection_lists_each_seen_object_with_its_place_in_reading_order():
    from _shapes_scenes import RED_CIRCLE_BLUE_SQUARE as meta
    from _shapes_scenes import circle_and_square

    from irg_rl.tasks.shapes.text import REVISE_VERDICT, described_objects, reflection_description
    from irg_rl.tasks.shapes.world import SceneObject

    cfg = ShapesWorldConfig()
    right = circle_and_square("blue", cfg)
    # an extra red triangle in the top-right cell: the reading must name it where it is
    extra = right + [SceneObject("triangle", "red", 28, 4, cfg.object_px)]
    score = score_image(render_scene(extra, cfg), meta, cfg)
    text = write_reflection(meta, score, 0, right, cfg, style="located")
    assert reflection_has_structure(text)
    first = text.split("<think> ")[1].split(".")[0]
    placed = [f"{o.color} {o.shape} at the " for o in sorted(extra, key=lambda o: (o.cy // 8, o.cx // 8))]
    assert first.startswith("I see ") and "red triangle at the top right" in first
    # every object once, in reading order (row by row, then left to right)
    positions = [first.index(p) for p in placed]
    assert positions == sorted(positions)
    assert REVISE_VERDICT.search(text)
    # the probe's parser reads both wordings to the same multiset
    counted = write_reflection(meta, score, 0, right, cfg, style="verdict_first")
    assert described_objects(reflection_description(text)) == described_objects(
        reflection_description(counted)
    )
    assert described_objects(reflection_description(text))[("red", "triangle")] == 1
    with pytest.raises(ValueError, match="needs cfg"):
        write_reflection(meta, score, 0, style="located")


def test_rebind_gives_an_object_another_objects_shape_or_colour():
    cfg = ShapesWorldConfig()
    metas = enumerate_prompts(cfg, "train")
    single = next(m for m in metas if m["tag"] == "single_object")
    assert "rebind" not in applicable_corruptions(single, cfg, CORRUPTION_KINDS)  # nothing to take from
    for tag in ("two_object", "color_attr", "position"):
        meta = next(m for m in metas if m["tag"] == tag)
        scene = layout_scene(meta, cfg, 0)
        wrong, kind = corrupt(meta, cfg, 3, scene=scene, allowed=["rebind"])
        assert kind == "rebind" and len(wrong) == len(scene)
        changed = [(o, w) for o, w in zip(scene, wrong, strict=True) if o != w]
        assert len(changed) == 1
        before, after = changed[0]
        # exactly one attribute changed, to a value another object of the scene has; places are kept
        attrs = {(o.shape, o.color) for o in scene if o is not before}
        assert (after.shape != before.shape) != (after.color != before.color)
        assert after.shape in {s for s, _ in attrs} and after.color in {c for _, c in attrs} | {before.color}
        assert (after.cx, after.cy) == (before.cx, before.cy)
        assert score_image(render_scene(wrong, cfg), meta, cfg).strict == 0.0
