"""Where a ShapesWorld reflection goes wrong: reading image_1, checking the prompt, or the verdict itself.

A reflection (think_2) opens with what it sees in image_1 ("I see one red circle."), with the checklist style then
marks each requirement of the prompt ("Check: a red circle, yes; nothing else, yes."), then gives its verdict. The
exact scorer's reading of the same image_1 says what each part should have been. Per evaluated trajectory:

- description right: the model's "I see ..." text names the same objects as the scorer's description of image_1
  (the same multiset of count / colour / shape, in any order; relation sentences are not compared);
- checklist right: every item of the model's checklist equals the checklist written from the scorer's clauses;
- verdict follows the checklist: keep exactly when every item the model wrote says yes;
- verdict right: keep given image_1 right, revise given wrong (no verdict counts as revise);
- description is the plan / image_1 is the plan (where think_1 holds a plan sentence): the objects the reflection
  names, or the objects actually drawn, are exactly those think_1 planned. A misreading that equals the plan is the
  model repeating its own intention instead of reading what it drew;
- how a wrong image_1 deviates from its plan (`plan_deviation`: missing object, extra copy of a planned object,
  colour or shape swap, ...), with the reading and the verdict right per kind.

Rates are reported for all trajectories and split by image_1 right / wrong, and the verdict's accuracy is split
by whether the description was right, which separates perception errors from reasoning errors.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

from irg_rl.tasks.shapes.text import (
    check_items,
    checklist_items,
    described_objects,
    planned_objects,
    reflection_description,
)


def expected_items(details: dict, meta: dict) -> list[str]:
    """The checklist the scorer's reading of image_1 (`details`: ShapesScore.as_dict()) gives, as items."""
    return check_items(SimpleNamespace(clauses=details["clauses"]), meta)


def _rate(hits: int, n: int) -> float | None:
    return None if n == 0 else hits / n


DEVIATIONS = (
    "as_planned",
    "missing_object",
    "extra_copy",
    "extra_object",
    "colour_swap",
    "shape_swap",
    "class_swap",
    "mixed",
)


def plan_deviation(drawn: Counter, plan: Counter) -> str:
    """How the objects drawn differ from the objects planned (both {(colour, shape): count}), one of DEVIATIONS:
    nothing; planned objects missing only; extra objects only (copies of planned ones, or others); the same number
    of objects with colours swapped (shapes kept), shapes swapped (colours kept) or both; else mixed."""
    if drawn == plan:
        return "as_planned"
    extra, missing = drawn - plan, plan - drawn
    if not extra:
        return "missing_object"
    if not missing:
        return "extra_copy" if all(k in plan for k in extra) else "extra_object"
    if sum(drawn.values()) != sum(plan.values()):
        return "mixed"

    def by(i: int, objects: Counter) -> Counter:
        out: Counter = Counter()
        for key, n in objects.items():
            out[key[i]] += n
        return out

    if by(1, drawn) == by(1, plan):
        return "colour_swap"
    if by(0, drawn) == by(0, plan):
        return "shape_swap"
    return "class_swap"


def read_trajectory(sample: dict, details: dict, meta: dict) -> dict:
    """One trajectory's reading: image_1 right, verdict, and whether each part of the reflection is right."""
    think_2 = sample.get("think_2") or ""
    right = details["strict"] >= 1.0
    verdict = sample.get("verdict") or "revise"
    items = checklist_items(think_2)
    want = expected_items(details, meta)
    seen = described_objects(reflection_description(think_2))
    drawn = described_objects(details["description"])
    row = {
        "image_1_right": right,
        "description_right": seen is not None and seen == drawn,
        "verdict_right": (verdict == "keep") == right,
        "checklist": items is not None,
    }
    plan = planned_objects(sample.get("think_1") or "")
    if plan is not None:
        row["description_is_plan"] = seen == plan
        row["image_1_is_plan"] = drawn == plan
        if not right and drawn is not None:
            row["deviation"] = plan_deviation(drawn, plan)
    if items is not None:
        row["checklist_right"] = items == want
        all_yes = bool(items) and all(i.endswith(", yes") for i in items)
        row["verdict_follows_checklist"] = (verdict == "keep") == all_yes
    return row


def summarise(rows: list[dict]) -> dict:
    """Rates over `rows` of `read_trajectory`, overall and by image_1 right / wrong."""

    def rates(sub: list[dict]) -> dict:
        out = {"n": len(sub)}
        for key in (
            "description_right",
            "verdict_right",
            "checklist_right",
            "verdict_follows_checklist",
            "description_is_plan",
            "image_1_is_plan",
        ):
            has = [r for r in sub if key in r]
            out[key] = _rate(sum(r[key] for r in has), len(has))
        return out

    result = {
        "all": rates(rows),
        "image_1_right": rates([r for r in rows if r["image_1_right"]]),
        "image_1_wrong": rates([r for r in rows if not r["image_1_right"]]),
    }
    for flag in (True, False):
        sub = [r for r in rows if r["description_right"] == flag]
        key = "description_right" if flag else "description_wrong"
        result[f"verdict_right_given_{key}"] = _rate(sum(r["verdict_right"] for r in sub), len(sub))
    # of the misread first images, the share whose reading is think_1's plan
    misread = [r for r in rows if not r["description_right"] and "description_is_plan" in r]
    result["plan_given_description_wrong"] = _rate(
        sum(r["description_is_plan"] for r in misread), len(misread)
    )
    # wrong first images by how they deviate from the plan: share, reading right, verdict right (revise)
    deviated = [r for r in rows if "deviation" in r]
    result["image_1_wrong_by_deviation"] = {
        kind: {
            "share": len(sub) / len(deviated),
            "description_right": _rate(sum(r["description_right"] for r in sub), len(sub)),
            "verdict_right": _rate(sum(r["verdict_right"] for r in sub), len(sub)),
        }
        for kind in DEVIATIONS
        if (sub := [r for r in deviated if r["deviation"] == kind])
    }
    return result


def read_eval(eval_dir: str | Path, prompts_file: str | Path) -> dict:
    """Read every trajectory of a `scripts/eval.py` output folder; `prompts_file`: its GenEval metadata lines."""
    eval_dir = Path(eval_dir)
    metas = {}
    for n, line in enumerate(Path(prompts_file).read_text().splitlines(), start=1):
        if line.strip():
            try:
                meta = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{prompts_file}:{n}: not a JSON line ({e})") from e
            metas[meta["prompt"]] = meta
    results = json.loads((eval_dir / "results.json").read_text())
    rows = []
    for sample in results["samples"]:
        if "think_2" not in sample:
            continue
        if sample["prompt"] not in metas:
            raise ValueError(f"{prompts_file}: no line for the evaluated prompt {sample['prompt']!r}")
        scores = json.loads((eval_dir / sample["folder"] / "scores.json").read_text())
        rows.append(read_trajectory(sample, scores["details"]["think"], metas[sample["prompt"]]))
    if not rows:
        raise ValueError(f"{eval_dir}: no two-round trajectories (think_2) in results.json")
    return summarise(rows)
