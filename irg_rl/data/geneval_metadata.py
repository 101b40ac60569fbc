"""GenEval's metadata schema (`include` / `exclude` clauses) and relative-position rule: data facts shared by the
prompt loaders, the ShapesWorld scorer and the `geneval` reward."""

from __future__ import annotations

import numpy as np

__all__ = ["RELATIONS", "Box", "check_metadata", "relative_position"]

Box = tuple[float, float, float, float]

# the relations a GenEval position clause may name
RELATIONS = ("left of", "right of", "above", "below")


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
                if not (isinstance(pos[1], int) and 0 <= pos[1] < i):
                    raise ValueError(
                        f"{w}.position: clause index {pos[1]!r} must name an earlier include clause (GenEval's "
                        f"evaluator reads the matched objects of clauses before this one; reorder the clauses)"
                    )


def relative_position(box_a: Box, box_b: Box, margin: float = 0.1) -> set[str]:
    """Relations of box A to box B ((x0, y0, x1, y1) each): a subset of {left of, right of, above, below}.

    Each axis offset of the centres shrinks towards 0 by `margin` times the sum of the two box sizes on that
    axis; a direction holds when its shrunk component exceeds half the length of the raw offset. Boxes whose
    shrunk offset vanishes relate in no direction.
    """
    ca = np.array([(box_a[0] + box_a[2]) / 2, (box_a[1] + box_a[3]) / 2], dtype=np.float64)
    cb = np.array([(box_b[0] + box_b[2]) / 2, (box_b[1] + box_b[3]) / 2], dtype=np.float64)
    size = np.array(
        [
            abs(box_a[2] - box_a[0]) + abs(box_b[2] - box_b[0]),
            abs(box_a[3] - box_a[1]) + abs(box_b[3] - box_b[1]),
        ]
    )
    offset = ca - cb
    shrunk = np.sign(offset) * np.maximum(np.abs(offset) - margin * size, 0.0)
    if np.all(np.abs(shrunk) < 1e-3):
        return set()
    dx, dy = shrunk / np.linalg.norm(offset)
    rels = set()
    if dx < -0.5:
        rels.add("left of")
    if dx > 0.5:
        rels.add("right of")
    if dy < -0.5:
        rels.add("above")
    if dy > 0.5:
        rels.add("below")
    return rels
