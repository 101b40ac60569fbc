"""GenEval's relative-position rule, shared by the ShapesWorld scorer and the `geneval` reward."""

from __future__ import annotations

import numpy as np

Box = tuple[float, float, float, float]


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
