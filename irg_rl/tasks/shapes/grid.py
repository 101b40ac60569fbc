"""Grid cell codes: each of the grid x grid cells holds nothing (0) or one object (1 + shape * n_colours + colour).

This is what the grid latent codec encodes exactly; `image_to_cell_classes` reads the codes back from any image
(a generated one may be imperfect), using the same detector as the scorer.
"""

from __future__ import annotations

import numpy as np

from irg_rl.tasks.shapes.detect import detect_objects
from irg_rl.tasks.shapes.layout import cell_object, cell_of
from irg_rl.tasks.shapes.world import Scene, ShapesWorldConfig


def cell_class(shape: str, color: str, cfg: ShapesWorldConfig) -> int:
    """Class id of one object: 1 + shape_index * n_colours + colour_index."""
    return 1 + cfg.shapes.index(shape) * len(cfg.colors) + cfg.colors.index(color)


def class_to_object(cls: int, cfg: ShapesWorldConfig) -> tuple[str, str] | None:
    """(shape, colour) of a class id, None for 0 (empty)."""
    if not 0 <= cls < cfg.num_cell_classes:
        raise ValueError(f"cell class {cls} out of range 0..{cfg.num_cell_classes - 1} for this world")
    if cls == 0:
        return None
    s, c = divmod(cls - 1, len(cfg.colors))
    return cfg.shapes[s], cfg.colors[c]


def cell_classes(scene: Scene, cfg: ShapesWorldConfig) -> np.ndarray:
    """int64 [grid * grid] (row-major) class ids of a scene; two objects in one cell is an error."""
    out = np.zeros(cfg.grid_size**2, dtype=np.int64)
    for obj in scene:
        cell = cell_of(obj, cfg)
        if out[cell]:
            raise ValueError(
                f"cell_classes: two objects in cell {cell} (row {cell // cfg.grid_size}, col {cell % cfg.grid_size}); "
                f"only grid-layout scenes (one object per cell) have exact cell codes"
            )
        out[cell] = cell_class(obj.shape, obj.color, cfg)
    return out


def scene_from_cell_classes(classes, cfg: ShapesWorldConfig) -> Scene:
    """Scene with one centred object per non-empty cell. classes: int [grid * grid] or [grid, grid]."""
    arr = np.asarray(classes).reshape(-1)
    if arr.size != cfg.grid_size**2:
        raise ValueError(
            f"expected {cfg.grid_size**2} cell classes (grid {cfg.grid_size}x{cfg.grid_size}), got {arr.size}"
        )
    scene = []
    for cell, cls in enumerate(arr.tolist()):
        obj = class_to_object(int(cls), cfg)
        if obj is not None:
            scene.append(cell_object(obj[0], obj[1], cell, cfg))
    return scene


def image_to_cell_classes(image: np.ndarray, cfg: ShapesWorldConfig) -> np.ndarray:
    """int64 [grid * grid]: per cell, the class of the detected object whose centre lies in it (0 if none).

    When several objects fall in one cell the largest wins (a generated image may crowd a cell).
    """
    out = np.zeros(cfg.grid_size**2, dtype=np.int64)
    area = np.zeros(cfg.grid_size**2)
    for det in detect_objects(np.asarray(image), cfg):
        cx, cy = det.center
        col = min(max(int(cx // cfg.cell_px), 0), cfg.grid_size - 1)
        row = min(max(int(cy // cfg.cell_px), 0), cfg.grid_size - 1)
        cell = row * cfg.grid_size + col
        if det.area > area[cell]:
            out[cell], area[cell] = cell_class(det.shape, det.color, cfg), det.area
    return out
