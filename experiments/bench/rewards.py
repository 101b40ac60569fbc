"""Reward throughput on CPU: images/s for the rewards that run offline (`python -m experiments.bench rewards`).

Measured: shapes (ShapesWorld renders), reflection_format (written reflections), ocr (rapidocr_onnxruntime on
rendered text), clip_score with a tiny random open_clip model and with a random-weight ViT-B-32 (the real
architecture; the weights do not change the cost). Prints a markdown table and optionally writes it to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from rewards import RewardBatch, build_reward

__all__ = ["main", "measure"]

TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}

REFLECTION = (
    "<think> The image shows two red circles but the prompt asks for three. "
    "Detailed Explanation of Required Improvements: one red circle is missing. "
    "Step-by-Step Modification Guidance: keep both circles and add a third in the right column. "
    "Final Comprehensive Prompt for the Improved Image: three red circles on a white background. </think>"
)


def measure(reward, batch: RewardBatch, repeats: int) -> tuple[float, float]:
    """(first-call seconds incl. model load, steady images/s over `repeats` calls)."""
    t0 = time.perf_counter()
    reward(batch)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(repeats):
        reward(batch)
    return first, repeats * len(batch) / (time.perf_counter() - t0)


def _shapes_batch(n: int) -> RewardBatch:
    from irg_rl.tasks.shapes import ShapesWorldConfig, generate_prompts, render

    cfg = ShapesWorldConfig()
    metas = generate_prompts(cfg, n, seed=0)
    imgs = [Image.fromarray(render(m, cfg, rng=i)) for i, m in enumerate(metas)]
    return RewardBatch(prompts=[m["prompt"] for m in metas], images=imgs, metadata=metas)


def _text_batch(n: int) -> RewardBatch:
    words = ["GARDEN", "PLANET", "OPEN", "CAFE", "RIVER", "MUSIC"]
    try:
        font = ImageFont.load_default(size=40)
    except TypeError:
        font = ImageFont.load_default()
    imgs, prompts = [], []
    for i in range(n):
        img = Image.new("RGB", (320, 96), "white")
        ImageDraw.Draw(img).text((12, 24), words[i % len(words)], fill="black", font=font)
        imgs.append(img)
        prompts.append(f'a sign that says "{words[i % len(words)]}"')
    return RewardBatch(prompts=prompts, images=imgs)


def _photo_batch(n: int, size: int) -> RewardBatch:
    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(n)]
    return RewardBatch(prompts=["a photo of a red circle next to a blue square"] * n, images=imgs)


def _clip_checkpoint(tmp: Path, name: str, config: dict | None) -> dict:
    import open_clip

    args = {"model_name": name}
    if config is not None:
        path = tmp / f"{name}.json"
        path.write_text(json.dumps(config))
        open_clip.add_model_config(path)
        args["model_config"] = str(path)
    model = open_clip.create_model(name, pretrained=None)
    torch.save(model.state_dict(), tmp / f"{name}.pt")
    args["checkpoint"] = str(tmp / f"{name}.pt")
    return args


def _cases(n: int, tmp: Path, skip_vitb: bool, threads: int) -> list[tuple[str, str, Callable]]:
    cases = [
        (
            "shapes",
            "ShapesWorld 32 px renders, partial credit",
            lambda: (build_reward("shapes"), _shapes_batch(n)),
        ),
        (
            "reflection_format",
            "written four-part reflections",
            lambda: (build_reward("reflection_format"), _photo_batch(n, 8).replace(think_2=[REFLECTION] * n)),
        ),
        (
            "ocr",
            "rapidocr_onnxruntime, 320x96 rendered words",
            lambda: (build_reward({"name": "ocr", "args": {"threads": threads}}), _text_batch(n)),
        ),
        (
            "clip_score",
            "tiny random open_clip (32 px, 1 layer)",
            lambda: (
                build_reward(
                    {"name": "clip_score", "args": _clip_checkpoint(tmp, "bench-tiny-clip", TINY_CLIP)}
                ),
                _photo_batch(n, 64),
            ),
        ),
    ]
    if not skip_vitb:
        cases.append(
            (
                "clip_score",
                "open_clip ViT-B-32 architecture, random weights, 224 px",
                lambda: (
                    build_reward({"name": "clip_score", "args": _clip_checkpoint(tmp, "ViT-B-32", None)}),
                    _photo_batch(n, 256),
                ),
            )
        )
    return cases


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="bench.py rewards", description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=16, help="images per call")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per reward after one warm-up call")
    p.add_argument("--threads", type=int, default=2, help="torch and onnxruntime intra-op threads")
    p.add_argument("--skip-vitb", action="store_true", help="skip the ViT-B-32-sized CLIP case")
    p.add_argument("--out", type=Path, help="also write the markdown table to this file")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = [
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {load:.1f} at start, "
        f"threads {a.threads}, batch {a.batch}, "
        f"{a.repeats} timed calls after one warm-up (first call includes model load).",
        "",
        "| reward | setup | first call (s) | images/s |",
        "|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name, setup, make in _cases(a.batch, Path(tmp), a.skip_vitb, a.threads):
            reward, batch = make()
            first, rate = measure(reward, batch, a.repeats)
            rows.append(f"| {name} | {setup} | {first:.2f} | {rate:.1f} |")
            print(rows[-1], flush=True)
    table = "\n".join(rows)
    print()
    print(table)
    if a.out:
        a.out.write_text(table + "\n")
