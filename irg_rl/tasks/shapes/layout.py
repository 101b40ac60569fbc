"""Place the objects a prompt asks for: grid cells (one object per cell) or free non-overlapping boxes.

Positions are checked with GenEval's own relation rule (`relations_between`), so a laid-out scene satisfies the
prompt by construction.
"""

from __future__ import annotations

import numpy as np

from irg_rl.data.geneval_metadata import relative_position
from irg_rl.tasks.shapes.prompts import validate_meta
from irg_rl.tasks.shapes.world import Scene, SceneObject, ShapesWorldConfig

Box = tuple[float, float, float, float]


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def relations_between(box_a: Box, box_b: Box, margin: float = 0.1) -> set[str]:
    """GenEval's relation rule: relations of box A to box B ((x0, y0, x1, y1) each)."""
    return relative_position(box_a, box_b, margin)


def required_objects(
    meta: dict, cfg: ShapesWorldConfig, rng: np.random.Generator
) -> list[tuple[str, str, int]]:
    """(shape, colour, include index) for every object the prompt asks for; unspecified colours are drawn."""
    out = []
    for i, req in enumerate(meta["include"]):
        for _ in range(req["count"]):
            color = req.get("color") or cfg.colors[int(rng.integers(len(cfg.colors)))]
            out.append((req["class"], color, i))
    return out


def cell_object(shape: str, color: str, cell: int, cfg: ShapesWorldConfig) -> SceneObject:
    """An object centred in grid cell `cell` (row-major index)."""
    row, col = divmod(cell, cfg.grid_size)
    c = cfg.cell_px
    return SceneObject(shape, color, (col + 0.5) * c, (row + 0.5) * c, float(cfg.object_px))


def cell_of(obj: SceneObject, cfg: ShapesWorldConfig) -> int:
    """Row-major index of the grid cell holding the object's centre."""
    g = cfg.grid_size
    col = min(max(int(obj.cx // cfg.cell_px), 0), g - 1)
    row = min(max(int(obj.cy // cfg.cell_px), 0), g - 1)
    return row * g + col


def _position_pair(meta: dict) -> tuple[int, int, str] | None:
    """(include index of the related object, index of its reference, relation) for a position prompt."""
    for i, req in enumerate(meta["include"]):
        if "position" in req:
            return i, int(req["position"][1]), req["position"][0]
    return None


def _grid_cells(meta: dict, objs, cfg: ShapesWorldConfig, rng: np.random.Generator) -> list[int]:
    n_cells = cfg.grid_size**2
    if len(objs) > n_cells:
        raise ValueError(
            f"prompt '{meta.get('prompt')}' needs {len(objs)} objects but the grid has {n_cells} cells"
        )
    cells = [-1] * len(objs)
    pos = _position_pair(meta)
    if pos is not None:
        a_inc, b_inc, rel = pos
        a = next(k for k, o in enumerate(objs) if o[2] == a_inc)
        b = next(k for k, o in enumerate(objs) if o[2] == b_inc)
        probe = [cell_object("square", "red", c, cfg).box() for c in range(n_cells)]
        pairs = [
            (ca, cb)
            for ca in range(n_cells)
            for cb in range(n_cells)
            if ca != cb and rel in relations_between(probe[ca], probe[cb], cfg.position_margin)
        ]
        cells[a], cells[b] = pairs[int(rng.integers(len(pairs)))]
    free = [c for c in rng.permutation(n_cells).tolist() if c not in cells]
    return [c if c >= 0 else free.pop() for c in cells]


def _clear_relation(ca, cb, side: float, rel: str, margin: float) -> bool:
    """The relation holds with room to spare: under 1.5 px jitter of either box and a doubled margin."""
    for jx in (-1.5, 0.0, 1.5):
        for jy in (-1.5, 0.0, 1.5):
            a = SceneObject("square", "red", ca[0] + jx, ca[1] + jy, side).box()
            b = SceneObject("square", "red", cb[0], cb[1], side).box()
            if rel not in relations_between(a, b, 2 * margin):
                return False
    return True


def _free_boxes(
    meta: dict, objs, cfg: ShapesWorldConfig, rng: np.random.Generator
) -> list[tuple[float, float]]:
    n, s = cfg.image_size, float(cfg.object_px)
    lo, hi, gap = s / 2 + 1, n - s / 2 - 1, s + 2.0
    pos = _position_pair(meta)
    for _ in range(2000):
        centres = rng.uniform(lo, hi, size=(len(objs), 2))
        d = np.abs(centres[:, None, :] - centres[None, :, :]).max(-1) + np.eye(len(objs)) * 1e9
        if d.min() < gap:
            continue
        if pos is not None:
            a = next(k for k, o in enumerate(objs) if o[2] == pos[0])
            b = next(k for k, o in enumerate(objs) if o[2] == pos[1])
            if not _clear_relation(centres[a], centres[b], s, pos[2], cfg.position_margin):
                continue
        return [tuple(c) for c in centres]
    raise ValueError(
        f"could not place {len(objs)} objects of {s:.0f} px in a {n} px image; lower object_size"
    )


def layout_scene(meta: dict, cfg: ShapesWorldConfig, rng: np.random.Generator | int | None = None) -> Scene:
    """A scene that satisfies the prompt exactly (objects in include order)."""
    validate_meta(meta, cfg)
    rng = as_rng(rng)
    objs = required_objects(meta, cfg, rng)
    if cfg.layout == "grid":
        return [
            cell_object(shape, color, c, cfg)
            for (shape, color, _), c in zip(objs, _grid_cells(meta, objs, cfg, rng), strict=True)
        ]
    centres = _free_boxes(meta, objs, cfg, rng)
    return [
        SceneObject(shape, color, x, y, float(cfg.object_px))
        for (shape, color, _), (x, y) in zip(objs, centres, strict=True)
    ]
