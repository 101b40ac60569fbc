"""Score a folder of images with one reward (the library behind `scripts/score.py`).

Metadata is a JSONL file, one object per image, matched by its `file` (or `image`) key to the image file name, or
else by line order against the sorted image files. Keys used: `prompt`, `think_1`, `think_2`, `image_1` (a file
name in the same folder), and everything else (e.g. GenEval `include`/`exclude`) is passed as metadata.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from PIL import Image

from irg_rl.data.jsonl import read_jsonl_objects
from rewards.contract import RewardBatch, RewardOutput
from rewards.registry import available_rewards, build_reward
from rewards.spec import RewardSpec, parse_args_kv

__all__ = ["IMAGE_SUFFIXES", "load_folder", "format_table", "write_shapes_folder", "main"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def _read_metadata(path: Path) -> list[dict]:
    return [obj for _, obj in read_jsonl_objects(path)]


def load_folder(images: Path, metadata: Path | None = None) -> tuple[list[str], RewardBatch]:
    """(file names, batch) for every image in a folder, joined with its metadata row."""
    if not images.is_dir():
        raise FileNotFoundError(f"--images {images}: not a directory")
    files = sorted(p.name for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"--images {images}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    rows: list[dict] = [{} for _ in files]
    if metadata is not None:
        meta = _read_metadata(metadata)
        keyed = {
            Path(str(r.get("file") or r.get("image"))).name: r
            for r in meta
            if r.get("file") or r.get("image")
        }
        if keyed:
            missing = [f for f in files if f not in keyed]
            if missing:
                raise ValueError(
                    f"{metadata}: no row with file/image = {missing[0]!r} ({len(missing)} images unmatched)"
                )
            rows = [keyed[f] for f in files]
        elif len(meta) != len(files):
            raise ValueError(
                f"{metadata}: {len(meta)} rows for {len(files)} images; give one row per image in sorted file order "
                "or add a 'file' key to each row"
            )
        else:
            rows = meta

    def opt_text(key: str) -> list[str] | None:
        return [str(r.get(key, "")) for r in rows] if any(key in r for r in rows) else None

    images_1 = None
    if any("image_1" in r for r in rows):
        images_1 = []
        for f, r in zip(files, rows, strict=True):
            if "image_1" not in r:
                raise ValueError(f"{metadata}: row for {f} lacks 'image_1' while other rows have it")
            images_1.append(Image.open(images / r["image_1"]).convert("RGB"))
    batch = RewardBatch(
        prompts=[str(r.get("prompt", "")) for r in rows],
        images=[Image.open(images / f).convert("RGB") for f in files],
        images_1=images_1,
        think_1=opt_text("think_1"),
        think_2=opt_text("think_2"),
        metadata=[{k: v for k, v in r.items() if k not in ("think_1", "think_2", "image_1")} for r in rows],
    )
    return files, batch


def write_shapes_folder(folder: Path, num: int, seed: int = 0) -> Path:
    """Write `num` ShapesWorld renders (even: correct, odd: a corrupted scene) and their metadata.jsonl."""
    from irg_rl.tasks.shapes import ShapesWorldConfig, corrupt, generate_prompts, render, render_scene

    cfg = ShapesWorldConfig()
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, meta in enumerate(generate_prompts(cfg, num, seed=seed)):
        arr = (
            render(meta, cfg, rng=seed + i)
            if i % 2 == 0
            else render_scene(corrupt(meta, cfg, rng=seed + i)[0], cfg)
        )
        name = f"shapes_{i:04d}.png"
        # upscaled 4x with nearest sampling so the files are viewable; the shapes reward scales them back
        Image.fromarray(arr).resize((cfg.image_size * 4,) * 2, Image.NEAREST).save(folder / name)
        rows.append(json.dumps({"file": name, **meta}))
    path = folder / "metadata.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


def _short(detail: dict, width: int = 70) -> str:
    # a reward's own summary beats the first characters of its detail dict
    for key in ("na", "description", "recognised"):
        if isinstance(detail.get(key), str):
            text = f"{key}: {detail[key]}"
            break
    else:
        text = json.dumps(detail, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def format_table(files: list[str], out: RewardOutput, name: str) -> str:
    """A plain-text table (file, score, detail) followed by the mean over applicable samples."""
    w = max(len("file"), *(len(f) for f in files))
    lines = [f"{'file':<{w}}  {name:>10}  detail", f"{'-' * w}  {'-' * 10}  {'-' * 30}"]
    for f, s, d in zip(files, out.scores.tolist(), out.details, strict=True):
        shown = "n/a" if math.isnan(s) else f"{s:.4f}"
        lines.append(f"{f:<{w}}  {shown:>10}  {_short(d)}")
    valid = [s for s in out.scores.tolist() if not math.isnan(s)]
    mean = f"{sum(valid) / len(valid):.4f}" if valid else "n/a"
    lines.append(f"mean over {len(valid)}/{len(files)} applicable samples: {mean}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Score a folder of images with one registered reward.")
    p.add_argument("--reward", help="registered reward name or package.module:factory")
    p.add_argument("--images", type=Path, help="folder of images (png/jpg/webp)")
    p.add_argument(
        "--metadata", type=Path, help="JSONL, one object per image (matched by 'file' or by order)"
    )
    p.add_argument(
        "--arg", action="append", default=[], help="reward argument key=value (YAML value); repeatable"
    )
    p.add_argument("--url", help="score through a reward server at this URL instead of in process")
    p.add_argument("--json", type=Path, help="also write scores and details to this JSON file")
    p.add_argument("--list", action="store_true", help="list registered rewards and exit")
    p.add_argument(
        "--render-shapes",
        type=int,
        metavar="N",
        help="first write N ShapesWorld renders (every other one corrupted) and metadata.jsonl into --images",
    )
    a = p.parse_args(argv)
    if a.list:
        rewards = available_rewards()
        w = max(len(n) for n in rewards)
        for name, desc in rewards.items():
            print(f"{name:<{w}}  {desc}")
        return 0
    if not a.reward or not a.images:
        p.error("--reward and --images are required (or use --list)")
    if a.render_shapes:
        a.metadata = a.metadata or write_shapes_folder(a.images, a.render_shapes)
    spec = RewardSpec(name=a.reward, args=parse_args_kv(a.arg), serve="http" if a.url else "local", url=a.url)
    reward = build_reward(spec)
    files, batch = load_folder(a.images, a.metadata)
    out = reward(batch)
    print(format_table(files, out, reward.name))
    if a.json:
        from rewards.serving.protocol import to_jsonable

        a.json.write_text(
            json.dumps(
                [
                    {"file": f, "score": s, "detail": d}
                    for f, s, d in zip(files, to_jsonable(out.scores), to_jsonable(out.details), strict=True)
                ],
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
