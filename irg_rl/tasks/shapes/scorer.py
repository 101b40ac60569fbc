"""Exact GenEval-rule scoring of ShapesWorld images, with per-clause partial credit and a text description.

Rules follow GenEval's evaluator: an include asks for at least `count` objects of its class (counting prompts add
an exclude at count + 1, making the count exact), `color` asks that `count` of them have that colour, `position`
relates every chosen object to every chosen object of the referenced include with GenEval's margin rule, and the
referenced include must itself be matched. Where GenEval ranks detections by confidence, objects of the asked
colour are chosen first. `partial` is the mean clause credit (Flow-GRPO-style partial credit). With
`forbid_extra_objects` (the ShapesWorld default) one more clause fails images that draw objects nobody asked for.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from irg_rl.tasks.shapes.detect import Detection, detect_objects
from irg_rl.tasks.shapes.layout import relations_between
from irg_rl.tasks.shapes.prompts import validate_meta
from irg_rl.tasks.shapes.world import ShapesWorldConfig, noun_phrase, number_word, plural


@dataclass
class ShapesScore:
    """Result of scoring one image against one prompt."""

    # 1.0 when every clause holds (GenEval's "correct"), else 0.0
    strict: float
    # mean clause credit in [0, 1]
    partial: float
    # one dict per clause: kind, include, text, credit, ok (+ kind-specific fields)
    clauses: list[dict] = field(default_factory=list)
    # short text of what was seen (used to write reflections)
    description: str = ""
    # every detected object
    objects: list[Detection] = field(default_factory=list)
    # per include: indices into `objects` chosen to satisfy it
    chosen: list[list[int]] = field(default_factory=list)

    def failed(self) -> list[dict]:
        return [c for c in self.clauses if not c["ok"]]

    def as_dict(self) -> dict:
        """JSON-friendly form (for reward details and logs)."""
        return {
            "strict": self.strict,
            "partial": self.partial,
            "clauses": self.clauses,
            "description": self.description,
            "objects": [o.as_dict() for o in self.objects],
        }


def _phrase(d: Detection) -> str:
    return f"the {d.color} {d.shape}"


def describe(objects: list[Detection], pairs: list[tuple[Detection, Detection]], margin: float = 0.1) -> str:
    """'I see 2 red circles and 1 blue square. The blue square is left of the red circle.'"""
    if not objects:
        return "I see no shapes."
    counts = Counter((o.color, o.shape) for o in objects)
    items = [f"{number_word(n)} {color} {plural(shape, n)}" for (color, shape), n in counts.items()]
    text = "I see " + (items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]) + "."
    for a, b in pairs:
        rels = sorted(relations_between(a.box, b.box, margin))
        where = " and ".join(rels) if rels else "not clearly apart from"
        text += f" {_phrase(a).capitalize()} is {where} {_phrase(b)}."
    return text


def _extra_objects_clause(objects: list[Detection], chosen: list[list[int]], meta: dict) -> dict:
    """Objects that no include asked for; credit 1 / (1 + extras) so partial credit still moves smoothly."""
    used = {k for pick in chosen for k in pick}
    extras = [o for k, o in enumerate(objects) if k not in used]
    # classes with an exclude clause (counting prompts) already judge their own surplus
    excluded = {req["class"] for req in meta.get("exclude") or []}
    extras_other = [o for o in extras if o.shape not in excluded]
    n = len(extras_other)
    return {
        "kind": "extra",
        "include": None,
        "found": n,
        "credit": 1.0 / (1.0 + n),
        "ok": n == 0,
        "text": "nothing else may be drawn, "
        + (f"{number_word(n)} extra found" if n else "nothing extra found"),
        "extra": [f"{o.color} {o.shape}" for o in extras_other],
    }


def score_detections(objects: list[Detection], meta: dict, cfg: ShapesWorldConfig) -> ShapesScore:
    """Apply GenEval's rules to a list of detections."""
    clauses: list[dict] = []
    chosen: list[list[int]] = []
    matched: list[bool] = []
    pairs: list[tuple[Detection, Detection]] = []
    for i, req in enumerate(meta["include"]):
        cls, need = req["class"], int(req["count"])
        cands = [k for k, o in enumerate(objects) if o.shape == cls]
        ok_all = len(cands) >= need
        clauses.append(
            {
                "kind": "count",
                "include": i,
                "class": cls,
                "need": need,
                "found": len(cands),
                "credit": min(len(cands), need) / need,
                "ok": ok_all,
                "text": f"{noun_phrase(cls, need)} needed, {number_word(len(cands))} found",
            }
        )
        if "color" in req:
            color = req["color"]
            right = [k for k in cands if objects[k].color == color]
            cands = right + [k for k in cands if k not in right]
            ok = len(right) >= need
            ok_all &= ok
            clauses.append(
                {
                    "kind": "color",
                    "include": i,
                    "class": cls,
                    "color": color,
                    "need": need,
                    "found": len(right),
                    "credit": min(len(right), need) / need,
                    "ok": ok,
                    "text": f"{noun_phrase(cls, need, color)} needed, {number_word(len(right))} found",
                }
            )
        pick = cands[:need]
        if "position" in req:
            rel, j = req["position"][0], int(req["position"][1])
            targets = chosen[j]
            tests = [
                rel in relations_between(objects[a].box, objects[b].box, cfg.position_margin)
                for a in pick
                for b in targets
            ]
            credit = float(np.mean(tests)) if tests and len(pick) == need else 0.0
            ok = bool(matched[j] and tests and all(tests) and len(pick) == need)
            ok_all &= ok
            pairs += [(objects[a], objects[b]) for a in pick for b in targets]
            ref = meta["include"][j]
            clauses.append(
                {
                    "kind": "position",
                    "include": i,
                    "class": cls,
                    "relation": rel,
                    "target": j,
                    "credit": credit,
                    "ok": ok,
                    "text": f"the {cls} must be {rel} the {ref['class']}",
                }
            )
        chosen.append(pick)
        matched.append(bool(ok_all))
    for i, req in enumerate(meta.get("exclude", [])):
        cls, limit = req["class"], int(req["count"])
        n = sum(o.shape == cls for o in objects)
        clauses.append(
            {
                "kind": "exclude",
                "include": None,
                "exclude": i,
                "class": cls,
                "limit": limit,
                "found": n,
                "credit": float(n < limit),
                "ok": n < limit,
                "text": f"fewer than {number_word(limit)} {plural(cls, 2)} allowed, {number_word(n)} found",
            }
        )
    if cfg.forbid_extra_objects:
        clauses.append(_extra_objects_clause(objects, chosen, meta))
    strict = float(all(c["ok"] for c in clauses))
    partial = float(np.mean([c["credit"] for c in clauses]))
    return ShapesScore(
        strict, partial, clauses, describe(objects, pairs, cfg.position_margin), objects, chosen
    )


def score_image(image: np.ndarray, meta: dict, cfg: ShapesWorldConfig) -> ShapesScore:
    """Score an RGB uint8 image [H, W, 3] (any source) against GenEval metadata of this world."""
    validate_meta(meta, cfg)
    return score_detections(detect_objects(np.asarray(image), cfg), meta, cfg)
