"""Shared helpers of the SFT tests: a small real ShapesWorld IRGL dataset and a tiny recipe."""

from __future__ import annotations

from pathlib import Path

from irg_rl.config import load_config
from irg_rl.tasks.shapes.data_builder import ShapesDataConfig, build_shapes_data
from irg_rl.train.sft.config import SFTRecipe

# a 2-layer, width-32 version of the tiny preset (ShapesWorld grid codec, 32 px images)
SMALL_MODEL = [
    "model.source=tiny",
    "model.hidden_size=32",
    "model.num_heads=2",
    "model.num_kv_heads=1",
    "model.intermediate_size=64",
    "model.num_layers=2",
]


def make_dataset(root: Path, num_prompts: int = 16) -> Path:
    build_shapes_data(root, ShapesDataConfig(num_prompts=num_prompts, preview_rows=1))
    return root


def small_recipe(data_root: Path, out: Path, *overrides: str) -> SFTRecipe:
    base = [
        f"data.root={data_root}",
        f"train.output_dir={out}",
        *SMALL_MODEL,
        "data.samples_per_micro_batch=4",
        "train.max_steps=3",
        "train.save_every=0",
        "train.resume_from=never",
        "optim.warmup_steps=0",
        "optim.lr=1e-3",
        "log.wandb_mode=disabled",
        "log.progress_bar=false",
    ]
    return load_config(SFTRecipe, None, base + list(overrides))


def reset_accelerate() -> None:
    """Accelerate keeps process-wide singletons; tests that build several trainers reset them in between."""
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    PartialState._reset_state()
