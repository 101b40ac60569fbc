"""OCR reward with the real rapidocr_onnxruntime weights on PIL-rendered text."""

import math

import pytest
from PIL import Image, ImageDraw, ImageFont

from rewards import RewardBatch, build_reward
from rewards.builtins.ocr import edit_distance, ocr_score, quoted_text

pytest.importorskip("rapidocr_onnxruntime")


def _render(text):
    img = Image.new("RGB", (320, 96), "white")
    try:
        font = ImageFont.load_default(size=40)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        font = ImageFont.load_default()
    ImageDraw.Draw(img).text((12, 24), text, fill="black", font=font)
    return img


def test_text_helpers():
    assert quoted_text('a sign that says "Open Late" on a wall') == "Open Late"
    assert quoted_text("a shop called “Bob’s” and 'Cafe'") == "Bob’s Cafe"
    assert quoted_text("the dog's ball") is None
    assert edit_distance("kitten", "sitting") == 3 and edit_distance("", "abc") == 3
    assert ocr_score("Open  late", "open late") == 1.0
    assert ocr_score("xyzxyzxyz", "ab") == 0.0


def test_right_text_scores_higher_than_wrong_text():
    r = build_reward("ocr")
    prompts = ['a poster with the word "GARDEN"', 'a poster with the word "GARDEN"', "a red circle"]
    b = RewardBatch(prompts=prompts, images=[_render("GARDEN"), _render("PLANET"), _render("GARDEN")])
    out = r(b)
    assert out.scores[0] > 0.8, out.details[0]
    assert out.scores[0] > out.scores[1] + 0.3
    assert math.isnan(out.scores[2]) and "no text" in out.details[2]["na"]
