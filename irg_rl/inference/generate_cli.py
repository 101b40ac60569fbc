"""`scripts/generate.py`: one prompt through the IRG engine -> turn1/turn2 images and texts + a side-by-side PNG."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from irg_rl.config import ConfigError, keys_epilog, load_config

from .components import build_components, resolve_system_prompt
from .engine import IRGEngine
from .engine_config import EngineConfig

__all__ = ["main"]


def side_by_side(images: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """uint8 [H, W, 3] images of one height -> one [H, sum W + gaps, 3] strip on white."""
    h = max(im.shape[0] for im in images)
    w = sum(im.shape[1] for im in images) + gap * (len(images) - 1)
    out = np.full((h, w, 3), 255, dtype=np.uint8)
    x = 0
    for im in images:
        out[: im.shape[0], x : x + im.shape[1]] = im
        x += im.shape[1] + gap
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__,
        epilog=keys_epilog(EngineConfig),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--config", default=None, help="EngineConfig recipe YAML (default: the embedded tiny setting)"
    )
    ap.add_argument("--prompt", required=True, help="the text prompt")
    ap.add_argument("--out", default="outputs/generate", help="output directory")
    ap.add_argument("--mode", default="euler", choices=["euler", "sde"], help="image sampler")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. sampling.rounds=1")
    args = ap.parse_args(argv)
    try:
        ec = load_config(EngineConfig, args.config, args.overrides)
        ec.validate()
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    parts = build_components(ec, args.device)
    print(f"model: {parts.origin}")
    if "random init" in parts.origin:
        print("note: no checkpoint given - a randomly initialised model; images and texts are noise")
    engine = IRGEngine(
        parts.model, parts.tokenizer, parts.vae, resolve_system_prompt(ec.sampling, ec.model.source)
    )
    batch = engine.generate([args.prompt], samples_per_prompt=1, mode=args.mode)
    traj = batch[0]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shown = []
    for k in range(1, ec.sampling.rounds + 1):
        img = traj.segment(f"image_{k}").image.numpy()
        Image.fromarray(img).save(out / f"turn{k}.png")
        text = traj.segment(f"think_{k}").text if traj.has(f"think_{k}") else ""
        (out / f"turn{k}.txt").write_text(text + "\n")
        shown.append(img)
    Image.fromarray(side_by_side(shown)).save(out / "side_by_side.png")
    batch.save(out / "trajectory.pt")
    print(
        f"wrote {', '.join(sorted(p.name for p in out.iterdir()))} to {out} in {batch.stats['total_s']:.2f}s"
    )
