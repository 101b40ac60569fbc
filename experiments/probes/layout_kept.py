"""ShapesWorld reflection diagnostic: does image_2 keep image_1's layout (same object in every grid cell)?

A reflection that finds image_1 correct should keep it. This reads an evaluation's `results.json` and its saved
turn-1/turn-2 images and reports how often the detected cell grids of the two images are identical: over all
trajectories, when image_1 was correct, and when think_2 says it keeps the image (the ShapesWorld "keep" wording).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from irg_rl.tasks.shapes import ShapesWorldConfig, image_to_cell_classes
from irg_rl.tasks.shapes.text import KEEP_VERDICT


def layout_kept(image_1: np.ndarray, image_2: np.ndarray, cfg: ShapesWorldConfig) -> bool:
    """True when both uint8 [H, W, 3] images have the same detected object class in every grid cell."""
    return bool(np.array_equal(image_to_cell_classes(image_1, cfg), image_to_cell_classes(image_2, cfg)))


def _rate(flags: list[bool]) -> dict:
    return {"rate": float(np.mean(flags)) if flags else None, "n": len(flags)}


def layout_kept_stats(eval_dir: str | Path, cfg: ShapesWorldConfig | None = None, every: int = 1) -> dict:
    """Identical-layout rates of one evaluation folder (every `every`-th trajectory)."""
    eval_dir = Path(eval_dir)
    results_path = eval_dir / "results.json"
    if not results_path.is_file():
        raise FileNotFoundError(f"{results_path}: not an evaluation folder (run scripts/eval.py first)")
    cfg = cfg or ShapesWorldConfig()
    kept, kept_right, kept_keep = [], [], []
    for s in json.loads(results_path.read_text())["samples"][::every]:
        folder, files = eval_dir / s["folder"], s["files"]
        if not files.get("image_1") or not files.get("image_2"):
            raise ValueError(
                f"{results_path}: sample {s['folder']} has no saved image_1/image_2 (IRG mode needed)"
            )
        img = [np.asarray(Image.open(folder / files[k]).convert("RGB")) for k in ("image_1", "image_2")]
        same = layout_kept(img[0], img[1], cfg)
        kept.append(same)
        if s["turns"]["think"]["strict"] >= 1.0:
            kept_right.append(same)
        if KEEP_VERDICT.search(s.get("think_2") or ""):
            kept_keep.append(same)
    return {"all": _rate(kept), "turn_1_right": _rate(kept_right), "says_keep": _rate(kept_keep)}
