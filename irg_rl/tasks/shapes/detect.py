"""Find ShapesWorld objects in any RGB image: palette segmentation, connected blobs, shape by geometry.

Pixels take the nearest palette colour (background included) within a tolerance; 8-connected blobs of one colour
are objects unless they are tiny (stray pixels). Shape is told from blur-tolerant, colour-scale-free measures of
the blob's soft coverage (mass relative to its box, mass in the box corners, vertical centroid), matched against
prototypes measured on the renderer's own shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from irg_rl.tasks.shapes.world import BACKGROUND, PALETTE, SceneObject, ShapesWorldConfig

_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass
class Detection:
    """One object found in an image."""

    # shape class (nearest prototype)
    shape: str
    # palette colour name
    color: str
    # (x0, y0, x1, y1) pixel box, x1/y1 exclusive
    box: tuple[float, float, float, float]
    # pixels labelled with the object's colour
    area: int
    # distance to the nearest shape prototype (lower = more confident)
    shape_distance: float

    @property
    def center(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)

    def as_dict(self) -> dict:
        return {"shape": self.shape, "color": self.color, "box": list(self.box), "area": self.area}


# Fill of each shape relative to its box (continuous): turns a blob's mass into a size estimate.
_FILL = {"circle": np.pi / 4, "square": 1.0, "triangle": 0.5, "diamond": 0.5}
# Vertical offset of each shape's centroid from its box centre, in box sides (the triangle's base is heavy).
_CENTROID_DY = {"circle": 0.0, "square": 0.0, "triangle": 1.0 / 6.0, "diamond": 0.0}
# Candidate blur levels of the templates (a generated or degraded image is rarely razor sharp).
_SIGMAS = (0.0, 0.6, 1.0)
# Candidate box sides, relative to the mass-based estimate (colour shifts rescale the mass a little).
_SIZE_STEPS = (0.88, 0.94, 1.0, 1.06, 1.12)
_R = 7  # template half-window in pixels (objects up to ~12 px); larger blobs use their own window


@lru_cache(maxsize=8192)
def _template(shape: str, side_q: int, fx_q: int, fy_q: int, sigma: float, r: int) -> np.ndarray:
    """Rendered coverage [2r, 2r] of a shape of side side_q/4 px centred at (r + fx_q/4, r + fy_q/4)."""
    from irg_rl.tasks.shapes.render import object_coverage

    obj = SceneObject(shape, "red", r + fx_q / 4.0, r + fy_q / 4.0, side_q / 4.0)
    canvas = np.zeros((2 * r, 2 * r), np.float32)
    y0, x0, a = object_coverage(obj, 2 * r)
    canvas[y0 : y0 + a.shape[0], x0 : x0 + a.shape[1]] = a
    return ndimage.gaussian_filter(canvas, sigma) if sigma else canvas


def classify_shape(alpha: np.ndarray, usable: np.ndarray, shapes: tuple[str, ...]) -> tuple[str, float]:
    """Best-matching shape for one blob: (shape, 1 - cosine similarity to the best template).

    alpha: [H, W] soft coverage of the blob's colour (0 outside `usable`); usable: [H, W] bool pixels that may
    belong to the blob. Templates are placed from the blob's centroid and sized from its mass; the cosine makes
    the match independent of the colour's exact level.
    """
    mass = float(alpha.sum())
    if mass <= 0:
        return shapes[0], 1.0
    yy, xx = np.mgrid[0 : alpha.shape[0], 0 : alpha.shape[1]] + 0.5
    mx, my = float((alpha * xx).sum()) / mass, float((alpha * yy).sum()) / mass
    best, best_d = shapes[0], np.inf
    for shape in shapes:
        side0 = np.sqrt(mass / _FILL[shape])
        r = max(_R, int(np.ceil(side0 * 0.6)) + 3)
        for step in _SIZE_STEPS:
            side = side0 * step
            cy = my - _CENTROID_DY[shape] * side
            ix, iy = int(np.floor(mx)), int(np.floor(cy))
            fx, fy = int(round((mx - ix) * 4)), int(round((cy - iy) * 4))
            x0, y0 = ix - r, iy - r
            # the blob's window, zero-padded where it leaves the image
            patch = np.zeros((2 * r, 2 * r), np.float32)
            ok = np.zeros((2 * r, 2 * r), bool)
            sy0, sx0 = max(y0, 0), max(x0, 0)
            sy1, sx1 = min(y0 + 2 * r, alpha.shape[0]), min(x0 + 2 * r, alpha.shape[1])
            patch[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = alpha[sy0:sy1, sx0:sx1]
            ok[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = usable[sy0:sy1, sx0:sx1]
            pn = np.sqrt(float((patch * patch).sum())) + 1e-9
            for sigma in _SIGMAS:
                t = _template(shape, int(round(side * 4)), fx, fy, sigma, r) * ok
                d = 1.0 - float((patch * t).sum()) / (pn * (np.sqrt(float((t * t).sum())) + 1e-9))
                if d < best_d:
                    best, best_d = shape, d
    return best, best_d


# A pixel joins a colour when it is at least this far along the background -> colour mixing line.
LABEL_ALPHA = 0.45


def segment(image: np.ndarray, cfg: ShapesWorldConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel palette labels along background/colour mixing lines (so blurred edges keep their colour).

    image: uint8 [H, W, 3] -> (labels [H, W] int: -1 unknown, 0 background, 1 + colour index;
    alpha [K, H, W] float32: coverage of each world colour, the projection onto its mixing line).
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image [H, W, 3], got shape {image.shape}")
    bg = np.asarray(BACKGROUND, np.float32)
    rel = image.astype(np.float32) - bg  # [H, W, 3]
    dirs = np.asarray([PALETTE[c] for c in cfg.colors], np.float32) - bg  # [K, 3]
    alpha = np.einsum("hwc,kc->khw", rel, dirs) / (dirs * dirs).sum(-1)[:, None, None]
    resid = np.linalg.norm(rel[None] - alpha[..., None] * dirs[:, None, None, :], axis=-1)  # [K, H, W]
    tol = cfg.color_tolerance * 255.0
    valid = (alpha >= LABEL_ALPHA) & (alpha <= 1.6) & (resid <= tol)
    best = np.where(valid, resid, np.inf).argmin(0)
    has = valid.any(0)
    is_bg = np.linalg.norm(rel, axis=-1) <= tol
    labels = np.where(has, best + 1, np.where(is_bg, 0, -1))
    return labels, alpha


def detect_objects(image: np.ndarray, cfg: ShapesWorldConfig) -> list[Detection]:
    """All objects in an RGB uint8 image [H, W, 3], sorted top-to-bottom then left-to-right."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB image, got dtype {image.dtype}")
    labels, alphas = segment(image, cfg)
    min_area = max(2.0, cfg.min_blob_fraction * cfg.object_px**2 * 0.5)
    found: list[Detection] = []
    for ci, color in enumerate(cfg.colors):
        comp, n = ndimage.label(labels == ci + 1, structure=_EIGHT)
        if n == 0:
            continue
        alpha_all = alphas[ci]
        for k, sl in enumerate(ndimage.find_objects(comp), start=1):
            area = int((comp[sl] == k).sum())
            if area < min_area:
                continue
            mask = comp == k
            # soft coverage only near this blob and only from unlabelled/background pixels around it
            usable = ndimage.binary_dilation(mask, _EIGHT, iterations=2) & (mask | (labels <= 0))
            alpha = np.clip(alpha_all, 0.0, 1.5) * usable
            shape, dist = classify_shape(alpha, usable, tuple(cfg.shapes))
            box = (float(sl[1].start), float(sl[0].start), float(sl[1].stop), float(sl[0].stop))
            found.append(Detection(shape, color, box, area, dist))
    found.sort(key=lambda d: (round(d.center[1]), d.center[0]))
    return found
