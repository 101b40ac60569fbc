"""Reflection data from a model's own first images (ShapesWorld): the `improving_*` modes in the official format.

The synthetic builder (`shapes_builder`) makes wrong first images by corrupting the target, so the reflection
learns to spot corruptions; a trained model's own mistakes look different, and its first images are right about
half the time. This builder samples think_1 + image_1 with a given checkpoint on training prompts, labels every
image_1 with the exact scorer and writes, per kept sample:
- image_1 right: the keep reflection (the scorer's description + a keep sentence), and image_2 = image_1 exactly;
- image_1 wrong: the revise reflection (what is wrong, edit steps towards a correct layout) and image_2 = that
  correct layout rendered.
Right and wrong samples are balanced to `keep_share` (the majority class is subsampled), so the verdict is not
taught a bias. The model's own think_1 is kept as context (`need_loss: false`). Outputs under `out`:
`<mode>/part-*.parquet` for the three improving modes, `metadata.jsonl` (prompt metadata, image_1 strict score,
verdict), `world.yaml` and `summary.json`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from irg_rl.config import to_yaml
from irg_rl.data import modes as M
from irg_rl.data.format import write_mode_shard
from irg_rl.data.task_plugin import TaskSection
from irg_rl.inference.engine_config import IRGSamplingConfig, tiny_sampling
from irg_rl.tasks.shapes import (
    ShapesWorldConfig,
    generate_prompts,
    layout_scene,
    render_scene,
    score_image,
    write_reflection,
)
from irg_rl.tasks.shapes.data_builder import ShapesExample, mode_conversations
from irg_rl.tasks.shapes.grid import image_to_cell_classes, scene_from_cell_classes

IMPROVING_MODES = (M.IMPROVING_THINKING_UNDERSTANDING, M.IMPROVING_THINKING_GENERATION, M.IMPROVING_FULL)


def _unguided_sampling() -> IRGSamplingConfig:
    s = tiny_sampling()
    s.turn1.cfg_text_scale = 1.0  # as recipes/shapes/eval.yaml: the ShapesWorld CFG branches are undertrained
    s.turn1.temperature = 0.7  # varied plans and first images, as RL samples them
    return s


@dataclass
class SelfReflectionDataConfig:
    """Recipe of `scripts/make_self_reflection_data.py`."""

    # the checkpoint whose first images are labelled (an SFT / RL run folder or checkpoint directory)
    model: str = "runs/demo/sft_stage2"
    # the ShapesWorld (must be the one the checkpoint was trained on)
    world: ShapesWorldConfig = field(default_factory=ShapesWorldConfig)
    # how think_1 and image_1 are sampled (rounds is forced to 1; Euler steps)
    sampling: IRGSamplingConfig = field(default_factory=_unguided_sampling)
    # training prompts sampled (one first image each); fewer rows are written after balancing
    num_prompts: int = 2000
    # share of keep rows (image_1 right) among the rows written; the majority class is subsampled to reach it
    keep_share: float = 0.5
    # seed of prompts, sampling, target layouts, text templates and the balancing subsample
    seed: int = 0
    # prompts per generate() call
    batch_size: int = 64
    # conversations per parquet shard
    shard_size: int = 4096

    def validate(self) -> None:
        if self.num_prompts < 1:
            raise ValueError(f"num_prompts: must be >= 1, got {self.num_prompts}")
        if not 0.0 < self.keep_share < 1.0:
            raise ValueError(f"keep_share: must be in (0, 1), got {self.keep_share}")
        if self.batch_size < 1 or self.shard_size < 1:
            raise ValueError("batch_size and shard_size must be >= 1")
        if self.world.layout != "grid":
            raise ValueError(
                "world.layout: self-reflection data needs the grid layout (keep rows read the cells)"
            )
        self.sampling.validate("sampling")


def label_example(
    meta: dict, think_1: str, image_1: np.ndarray, world: ShapesWorldConfig, rng: np.random.Generator
) -> ShapesExample:
    """One improving example from a sampled first image: keep it when the scorer says right, else a revise
    reflection towards a freshly laid-out correct image."""
    score_1 = score_image(image_1, meta, world)
    right = score_1.strict >= 1.0
    if right:
        target, image_2 = scene_from_cell_classes(image_to_cell_classes(image_1, world), world), image_1
    else:
        target = layout_scene(meta, world, rng)
        image_2 = render_scene(target, world)
    think_2 = write_reflection(meta, score_1, rng, target, world, style=world.reflection_style)
    kind = "model_right" if right else "model_wrong"
    return ShapesExample(meta, think_1, image_1, think_2, image_2, kind, score_1.strict)


def balance(right: list[int], wrong: list[int], keep_share: float, rng: np.random.Generator) -> list[int]:
    """Indices kept so that right / (right + wrong) == keep_share as closely as the counts allow (sorted)."""
    n_right = min(len(right), int(round(len(wrong) * keep_share / (1 - keep_share))))
    n_wrong = min(len(wrong), int(round(n_right * (1 - keep_share) / keep_share)))
    keep = list(rng.choice(right, n_right, replace=False)) if n_right else []
    keep += list(rng.choice(wrong, n_wrong, replace=False)) if n_wrong else []
    return sorted(int(i) for i in keep)


def write_rows(out: Path, examples: list[ShapesExample], shard_size: int = 4096) -> None:
    """The improving modes of `examples` as parquet shards, and one metadata.jsonl line per example."""
    buffers: dict[str, list] = {m: [] for m in IMPROVING_MODES}
    with open(out / "metadata.jsonl", "w") as f:
        for ex in examples:
            verdict = "keep" if ex.image_1_strict >= 1.0 else "revise"
            line = {
                "metadata": ex.meta,
                "image_1_strict": ex.image_1_strict,
                "verdict": verdict,
                "kind": ex.kind,
            }
            f.write(json.dumps(line) + "\n")
            convs = mode_conversations(ex)
            for mode in IMPROVING_MODES:
                buffers[mode].append(convs[mode])
    for mode in IMPROVING_MODES:
        rows = buffers[mode]
        for shard, lo in enumerate(range(0, len(rows), shard_size)):
            write_mode_shard(out, mode, rows[lo : lo + shard_size], shard=shard)


def build_self_reflection_data(out: str | Path, cfg: SelfReflectionDataConfig, log=print) -> dict:
    """Sample, label, balance and write; returns a summary (counts before and after balancing, files)."""
    from irg_rl.inference.components import build_components
    from irg_rl.inference.engine import IRGEngine
    from irg_rl.inference.engine_config import EngineConfig
    from irg_rl.models.configs import ModelRecipe

    cfg.validate()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    world = cfg.world
    sampling = dataclasses.replace(cfg.sampling, rounds=1, think=True, seed=cfg.seed)
    parts = build_components(
        EngineConfig(
            model=ModelRecipe(source=cfg.model),
            sampling=sampling,
            task=TaskSection(options=dataclasses.asdict(world)),
        )
    )
    engine = IRGEngine(parts.model, parts.tokenizer, parts.vae, sampling)
    metas = generate_prompts(world, cfg.num_prompts, seed=cfg.seed, split="train")
    examples: list[ShapesExample] = []
    for start in range(0, len(metas), cfg.batch_size):
        chunk = metas[start : start + cfg.batch_size]
        batch = engine.generate([m["prompt"] for m in chunk], chunk, 1, seed=cfg.seed + 1_000_003 * start)
        for i, (meta, traj) in enumerate(zip(chunk, batch.trajectories, strict=True)):
            rng = np.random.default_rng([cfg.seed, start + i])
            image_1 = traj.segment("image_1").image.numpy()
            examples.append(label_example(meta, traj.segment("think_1").text, image_1, world, rng))
        log(f"[self-reflection] sampled {min(start + cfg.batch_size, len(metas))}/{len(metas)} first images")
    right = [i for i, ex in enumerate(examples) if ex.kind == "model_right"]
    wrong = [i for i, ex in enumerate(examples) if ex.kind == "model_wrong"]
    kept = balance(right, wrong, cfg.keep_share, np.random.default_rng([cfg.seed, 7]))
    if not kept:
        raise ValueError(
            f"{cfg.model}: {len(right)} right and {len(wrong)} wrong first images; both are needed to balance keep "
            f"and revise rows (sample more prompts or use a checkpoint that gets some images right and some wrong)"
        )
    write_rows(out, [examples[i] for i in kept], cfg.shard_size)
    (out / "world.yaml").write_text(to_yaml(world))
    summary = {
        "out": str(out),
        "model": cfg.model,
        "sampled": len(examples),
        "image_1_right": len(right),
        "image_1_wrong": len(wrong),
        "rows": len(kept),
        "keep_rows": sum(examples[i].kind == "model_right" for i in kept),
        "modes": list(IMPROVING_MODES),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
