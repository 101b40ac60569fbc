"""The reflection probe separates a wrong reading of image_1 from a wrong check and from a verdict that does not
follow its own checklist (hand-written reflections against the scorer's reading of a rendered scene)."""

import json

import pytest
from _shapes_scenes import RED_CIRCLE_BLUE_SQUARE, circle_and_square

from experiments.probes.reflection_reading import read_eval, read_trajectory, summarise
from irg_rl.tasks.shapes import ShapesWorldConfig, described_objects, render_scene, score_image
from irg_rl.tasks.shapes.text import planned_objects, reflection_description, write_think1

META = RED_CIRCLE_BLUE_SQUARE


def _details(square_color: str) -> dict:
    cfg = ShapesWorldConfig()
    return score_image(render_scene(circle_and_square(square_color, cfg), cfg), META, cfg).as_dict()


def _think(seen: str, check: str, verdict: str) -> str:
    return f"<think> {seen} {check} {verdict}\nDetailed Explanation of Required Improvements: x </think>"


def test_reflection_description_cuts_at_checklist_or_verdict():
    assert reflection_description(
        _think("I see one red circle.", "Check: a red circle, yes.", "The image is wrong.")
    ) == ("I see one red circle.")
    assert reflection_description(
        "<think> I see one red circle. This is already correct; I keep it. </think>"
    ) == ("I see one red circle.")


def test_read_trajectory_separates_reading_check_and_verdict():
    wrong = _details("green")
    assert wrong["description"] == "I see one red circle and one green square."
    right_check = "Check: a red circle, yes; a blue square, no; nothing else, yes."
    # everything right
    row = read_trajectory(
        {"think_2": _think(wrong["description"], right_check, "The image is wrong."), "verdict": "revise"},
        wrong,
        META,
    )
    assert row == {
        "image_1_right": False,
        "description_right": True,
        "verdict_right": True,
        "checklist": True,
        "checklist_right": True,
        "verdict_follows_checklist": True,
    }
    # misread colour, so the check says yes everywhere, and the verdict follows it: a perception error
    misread = read_trajectory(
        {
            "think_2": _think(
                "I see one red circle and one blue square.",
                "Check: a red circle, yes; a blue square, yes; nothing else, yes.",
                "This is already correct.",
            ),
            "verdict": "keep",
        },
        wrong,
        META,
    )
    assert (
        misread["description_right"],
        misread["checklist_right"],
        misread["verdict_follows_checklist"],
    ) == (
        False,
        False,
        True,
    )
    assert not misread["verdict_right"]
    # right reading and check, but a keep verdict against its own "no": a reasoning error
    ignored = read_trajectory(
        {"think_2": _think(wrong["description"], right_check, "This is already correct."), "verdict": "keep"},
        wrong,
        META,
    )
    assert (
        ignored["checklist_right"]
        and not ignored["verdict_follows_checklist"]
        and not ignored["verdict_right"]
    )
    # no verdict counts as revise; no checklist leaves its keys out
    bare = read_trajectory(
        {"think_2": "<think> I see one red circle and one blue square. </think>"}, _details("blue"), META
    )
    assert bare["image_1_right"] and bare["description_right"] and not bare["verdict_right"]
    assert "checklist_right" not in bare
    s = summarise([row, misread, ignored, bare])
    assert s["all"]["n"] == 4 and s["image_1_wrong"]["n"] == 3
    assert s["image_1_wrong"]["verdict_right"] == pytest.approx(1 / 3)
    assert s["all"]["checklist_right"] == pytest.approx(2 / 3)  # bare has no checklist
    assert s["verdict_right_given_description_right"] == pytest.approx(1 / 3)  # row yes, ignored and bare no
    assert s["verdict_right_given_description_wrong"] == 0.0


def test_read_eval_names_a_prompt_missing_from_the_prompts_file(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "scores.json").write_text(json.dumps({"details": {"think": _details("blue")}}))
    sample = {"prompt": META["prompt"], "think_2": "<think> x </think>", "folder": "s", "verdict": "keep"}
    (tmp_path / "results.json").write_text(json.dumps({"samples": [sample]}))
    (tmp_path / "prompts.jsonl").write_text(json.dumps({**META, "prompt": "another"}) + "\n")
    with pytest.raises(ValueError, match="no line for the evaluated prompt"):
        read_eval(tmp_path, tmp_path / "prompts.jsonl")
    (tmp_path / "prompts.jsonl").write_text(json.dumps(META) + "\n")
    assert read_eval(tmp_path, tmp_path / "prompts.jsonl")["all"]["verdict_right"] == 1.0


