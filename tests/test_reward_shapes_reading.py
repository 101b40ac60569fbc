"""The shapes_reading reward on hand-written reflections about a rendered image_1, and its way into RL rewards."""

import math

import pytest
from _shapes_scenes import circle_and_square
from PIL import Image

from irg_rl.tasks.shapes import ShapesWorldConfig, render_scene
from rewards import RewardBatch, RewardSpec, build_reward

META = {"tag": "two_object", "include": [{"class": "circle", "count": 1}, {"class": "square", "count": 1}]}


def _image_1() -> Image.Image:
    return Image.fromarray(render_scene(circle_and_square("green"), ShapesWorldConfig()))


def test_shapes_reading_scores_the_objects_named_against_those_detected():
    img = _image_1()
    thinks = [
        "<think> I see one green square and one red circle. The image is wrong.\nDetailed ... </think>",  # any order
        "<think> I see one red circle and one red square. This is already correct; I keep it. </think>",  # colour
        "<think> I see one red circle. This image has mistakes. </think>",  # a missed object
        "<think> The image is wrong. </think>",  # no reading at all
        "<think> I see one red circle and one green square. </think>",  # not a ShapesWorld prompt: NaN
    ]
    metas = [META] * 4 + [{}]
    batch = RewardBatch(
        prompts=["a photo of a circle and a square"] * 5,
        images=[img] * 5,
        images_1=[img] * 5,
        think_2=thinks,
        metadata=metas,
    )
    out = build_reward(RewardSpec(name="shapes_reading"))(batch)
    assert out.scores[:4].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert math.isnan(out.scores[4].item())
    assert out.details[1] == {
        "said": {"red circle": 1, "red square": 1},
        "drawn": {"green square": 1, "red circle": 1},
    }
    assert out.details[3]["said"] is None


def test_shapes_reading_needs_a_reflection_and_a_first_image():
    img = _image_1()
    out = build_reward(RewardSpec(name="shapes_reading"))(
        RewardBatch(prompts=["p"], images=[img], metadata=[META])
    )
    assert math.isnan(out.scores[0].item()) and "two-round" in out.details[0]["na"]


def test_reading_weight_without_a_reading_reward_is_refused():
    from irg_rl.config import ConfigError
    from irg_rl.train.rl.recipe import GRPORecipe

    recipe = GRPORecipe()
    recipe.grpo.credit.reading = 1.0
    with pytest.raises(ConfigError, match="grpo.credit.reading=1.0 needs rewards.reading"):
        recipe.validate()
    recipe.rewards.reading = [RewardSpec(name="shapes_reading")]
    recipe.validate()
