"""GenEval's rules over detections, as pure functions that follow its evaluator (`evaluate_images.py`) step by step.

Metadata follows GenEval's schema: {"tag", "include": [{"class", "count", "color"?, "position"?: [relation,
index]}], "exclude"?: [{"class", "count"}]}. Detections of a class count when their confidence is strictly above
the threshold (0.3; 0.9 for counting prompts), best first, at most 16. An include clause takes the top-`count`
detections as its objects: it fails with fewer than `count`; with a colour, all of those objects must be
classified as that colour (the lower-ranked detections are never looked at); with a position, each of its
objects must stand in the relation to every object of the referenced (earlier, matched) clause, centre offsets
shrunk by margin * (sum of the two box sizes). An exclude clause fails when `count` or more detections of the
class exist (colour is not looked at). Strict = every clause holds (GenEval's verdict); partial = the fraction of
clauses that hold (our partial credit for RL).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from irg_rl.data.geneval_metadata import check_metadata, relative_position

__all__ = ["Detection", "GenEvalRules", "relative_position", "evaluate", "check_metadata"]


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


def _candidates(dets: list[Detection], cls: str, thr: float, max_objects: int) -> list[Detection]:
    """GenEval's per-class list: confidence strictly above `thr`, best first (ties in reverse detector order), at
    most `max_objects` (its NMS threshold is 1, i.e. no suppression)."""
    rows = [d for d in dets if d.label == cls]
    if not rows:
        return []
    # GenEval's ordering exactly (np.argsort reversed): ties between equal scores come out in reverse input order
    order = np.argsort(np.array([d.score for d in rows]))[::-1]
    return [rows[i] for i in order if rows[i].score > thr][:max_objects]


ColorFn = Callable[[list[Detection]], list[str]]


def _read_colors(found: list[Detection]) -> list[str]:
    out = []
    for d in found:
        if d.color is None:
            raise ValueError(f"a '{d.label}' detection has no colour and no colour classifier was given")
        out.append(d.color)
    return out


def evaluate(
    meta: dict, dets: list[Detection], rules: GenEvalRules | None = None, colors_of: ColorFn | None = None
) -> dict[str, Any]:
    """Apply GenEval's rules, in the order of its evaluator. Returns {"strict": 0/1, "partial": [0, 1],
    "clauses": [{"clause", "ok", "why"}]}.

    Per include clause: its objects are the top-`count` detections of the class (above the threshold); fewer than
    `count` fails; with a colour, `colors_of(objects)` (default: each detection's own `color`) must give the asked
    colour for all of them; with a position, every object must stand in the relation to every object of the
    referenced (earlier) clause, which must itself have matched. Per exclude clause: `count` or more detections of the class
    (any colour) fail. Only the colours of clauses that ask for one are classified.
    """
    rules = rules or GenEvalRules()
    check_metadata(meta)
    colors_of = colors_of or _read_colors
    thr = rules.counting_threshold if meta.get("tag") == "counting" else rules.threshold
    groups: list[list[Detection] | None] = []
    results = []
    for c in meta["include"]:
        cls, count, color = c["class"], c.get("count", 1), c.get("color")
        found = _candidates(dets, cls, thr, rules.max_objects)[:count]
        ok, why = True, f"found {len(found)} {cls}"
        if len(found) < count:
            ok, why = False, f"expected {cls}>={count}, found {len(found)}"
        else:
            if color is not None:
                colors = colors_of(found)
                if colors.count(color) < count:
                    ok, why = (
                        False,
                        f"expected {color} {cls}>={count}, found {colors.count(color)} {color}; {colors}",
                    )
            if ok and c.get("position"):
                rel, j = c["position"]
                target = groups[j]
                if target is None:
                    ok, why = False, f"no target for {cls} to be {rel}"
                else:
                    for a in found:
                        for b in target:
                            seen = relative_position(a.box, b.box, rules.position_margin)
                            if rel not in seen:
                                ok, why = (
                                    False,
                                    f"expected {cls} {rel} target, found {sorted(seen) or 'overlap'}",
                                )
                                break
                        if not ok:
                            break
        groups.append(found if ok else None)
        results.append({"clause": c, "ok": ok, "why": why})
    for c in meta.get("exclude") or []:
        cls, count = c["class"], c.get("count", 1)
        n = len(_candidates(dets, cls, thr, rules.max_objects))
        ok = n < count
        results.append({"clause": c, "ok": ok, "why": f"expected {cls}<{count}, found {n}"})
    n_ok = sum(r["ok"] for r in results)
    return {
        "strict": float(n_ok == len(results)),
        "partial": n_ok / len(results) if results else math.nan,
        "clauses": results,
    }
