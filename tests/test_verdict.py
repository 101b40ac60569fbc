"""The reflection's verdict: parser on hand-written reflections, confusion matrix, agreement reward (by hand)."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from irg_rl.inference.verdict import parse_verdict, verdict_agreement, verdict_confusion
from irg_rl.tasks.shapes.text import KEEP_SENTENCES, KEEP_VERDICT, REVISE_SENTENCES, REVISE_VERDICT
from rewards import RewardBatch, build_reward

KEEP, REVISE = KEEP_VERDICT.pattern, REVISE_VERDICT.pattern


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "<think> I see one red circle. The first image already matches the prompt, so I keep it. </think>",
            "keep",
        ),
        ("<think> I see one red circle. This is already correct; I keep the image as it is.", "keep"),
        (
            "<think> I see two circles. The image is wrong. It needs a square, but I see zero. </think>",
            "revise",
        ),
        ("<think> I see nothing. This image has mistakes. </think>", "revise"),
        ("<think> I SEE ONE BLUE SQUARE. THE FIRST IMAGE DOES NOT MATCH THE PROMPT.", "revise"),
        # malformed: no verdict at all, a truncated reflection, an empty one, and both verdicts at once
        ("<think> I see one green square. It needs a circle, but I see zero.", "none"),
        ("<think> I see one", "none"),
        ("", "none"),
        ("<think> The image is wrong. The first image already matches the prompt. </think>", "none"),
    ],
)
def test_parser_on_hand_written_reflections(text, expected):
    assert parse_verdict(text, KEEP, REVISE) == expected


def test_every_sentence_the_writer_uses_is_read_back():
    assert all(parse_verdict(s, KEEP, REVISE) == "keep" for s in KEEP_SENTENCES)
    assert all(parse_verdict(s, KEEP, REVISE) == "revise" for s in REVISE_SENTENCES)


def test_without_a_revise_pattern_anything_not_keep_is_revise():
    assert parse_verdict("<think> garbled", KEEP) == "revise"
    assert parse_verdict("already correct", KEEP) == "keep"
    with pytest.raises(ValueError, match="keep_pattern is empty"):
        parse_verdict("x", "")


def test_confusion_by_hand():
    verdicts = ["keep", "keep", "revise", "none", "keep", "revise", "revise", None, "keep"]
    right = [True, True, True, True, False, False, False, True, None]
    c = verdict_confusion(verdicts, right)
    # pairs: the last two are skipped (verdict None, judgement None) -> 7 pairs, 4 right, 3 wrong
    assert (c["n"], c["right"], c["wrong"]) == (7, 4, 3)
    assert (c["keep_right"], c["revise_right"], c["keep_wrong"], c["revise_wrong"]) == (2, 2, 1, 2)
    assert c["none"] == 1  # counted on its own and as revise
    assert c["keep_given_right"] == pytest.approx(0.5) and c["revise_given_right"] == pytest.approx(0.5)
    assert c["revise_given_wrong"] == pytest.approx(2 / 3) and c["keep_given_wrong"] == pytest.approx(1 / 3)
    assert c["accuracy"] == pytest.approx(4 / 7)
    assert c["keep_share"] == pytest.approx(3 / 7) and c["none_share"] == pytest.approx(1 / 7)
    empty = verdict_confusion(["keep"], [True])
    assert empty["revise_given_wrong"] is None and empty["keep_given_right"] == 1.0


def test_agreement_by_hand():
    r1 = torch.tensor([1.0, 0.4, 1.0, 0.2, 1.0, math.nan, 0.9])
    verdicts = ["keep", "keep", "revise", "revise", "none", "keep", None]
    # right = r1 >= 0.9: T F T F T ? T -> keep/T 1, keep/F 0, revise/T 0, revise/F 1, none 0, NaN r1, no verdict
    got = verdict_agreement(verdicts, r1, threshold=0.9)
    assert torch.equal(got[:5], torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0]))
    assert math.isnan(got[5]) and math.isnan(got[6])
    with pytest.raises(ValueError, match="unknown verdict 'maybe'"):
        verdict_agreement(["maybe"], torch.tensor([1.0]), 1.0)
    # a caught mistake (revise on a wrong image_1) weighs 3; keeps of right images stay 1; errors stay 0
    weighted = verdict_agreement(verdicts, r1, threshold=0.9, wrong_weight=3.0)
    assert torch.equal(weighted[:5], torch.tensor([1.0, 0.0, 0.0, 3.0, 0.0]))


def test_verdict_reward_plugin_scores_agreement_with_the_shapes_scorer():
    import numpy as np

    from irg_rl.tasks.shapes import ShapesWorldConfig, layout_scene, render_scene

    world = ShapesWorldConfig()
    meta = {
        "tag": "single_object",
        "include": [{"class": "circle", "count": 1}],
        "prompt": "a photo of a circle",
    }
    good = Image.fromarray(render_scene(layout_scene(meta, world, np.random.default_rng(0)), world))
    blank = Image.fromarray(np.full((32, 32, 3), 255, dtype=np.uint8))
    reward = build_reward({"name": "verdict", "args": {"keep_pattern": KEEP, "revise_pattern": REVISE}})
    batch = RewardBatch(
        prompts=[meta["prompt"]] * 4,
        images=[good] * 4,
        images_1=[good, good, blank, blank],
        think_2=[KEEP_SENTENCES[0], REVISE_SENTENCES[0], KEEP_SENTENCES[1], REVISE_SENTENCES[1]],
        metadata=[meta] * 4,
    )
    out = reward(batch)
    assert out.scores.tolist() == [1.0, 0.0, 0.0, 1.0]
    assert [d["verdict"] for d in out.details] == ["keep", "revise", "keep", "revise"]
    assert [d["image_1_right"] for d in out.details] == [True, True, False, False]


def test_evaluation_summary_reports_the_verdict_per_run_and_per_tag():
    from irg_rl.eval.metrics import per_category, summarize

    def rec(cat, s1, s2, verdict, stopped):
        turns = {
            "think": {"strict": s1, "partial": s1, "score": s1},
            "irg": {"strict": s2, "partial": s2, "score": s2},
        }
        return {"category": cat, "turns": turns, "verdict": verdict, "stopped": stopped}

    records = [
        rec("colors", 1.0, 1.0, "keep", True),
        rec("colors", 0.0, 1.0, "revise", False),
        rec("position", 1.0, 0.0, "revise", False),
        rec("position", 0.0, 0.0, "keep", True),
    ]
    v = summarize(records)["verdict"]
    assert (v["keep_given_right"], v["revise_given_wrong"], v["stopped_share"]) == (0.5, 0.5, 0.5)
    cats = per_category(records)
    assert cats["colors"]["verdict"]["accuracy"] == 1.0 and cats["position"]["verdict"]["accuracy"] == 0.0
    assert "verdict" not in summarize([{**r, "verdict": None} for r in records])