def test_described_objects_ignores_order_and_adds_repeats():
    a = described_objects(
        "I see one purple triangle and one yellow circle. The purple triangle is above the yellow circle."
    )
    assert a == described_objects("I see one yellow circle and one purple triangle.")
    assert a == {("purple", "triangle"): 1, ("yellow", "circle"): 1}
    assert described_objects("I see two purple squares and one purple square.") == {("purple", "square"): 3}
    assert described_objects("I see two red circles, one blue square and three green triangles.") == {
        ("red", "circle"): 2,
        ("blue", "square"): 1,
        ("green", "triangle"): 3,
    }
    assert described_objects("I see no shapes.") == {}
    assert described_objects("The image is wrong.") is None


def test_planned_objects_reads_every_plan_wording_of_write_think1():
    cfg = ShapesWorldConfig()
    plan = {("red", "circle"): 1, ("blue", "square"): 1}
    wordings = set()
    for seed in range(12):
        think_1 = write_think1(META, seed, circle_and_square("blue", cfg), cfg)
        wordings.add(next(w for w in ("I will place", "Plan:", "I will draw") if w in think_1))
        assert planned_objects(think_1) == plan, think_1
    assert wordings == {"I will place", "Plan:", "I will draw"}
    assert planned_objects(write_think1(META, 0)) is None  # no scene: no plan sentence


def test_a_misreading_that_repeats_the_plan_is_counted():
    think_1 = "<think> I need to draw x. Plan: a red circle at the top left and a blue square at the centre. </think>"
    drew_green = _details("green")  # the plan said blue
    repeats_plan = {
        "think_1": think_1,
        "think_2": _think("I see one red circle and one blue square.", "", "This is already correct."),
        "verdict": "keep",
    }
    row = read_trajectory(repeats_plan, drew_green, META)
    assert (row["description_right"], row["description_is_plan"], row["image_1_is_plan"]) == (
        False,
        True,
        False,
    )
    other = read_trajectory(
        {
            **repeats_plan,
            "think_2": _think("I see one red circle.", "", "The image is wrong."),
            "verdict": "revise",
        },
        drew_green,
        META,
    )
    assert (other["description_right"], other["description_is_plan"]) == (False, False)
    right = read_trajectory(
        {**repeats_plan, "think_2": _think(drew_green["description"], "", "x")}, drew_green, META
    )
    s = summarise([row, other, right, read_trajectory({"think_2": "<think> x </think>"}, drew_green, META)])
    assert s["plan_given_description_wrong"] == pytest.approx(1 / 2)  # the row without think_1 is not counted
    assert s["image_1_wrong"]["description_is_plan"] == pytest.approx(1 / 3)
    # all three planned rows deviate from the plan by a colour swap (blue square drawn green)
    dev = s["image_1_wrong_by_deviation"]
    assert list(dev) == ["colour_swap"]
    assert dev["colour_swap"]["share"] == 1.0
    assert dev["colour_swap"]["description_right"] == pytest.approx(1 / 3)
    assert dev["colour_swap"]["verdict_right"] == pytest.approx(1 / 3)  # `other` says revise


def test_plan_deviation_names_how_the_drawn_objects_differ_from_the_plan():
    from collections import Counter

    from experiments.probes.reflection_reading import plan_deviation

    plan = Counter({("red", "circle"): 1, ("blue", "square"): 1})
    cases = {
        "as_planned": Counter({("blue", "square"): 1, ("red", "circle"): 1}),
        "missing_object": Counter({("red", "circle"): 1}),
        "extra_copy": Counter({("red", "circle"): 1, ("blue", "square"): 2}),
        "extra_object": Counter({("red", "circle"): 1, ("blue", "square"): 1, ("green", "triangle"): 1}),
        "colour_swap": Counter({("red", "circle"): 1, ("green", "square"): 1}),
        "shape_swap": Counter({("red", "circle"): 1, ("blue", "triangle"): 1}),
        "class_swap": Counter({("red", "circle"): 1, ("green", "triangle"): 1}),
        "mixed": Counter({("green", "triangle"): 3}),
    }
    for kind, drawn in cases.items():
        assert plan_deviation(drawn, plan) == kind, kind
