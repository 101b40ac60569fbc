"""GenEval's rules over detections (DESIGN.md section 6), as pure functions.

Metadata follows GenEval's schema: {"tag", "include": [{"class", "count", "color"?, "position"?: [relation,
index]}], "exclude"?: [{"class", "count", "color"?}]}. An include clause holds when at least `count` detections of
the class pass the confidence threshold (0.3; 0.9 for counting prompts), at least `count` of them have the asked
colour, and (for `position`) each of the clause's top-`count` objects stands in `relation` to every object of
the referenced clause, with centre offsets shrunk by margin * (sum of the two box sizes). An exclude clause holds
when fewer than `count` such detections exist (counting prompts exclude N+1). Strict = every clause holds;
partial = fraction of clauses that hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from irg_rl.tasks.geneval_position import relative_position

__all__ = ["Detection", "GenEvalRules", "relative_position", "evaluate", "check_metadata"]

RELATIONS = ("left of", "right of", "above", "below")


@dataclass
class Detection:
    """One detected object."""

    # class name as asked of the detector (GenEval class names, e.g. "dog")
    label: str
    # detector confidence in [0, 1]
    score: float
    # (x0, y0, x1, y1) in pixels, y growing downwards
    box: tuple[float, float, float, float]
    # colour name if already known (from the detector server or a colour classifier), else None
    color: str | None = None
    # optional boolean mask [H, W] used for colour classification
    mask: np.ndarray | None = field(default=None, repr=False)


@dataclass
class GenEvalRules:
    """Thresholds of the rule engine (GenEval's defaults)."""

    # detections below this confidence are ignored
    threshold: float = 0.3
    # confidence threshold used instead for prompts tagged "counting"
    counting_threshold: float = 0.9
    # position margin: offsets shrink by this times the summed box sizes before the relation is read
    position_margin: float = 0.1
    # at most this many detections per class are considered
    max_objects: int = 16


def check_metadata(meta: dict, where: str = "metadata") -> None:
    """Raise ValueError naming the clause and field when metadata does not follow GenEval's schema."""
    include = meta.get("include")
    if not isinstance(include, list) or not include:
        raise ValueError(f"{where}: 'include' must be a non-empty list of clauses")
    for key in ("include", "exclude"):
        for i, c in enumerate(meta.get(key) or []):
            w = f"{where}.{key}[{i}]"
            if not isinstance(c, dict) or not isinstance(c.get("class"), str):
                raise ValueError(f"{w}: each clause needs a 'class' string")
            if not isinstance(c.get("count", 1), int) or c.get("count", 1) < 1:
                raise ValueError(f"{w}.count: must be a positive integer, got {c.get('count')!r}")
            pos = c.get("position")
            if pos is not None:
                if key == "exclude":
                    raise ValueError(f"{w}.position: exclude clauses cannot have a position")
                if not (isinstance(pos, list | tuple) and len(pos) == 2 and pos[0] in RELATIONS):
                    raise ValueError(
                        f"{w}.position: expected [relation, clause_index] with relation in {RELATIONS}"
                    )
                if not (isinstance(pos[1], int) and 0 <= pos[1] < len(include) and pos[1] != i):
                    raise ValueError(
                        f"{w}.position: clause index {pos[1]!r} must name another include clause"
                    )


def _candidates(dets: list[Detection], cls: str, thr: float, max_objects: int) -> list[Detection]:
    found = sorted((d for d in dets if d.label == cls and d.score >= thr), key=lambda d: -d.score)
    return found[:max_objects]


def _with_color(found: list[Detection], color: str | None, where: str) -> list[Detection]:
    if color is None:
        return found
    for d in found:
        if d.color is None:
            raise ValueError(f"{where}: asks for colour '{color}' but a '{d.label}' detection has no colour")
    return [d for d in found if d.color == color]


def evaluate(meta: dict, dets: list[Detection], rules: GenEvalRules | None = None) -> dict[str, Any]:
    """Apply GenEval's rules. Returns {"strict": 0/1, "partial": [0, 1], "clauses": [{"clause", "ok", "why"}]}."""
    rules = rules or GenEvalRules()
    check_metadata(meta)
    thr = rules.counting_threshold if meta.get("tag") == "counting" else rules.threshold
    groups: list[list[Detection] | None] = []
    results = []
    # pass 1: counts and colours of every include clause (their top-`count` objects form the clause's group)
    for i, c in enumerate(meta["include"]):
        cls, count, color = c["class"], c.get("count", 1), c.get("color")
        found = _candidates(dets, cls, thr, rules.max_objects)
        matching = _with_color(found, color, f"include[{i}]")
        ok, why = True, f"found {len(found)} {cls}"
        if len(found) < count:
            ok, why = False, f"expected {count} {cls}, found {len(found)}"
        elif len(matching) < count:
            seen = [d.color for d in found]
            ok, why = False, f"expected {count} {color} {cls}, found colours {seen}"
        groups.append(matching[:count] if ok else None)
        results.append({"clause": c, "ok": ok, "why": why})
    # pass 2: relative positions against the referenced clause's group
    for i, c in enumerate(meta["include"]):
        if not c.get("position") or not results[i]["ok"]:
            continue
        rel, j = c["position"]
        other = meta["include"][j]["class"]
        if groups[j] is None:
            results[i].update(ok=False, why=f"no {other} to be {rel}")
            continue
        for a in groups[i]:
            for b in groups[j]:
                seen = relative_position(a.box, b.box, rules.position_margin)
                if rel not in seen:
                    results[i].update(
                        ok=False, why=f"expected {c['class']} {rel} {other}, saw {sorted(seen) or 'overlap'}"
                    )
    for i, c in enumerate(meta.get("exclude") or []):
        cls, count = c["class"], c.get("count", 1)
        found = _with_color(_candidates(dets, cls, thr, rules.max_objects), c.get("color"), f"exclude[{i}]")
        ok = len(found) < count
        results.append({"clause": c, "ok": ok, "why": f"expected < {count} {cls}, found {len(found)}"})
    n_ok = sum(r["ok"] for r in results)
    return {
        "strict": float(n_ok == len(results)),
        "partial": n_ok / len(results) if results else math.nan,
        "clauses": results,
    }
