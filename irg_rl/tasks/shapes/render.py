"""Rasterise ShapesWorld scenes: white background, flat-coloured shapes, 4x4 supersampled edges."""

from __future__ import annotations

import numpy as np

from irg_rl.tasks.shapes.world import BACKGROUND, PALETTE, Scene, SceneObject, ShapesWorldConfig

# Sub-samples per pixel side for edge coverage (anti-aliasing keeps small shapes readable after blur).
SUPERSAMPLE = 4


def inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean inside-test in box-normalised coordinates (u, v in [-1, 1], v grows downwards)."""
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "square":
        return (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0)
    if shape == "triangle":  # apex up, base down
        return (v >= -1.0) & (v <= 1.0) & (np.abs(u) <= (v + 1.0) / 2.0)
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0
    raise ValueError(f"cannot draw shape '{shape}'")


def object_coverage(obj: SceneObject, size: int) -> tuple[int, int, np.ndarray]:
    """Coverage of one object: (y0, x0, alpha [h, w] in [0, 1]) over the pixel window holding its box."""
    half = obj.size / 2.0
    x0, y0 = max(int(np.floor(obj.cx - half)), 0), max(int(np.floor(obj.cy - half)), 0)
    x1, y1 = min(int(np.ceil(obj.cx + half)), size), min(int(np.ceil(obj.cy + half)), size)
    if x1 <= x0 or y1 <= y0:
        return y0, x0, np.zeros((0, 0), np.float32)
    offs = (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE
    xs = (np.arange(x0, x1)[:, None] + offs[None, :]).reshape(-1)
    ys = (np.arange(y0, y1)[:, None] + offs[None, :]).reshape(-1)
    u = (xs[None, :] - obj.cx) / half
    v = (ys[:, None] - obj.cy) / half
    hit = inside(obj.shape, u, v).astype(np.float32)
    alpha = hit.reshape(y1 - y0, SUPERSAMPLE, x1 - x0, SUPERSAMPLE).mean(axis=(1, 3))
    return y0, x0, alpha


def render_scene(scene: Scene, cfg: ShapesWorldConfig) -> np.ndarray:
    """uint8 [H, W, 3] image of an explicit object list (later objects paint over earlier ones)."""
    n = cfg.image_size
    img = np.empty((n, n, 3), np.float32)
    img[:] = BACKGROUND
    for obj in scene:
        if obj.color not in PALETTE:
            raise ValueError(
                f"render_scene: object colour '{obj.color}' is not in the palette {list(PALETTE)}"
            )
        y0, x0, alpha = object_coverage(obj, n)
        if alpha.size == 0:
            continue
        h, w = alpha.shape
        win = img[y0 : y0 + h, x0 : x0 + w]
        win[:] = (
            win * (1.0 - alpha[..., None]) + np.asarray(PALETTE[obj.color], np.float32) * alpha[..., None]
        )
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def render(meta: dict, cfg: ShapesWorldConfig, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """uint8 [H, W, 3]: a correct image for a GenEval metadata dict (layout drawn with `rng`)."""
    from irg_rl.tasks.shapes.layout import layout_scene

    return render_scene(layout_scene(meta, cfg, rng), cfg)
