"""Acceptance tests of the exact ShapesWorld scorer: correct renders pass, degraded renders still pass."""

import numpy as np
import pytest
from scipy import ndimage

from irg_rl.tasks.shapes import ShapesWorldConfig, generate_prompts, render, score_image
from irg_rl.tasks.shapes.detect import detect_objects
from irg_rl.tasks.shapes.render import render_scene
from irg_rl.tasks.shapes.world import SceneObject


def _noise(img, rng):
    return img / 255.0 + rng.normal(0.0, 0.05, img.shape)


def _blur(img, rng):
    return ndimage.gaussian_filter(img.astype(np.float64), (1.0, 1.0, 0.0)) / 255.0


def _shift(img, rng):
    return (img + rng.uniform(-25, 25, size=3)) / 255.0


def _strays(img, rng):
    out = img.astype(np.float64).copy()
    for _ in range(3):  # a few 1-2 px specks of object colours
        y, x = rng.integers(0, img.shape[0] - 2, size=2)
        out[y : y + rng.integers(1, 3), x : x + rng.integers(1, 3)] = [230, 25, 25]
    return out / 255.0


def _to_uint8(x):
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _accuracy(cfg, metas, images, degrade, rng):
    strict = [
        score_image(_to_uint8(degrade(im, rng)), m, cfg).strict for m, im in zip(metas, images, strict=True)
    ]
    return float(np.mean(strict))


@pytest.fixture(scope="module", params=["grid", "free"])
def world(request):
    cfg = ShapesWorldConfig(layout=request.param)
    metas = generate_prompts(cfg, 1000, seed=11)
    rng = np.random.default_rng(0)
    return cfg, metas, [render(m, cfg, rng) for m in metas]


def test_correct_renders_score_one(world):
    cfg, metas, images = world
    scores = [score_image(im, m, cfg) for m, im in zip(metas, images, strict=True)]
    assert np.mean([s.strict for s in scores]) == 1.0
    assert all(s.partial == 1.0 for s in scores)
    assert len({m["tag"] for m in metas}) == 6


@pytest.mark.parametrize(
    "degrade", [_noise, _blur, _shift, _strays], ids=["noise", "blur", "shift", "strays"]
)
def test_robust_to_degradations(world, degrade):
    cfg, metas, images = world
    assert _accuracy(cfg, metas, images, degrade, np.random.default_rng(1)) >= 0.99


def test_detects_shapes_colours_and_boxes():
    cfg = ShapesWorldConfig()
    scene = [
        SceneObject("circle", "red", 4, 4, 6),
        SceneObject("square", "blue", 20, 12, 6),
        SceneObject("triangle", "yellow", 28, 28, 6),
    ]
    dets = detect_objects(render_scene(scene, cfg), cfg)
    assert [(d.shape, d.color) for d in dets] == [
        ("circle", "red"),
        ("square", "blue"),
        ("triangle", "yellow"),
    ]
    assert dets[1].box == (17.0, 9.0, 23.0, 15.0)


def test_geneval_rules_and_partial_credit():
    cfg = ShapesWorldConfig(forbid_extra_objects=False)  # GenEval's rules exactly
    two = {
        "tag": "counting",
        "include": [{"class": "circle", "count": 2}],
        "exclude": [{"class": "circle", "count": 3}],
        "prompt": "a photo of two circles",
    }
    one = render_scene([SceneObject("circle", "red", 4, 4, 6)], cfg)
    s = score_image(one, two, cfg)
    assert s.strict == 0.0 and s.partial == pytest.approx(0.75)  # count credit 1/2, exclude ok
    assert s.description == "I see one red circle."
    three = render_scene([SceneObject("circle", "red", 4 + 8 * k, 4, 6) for k in range(3)], cfg)
    s = score_image(three, two, cfg)
    assert s.strict == 0.0 and [c["ok"] for c in s.clauses] == [True, False]
    left = {
        "tag": "position",
        "include": [
            {"class": "square", "count": 1},
            {"class": "circle", "count": 1, "position": ["left of", 0]},
        ],
        "prompt": "a photo of a circle left of a square",
    }
    good = render_scene(
        [SceneObject("square", "blue", 28, 12, 6), SceneObject("circle", "red", 4, 12, 6)], cfg
    )
    assert score_image(good, left, cfg).strict == 1.0
    # diagonal: mostly above, so GenEval's rule does not call it "left of"
    diag = render_scene(
        [SceneObject("square", "blue", 12, 28, 6), SceneObject("circle", "red", 4, 4, 6)], cfg
    )
    s = score_image(diag, left, cfg)
    assert s.strict == 0.0 and "above" in s.description
    with pytest.raises(ValueError, match="uint8"):
        score_image(good.astype(np.float32), left, cfg)


def test_extra_objects_fail_only_when_forbidden():
    meta = {
        "tag": "single_object",
        "include": [{"class": "circle", "count": 1}],
        "prompt": "a photo of a circle",
    }
    crowded = render_scene(
        [
            SceneObject("circle", "red", 4, 4, 6),
            SceneObject("square", "blue", 20, 4, 6),
            SceneObject("triangle", "green", 4, 20, 6),
        ],
        ShapesWorldConfig(),
    )
    geneval = score_image(crowded, meta, ShapesWorldConfig(forbid_extra_objects=False))
    assert (geneval.strict, geneval.partial) == (1.0, 1.0)
    exact = score_image(crowded, meta, ShapesWorldConfig())
    extra = exact.clauses[-1]
    assert exact.strict == 0.0 and extra["kind"] == "extra" and extra["found"] == 2
    assert exact.partial == pytest.approx((1.0 + 1.0 / 3.0) / 2)
    assert sorted(extra["extra"]) == ["blue square", "green triangle"]


def test_empty_exclude_list_does_not_excuse_extra_objects():
    meta = {
        "tag": "two_object",
        "include": [{"class": "circle", "count": 1}, {"class": "square", "count": 1}],
        "exclude": [],
        "prompt": "a photo of a circle and a square",
    }
    scene = [
        SceneObject("circle", "red", 4, 4, 6),
        SceneObject("square", "blue", 20, 4, 6),
        SceneObject("circle", "green", 4, 20, 6),
    ]
    score = score_image(render_scene(scene, ShapesWorldConfig()), meta, ShapesWorldConfig())
    assert score.strict == 0.0 and score.clauses[-1]["kind"] == "extra" and score.clauses[-1]["found"] == 1
