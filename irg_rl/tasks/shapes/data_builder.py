"""Write the six IRGL learning modes for ShapesWorld in the official parquet format.

Per training prompt: image_2 = a correct rendering (the target); think_1 = a plan naming its objects and places;
image_1 = a controlled corruption of the target (or, for `correct_share` of prompts, the target itself);
think_2 = a four-part reflection written from the scorer's reading of image_1. Also writes `prompts_heldout.jsonl`
(GenEval metadata lines for evaluation), `metadata.jsonl` (per example: prompt metadata, corruption kind, image_1
score), `world.yaml` and `preview.png` (prompt | image_1 | image_2 rows).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from irg_rl.config import to_yaml
from irg_rl.data import modes as M
from irg_rl.data.format import Part, Turn, image_part, text_part, write_mode_shard
from irg_rl.tasks.shapes import (
    CORRUPTION_KINDS,
    DEFAULT_CORRUPTION_KINDS,
    Scene,
    ShapesWorldConfig,
    corrupt,
    enumerate_prompts,
    generate_prompts,
    layout_scene,
    render_scene,
    score_image,
    write_reflection,
    write_think1,
)

LAYOUT_SOURCES = ("text", "image_1")


@dataclass
class ShapesDataConfig:
    """Recipe for `scripts/make_shapes_data.py`."""

    # the ShapesWorld the data is drawn from
    world: ShapesWorldConfig = field(default_factory=ShapesWorldConfig)
    # training prompts drawn (one conversation per prompt in every mode)
    num_prompts: int = 1000
    # seed of prompts, layouts, corruptions and text templates
    seed: int = 0
    # share of prompts whose image_1 is already correct (the reflection says keep): 0.5 balances the verdict
    correct_share: float = 0.5
    # where image_2's layout is written: "text" = think_1 plans every object's place and the reflection's final
    # prompt repeats the whole target scene (image_2 can be drawn from the text alone); "image_1" = neither names
    # places, so the unchanged objects' places are only in image_1 (the reflection's edit steps still do)
    layout_source: str = "text"
    # corruption kinds image_1 may be drawn with (each prompt draws among those that break it); add "extra_copy"
    # (one more copy of a drawn object) and "rebind" (an object takes another's shape or colour), errors the tiny
    # model's own first images often make
    corruption_kinds: list[str] = field(default_factory=lambda: list(DEFAULT_CORRUPTION_KINDS))
    # each prompt's improving rows come in a pair: the same prompt and think_1 once with the correct image_1 (keep)
    # and once with a corrupted one (revise). The text context is identical, so only reading image_1 predicts the
    # reflection; without pairs it can be guessed from think_1's plan (the initial modes keep one row per prompt)
    improving_pairs: bool = False
    # conversations per parquet shard
    shard_size: int = 4096
    # rows shown in preview.png
    preview_rows: int = 8

    def validate(self) -> None:
        if self.num_prompts < 1:
            raise ValueError(f"num_prompts: must be >= 1, got {self.num_prompts}")
        if not 0.0 <= self.correct_share <= 1.0:
            raise ValueError(f"correct_share: must be in [0, 1], got {self.correct_share}")
        if self.layout_source not in LAYOUT_SOURCES:
            raise ValueError(f"layout_source: must be one of {LAYOUT_SOURCES}, got {self.layout_source!r}")
        bad = [k for k in self.corruption_kinds if k not in CORRUPTION_KINDS]
        if bad or not self.corruption_kinds:
            raise ValueError(
                f"corruption_kinds: must be a non-empty subset of {list(CORRUPTION_KINDS)}, got {self.corruption_kinds}"
            )
        if self.shard_size < 1:
            raise ValueError(f"shard_size: must be >= 1, got {self.shard_size}")


@dataclass
class ShapesExample:
    """Everything one prompt contributes to the six modes."""

    # GenEval metadata of the prompt
    meta: dict
    # plan text, <think> ... </think>
    think_1: str
    # uint8 [H, W, 3] first image (a corruption, or the target when already correct)
    image_1: np.ndarray
    # reflection text on image_1, <think> ... </think>
    think_2: str
    # uint8 [H, W, 3] the correct target image
    image_2: np.ndarray
    # corruption kind of image_1, or "correct"
    kind: str
    # scorer's strict score of image_1
    image_1_strict: float
    # the target scene image_2 draws (None where unknown)
    scene: Scene | None = None


def make_example(
    meta: dict,
    world: ShapesWorldConfig,
    rng: np.random.Generator,
    correct: bool,
    layout_in_text: bool = True,
    corruption_kinds: tuple[str, ...] | list[str] = DEFAULT_CORRUPTION_KINDS,
) -> ShapesExample:
    """Build one example; raises if a corruption is not caught by the scorer (it must be)."""
    scene = layout_scene(meta, world, rng)
    image_2 = render_scene(scene, world)
    think_1 = write_think1(meta, rng, scene if layout_in_text else None, world)
    return with_image_1(meta, think_1, scene, image_2, world, rng, correct, layout_in_text, corruption_kinds)


def with_image_1(
    meta: dict,
    think_1: str,
    scene: Scene,
    image_2: np.ndarray,
    world: ShapesWorldConfig,
    rng: np.random.Generator,
    correct: bool,
    layout_in_text: bool = True,
    corruption_kinds: tuple[str, ...] | list[str] = DEFAULT_CORRUPTION_KINDS,
) -> ShapesExample:
    """The example of a planned target (`scene`, drawn as `image_2`) whose image_1 is the target itself when
    `correct`, else a corruption of it, with the reflection on image_1. Raises if the scorer disagrees."""
    if correct:
        scene_1, kind = scene, "correct"
    else:
        scene_1, kind = corrupt(meta, world, rng, scene=scene, allowed=corruption_kinds)
    image_1 = render_scene(scene_1, world)
    score_1 = score_image(image_1, meta, world)
    if score_1.strict != float(correct):
        raise RuntimeError(
            f"scorer disagrees with the construction of image_1 for '{meta['prompt']}' ({kind}): "
            f"strict={score_1.strict}; seen: {score_1.description}"
        )
    think_2 = write_reflection(
        meta, score_1, rng, scene, world, final_scene=layout_in_text, style=world.reflection_style
    )
    return ShapesExample(meta, think_1, image_1, think_2, image_2, kind, score_1.strict, scene)


def mode_conversations(ex: ShapesExample) -> dict[str, list[Turn]]:
    """The example as one conversation per learning mode (`irg_rl.data.modes` describes the six)."""
    user = Turn("user", ex.meta["prompt"])

    def conv(*parts: Part) -> list[Turn]:
        return [user, Turn("assistant", list(parts))]

    # An already-correct image_1 is also a good generation: train it and keep it as a condition (all three flags).
    img1 = image_part(ex.image_1, need_loss=ex.kind == "correct", need_vae=True, need_vit=True)
    img1_cond = image_part(ex.image_1, need_vae=True, need_vit=True)
    img2_cond = image_part(ex.image_2, need_vae=True, need_vit=True)
    return {
        M.INITIAL_THINKING_UNDERSTANDING: conv(img2_cond, text_part(ex.think_1)),
        M.INITIAL_THINKING_GENERATION: conv(text_part(ex.think_1)),
        M.INITIAL_FULL: conv(text_part(ex.think_1), image_part(ex.image_2, need_loss=True)),
        M.IMPROVING_THINKING_UNDERSTANDING: conv(img1_cond, img2_cond, text_part(ex.think_2)),
        M.IMPROVING_THINKING_GENERATION: conv(
            text_part(ex.think_1, need_loss=False), img1_cond, text_part(ex.think_2)
        ),
        M.IMPROVING_FULL: conv(
            text_part(ex.think_1, need_loss=False),
            img1,
            text_part(ex.think_2),
            image_part(ex.image_2, need_loss=True),
        ),
    }


def write_preview(path: Path, examples: list[ShapesExample], scale: int = 4) -> Path:
    """PNG grid, one row per example: prompt | image_1 | image_2 (images upscaled `scale` times)."""
    size = examples[0].image_2.shape[0] * scale
    text_w, pad = 300, 4
    canvas = Image.new(
        "RGB", (text_w + 2 * (size + pad) + pad, len(examples) * (size + pad) + pad), "lightgray"
    )
    draw = ImageDraw.Draw(canvas)
    for r, ex in enumerate(examples):
        y = pad + r * (size + pad)
        draw.text((pad, y + 2), ex.meta["prompt"], fill="black")
        draw.text(
            (pad, y + 16), f"image_1: {ex.kind}", fill="darkred" if ex.kind != "correct" else "darkgreen"
        )
        for c, img in enumerate((ex.image_1, ex.image_2)):
            big = Image.fromarray(img).resize((size, size), Image.NEAREST)
            canvas.paste(big, (text_w + pad + c * (size + pad), y))
    canvas.save(path)
    return path


def build_shapes_data(out: str | Path, cfg: ShapesDataConfig) -> dict:
    """Write the dataset under `out`; returns a summary (counts per mode and corruption kind, files)."""
    cfg.validate()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    world = cfg.world
    layout_in_text = cfg.layout_source == "text"
    metas = generate_prompts(world, cfg.num_prompts, seed=cfg.seed, split="train")
    buffers: dict[str, list] = {m: [] for m in M.MODES}
    shard = 0
    kinds: dict[str, int] = {}
    preview: list[ShapesExample] = []
    with open(out / "metadata.jsonl", "w") as meta_file:
        for i, meta in enumerate(metas):
            rng = np.random.default_rng([cfg.seed, i])
            correct = bool(rng.random() < cfg.correct_share)
            ex = make_example(meta, world, rng, correct, layout_in_text, cfg.corruption_kinds)
            kinds[ex.kind] = kinds.get(ex.kind, 0) + 1
            if len(preview) < cfg.preview_rows:
                preview.append(ex)
            row = {"index": i, "metadata": meta, "image_1_kind": ex.kind, "image_1_strict": ex.image_1_strict}
            for mode, conv in mode_conversations(ex).items():
                buffers[mode].append(conv)
            if cfg.improving_pairs:
                # the twin draws from its own stream, so the first example is the same with or without pairs
                twin_rng = np.random.default_rng([cfg.seed, i, 1])
                twin = with_image_1(
                    meta,
                    ex.think_1,
                    ex.scene,
                    ex.image_2,
                    world,
                    twin_rng,
                    not correct,
                    layout_in_text,
                    cfg.corruption_kinds,
                )
                kinds[twin.kind] = kinds.get(twin.kind, 0) + 1
                row["twin_image_1_kind"] = twin.kind
                for mode, conv in mode_conversations(twin).items():
                    if mode in M.IMPROVING_MODES:
                        buffers[mode].append(conv)
            meta_file.write(json.dumps(row) + "\n")
            if len(buffers[M.MODES[0]]) >= cfg.shard_size:
                for mode in M.MODES:
                    write_mode_shard(out, mode, buffers[mode], shard=shard)
                    buffers[mode] = []
                shard += 1
    if buffers[M.MODES[0]]:
        for mode in M.MODES:
            write_mode_shard(out, mode, buffers[mode], shard=shard)
    heldout = enumerate_prompts(world, "heldout")
    with open(out / "prompts_heldout.jsonl", "w") as f:
        for meta in heldout:
            f.write(json.dumps(meta) + "\n")
    (out / "world.yaml").write_text(to_yaml(world))
    write_preview(out / "preview.png", preview)
    return {
        "out": str(out),
        "conversations_per_mode": len(metas),
        # the improving modes hold a keep / revise pair per prompt with improving_pairs
        "improving_rows_per_prompt": 2 if cfg.improving_pairs else 1,
        "modes": list(M.MODES),
        "image_1_kinds": kinds,
        "heldout_prompts": len(heldout),
        "train_prompt_space": len(enumerate_prompts(world, "train")),
    }
