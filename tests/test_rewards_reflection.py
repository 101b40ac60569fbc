"""Reflection rewards: think_2 format, improvement and no-regression over a base reward."""

import math

import pytest
import torch
from PIL import Image

from rewards import Reward, RewardBatch, RewardOutput, build_reward
from rewards.builtins.reflection import ImprovementReward, NoRegressionReward, reflection_parts

GOOD = (
    "<think>The image shows two red circles, but the prompt asks for three; the left one is also too small.\n"
    "## Detailed Explanation of Required Improvements\nAdd a third red circle and enlarge the left one.\n"
    "## Step-by-Step Modification Guidance\n1. Keep the two circles. 2. Add one more on the right side.\n"
    "## Final Comprehensive Prompt for the Improved Image\nThree red circles of equal size on white.</think>"
)


class Brightness(Reward):
    """Mean brightness in [0, 1] (tests)."""

    name = "brightness"

    def score(self, batch):
        v = [sum(img.convert("L").getdata()) / (255.0 * img.width * img.height) for img in batch.images]
        return RewardOutput(scores=torch.tensor(v), details=[{} for _ in v])


def _img(v):
    return Image.new("RGB", (4, 4), (v, v, v))


def test_reflection_parts_known_answers():
    assert reflection_parts(GOOD)["parts"] == 4
    no_analysis = GOOD.split("\n", 1)[1]
    assert reflection_parts(no_analysis)["parts"] == 3
    swapped = GOOD.replace("Step-by-Step Modification Guidance", "TMP").replace(
        "Detailed Explanation of Required Improvements", "Step-by-Step Modification Guidance"
    )
    swapped = swapped.replace("TMP", "Detailed Explanation of Required Improvements")
    info = reflection_parts(swapped)
    assert not info["in_order"] and info["parts"] == 1
    assert reflection_parts("**detailed explanation of required improvements**: x")["sections"][0] is False


def test_reflection_format_scores():
    r = build_reward({"name": "reflection_format", "args": {"min_chars": 50, "max_chars": 2000}})
    b = RewardBatch(prompts=["p"] * 3, images=[_img(0)] * 3, think_2=[GOOD, "too short", GOOD * 10])
    out = r(b)
    assert out.scores.tolist() == [1.0, 0.0, 0.0]
    assert out.details[2]["length_ok"] is False
    assert torch.isnan(r(RewardBatch(prompts=["p"], images=[_img(0)])).scores).all()


def test_improvement_and_no_regression():
    b = RewardBatch(
        prompts=["a", "b", "c"],
        images=[_img(255), _img(0), _img(255)],
        images_1=[_img(0), _img(255), _img(255)],
    )
    imp = ImprovementReward(base=Brightness())(b)
    assert imp.scores.tolist() == pytest.approx([1.0, -1.0, 0.0])
    nr = NoRegressionReward(base=Brightness(), threshold=0.99)(b)
    assert math.isnan(nr.scores[0])  # image_1 was not correct: not applicable
    assert nr.scores[1:].tolist() == pytest.approx([-1.0, 0.0])
    assert torch.isnan(
        ImprovementReward(base=Brightness())(RewardBatch(prompts=["a"], images=[_img(1)])).scores
    ).all()


def test_improvement_builds_base_from_registry():
    r = build_reward(
        {"name": "improvement", "args": {"base": "reflection_format", "base_args": {"min_chars": 1}}}
    )
    assert r.base.name == "reflection_format" and r.base.min_chars == 1
