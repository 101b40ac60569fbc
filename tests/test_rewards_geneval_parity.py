"""`geneval` against a transcription of GenEval's own evaluator (evaluate_images.py: per-class detection lists,
`evaluate`, `relative_position`) on thousands of random scenes: zero disagreements on the strict verdict."""

from __future__ import annotations

import random

import numpy as np

from rewards.builtins.geneval.rules import Detection, evaluate

THRESHOLD, COUNTING_THRESHOLD, MAX_OBJECTS, POSITION_THRESHOLD = 0.3, 0.9, 16, 0.1
CLASSES = ("car", "dog", "cup", "ball")
COLORS = ("red", "green", "blue", "yellow")


def _reference_objects(dets: list[Detection], classnames: list[str], tag: str) -> dict:
    """GenEval's `detected` dict: per class, (bbox [x0, y0, x1, y1, score], detection) above the threshold, best
    first, at most MAX_OBJECTS (NMS threshold 1: nothing suppressed); classes with none are absent."""
    thr = THRESHOLD if tag != "counting" else COUNTING_THRESHOLD
    detected = {}
    for name in classnames:
        rows = [d for d in dets if d.label == name]
        bbox = np.array([[*d.box, d.score] for d in rows]).reshape(-1, 5)
        ordering = np.argsort(bbox[:, 4])[::-1]
        ordering = ordering[bbox[ordering, 4] > thr]
        ordering = ordering[:MAX_OBJECTS].tolist()
        if ordering:
            detected[name] = [(bbox[i], rows[i]) for i in ordering]
    return detected


def _reference_relative_position(obj_a, obj_b) -> set:
    boxes = np.array([obj_a[0], obj_b[0]])[:, :4].reshape(2, 2, 2)
    center_a, center_b = boxes.mean(axis=-2)
    dim_a, dim_b = np.abs(np.diff(boxes, axis=-2))[..., 0, :]
    offset = center_a - center_b
    revised = np.maximum(np.abs(offset) - POSITION_THRESHOLD * (dim_a + dim_b), 0) * np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / np.linalg.norm(offset)
    rel = set()
    if dx < -0.5:
        rel.add("left of")
    if dx > 0.5:
        rel.add("right of")
    if dy < -0.5:
        rel.add("above")
    if dy > 0.5:
        rel.add("below")
    return rel


def _reference_evaluate(objects: dict, metadata: dict) -> bool:
    correct = True
    matched_groups = []
    for req in metadata.get("include", []):
        classname = req["class"]
        matched = True
        found_objects = objects.get(classname, [])[: req["count"]]
        if len(found_objects) < req["count"]:
            correct = matched = False
        else:
            if "color" in req:
                colors = [obj[1].color for obj in found_objects]  # the colour classifier's answer per crop
                if colors.count(req["color"]) < req["count"]:
                    correct = matched = False
            if "position" in req and matched:
                expected_rel, target_group = req["position"]
                if matched_groups[target_group] is None:
                    correct = matched = False
                else:
                    for obj in found_objects:
                        for target_obj in matched_groups[target_group]:
                            if expected_rel not in _reference_relative_position(obj, target_obj):
                                correct = matched = False
                                break
                        if not matched:
                            break
        matched_groups.append(found_objects if matched else None)
    for req in metadata.get("exclude", []):
        if len(objects.get(req["class"], [])) >= req["count"]:
            correct = False
    return correct


def _random_meta(rng: random.Random) -> dict:
    tag = rng.choice(["single_object", "two_object", "counting", "colors", "position", "color_attr"])
    a, b = rng.sample(CLASSES, 2)
    if tag == "single_object":
        return {"tag": tag, "include": [{"class": a, "count": 1}]}
    if tag == "two_object":
        return {"tag": tag, "include": [{"class": a, "count": 1}, {"class": b, "count": 1}]}
    if tag == "counting":
        n = rng.randint(2, 4)
        return {"tag": tag, "include": [{"class": a, "count": n}], "exclude": [{"class": a, "count": n + 1}]}
    if tag == "colors":
        return {"tag": tag, "include": [{"class": a, "count": 1, "color": rng.choice(COLORS)}]}
    if tag == "position":
        rel = rng.choice(["left of", "right of", "above", "below"])
        return {
            "tag": tag,
            "include": [{"class": b, "count": 1}, {"class": a, "count": 1, "position": [rel, 0]}],
        }
    ca, cb = rng.sample(COLORS, 2)
    return {
        "tag": tag,
        "include": [{"class": a, "count": 1, "color": ca}, {"class": b, "count": 1, "color": cb}],
    }


def _random_detections(rng: random.Random, meta: dict) -> list[Detection]:
    asked = [c["class"] for c in meta["include"]]
    dets = []
    for _ in range(rng.randint(0, 6)):
        label = rng.choice(asked) if rng.random() < 0.8 else rng.choice(CLASSES)
        # scores on the thresholds themselves too (GenEval keeps only scores strictly above them)
        score = rng.choice([0.3, 0.9, round(rng.random(), 3), round(rng.uniform(0.85, 1.0), 3)])
        x, y, w, h = rng.uniform(0, 60), rng.uniform(0, 60), rng.uniform(2, 30), rng.uniform(2, 30)
        color = next((c.get("color") for c in meta["include"] if c["class"] == label), None) or rng.choice(
            COLORS
        )
        if rng.random() < 0.4:
            color = rng.choice(COLORS)
        dets.append(Detection(label, score, (x, y, x + w, y + h), color))
    return dets


def test_zero_disagreements_with_genevals_evaluator_on_random_scenes():
    rng = random.Random(0)
    checked = {"color_second_wrong": 0, "pass": 0, "fail": 0}
    for _ in range(4000):
        meta = _random_meta(rng)
        dets = _random_detections(rng, meta)
        classes = sorted({c["class"] for k in ("include", "exclude") for c in meta.get(k, [])})
        ref = _reference_evaluate(_reference_objects(dets, classes, meta["tag"]), meta)
        got = evaluate(meta, dets)["strict"] == 1.0
        assert got == ref, (meta, dets)
        checked["pass" if ref else "fail"] += 1
        # colour prompts where the best detection has the asked colour and the second best does not
        for c in meta["include"]:
            if c.get("color"):
                ranked = sorted(
                    (d for d in dets if d.label == c["class"] and d.score > THRESHOLD), key=lambda d: -d.score
                )
                if len(ranked) >= 2 and ranked[0].color == c["color"] and ranked[1].color != c["color"]:
                    checked["color_second_wrong"] += 1
    # the random scenes exercise both verdicts and the colour case GenEval decides on the top-count detections
    assert checked["pass"] > 400 and checked["fail"] > 400 and checked["color_second_wrong"] > 50
