"""Shared helpers for tests/test_rl_*.py: a small random checkpoint on disk and a tiny GRPO/DPO recipe."""

from __future__ import annotations

from pathlib import Path

import pytest
from _engine_helpers import SYSTEM, components

from irg_rl.config import config_from_dict
from irg_rl.models.checkpoint import save_checkpoint

# small LoRA adapters on the generation expert's attention and the velocity head (recipe overrides)
LORA = {
    "freeze.lora.enabled": True,
    "freeze.lora.target_modules": r".*(q_proj|v_proj|o_proj)_moe_gen|llm2vae",
    "freeze.lora.r": 4,
}


def random_checkpoint(root: Path, seed: int = 3) -> Path:
    """Save the engine tests' random model (every weight random) with its tokenizer and grid codec."""
    model, tok, vae = components(seed=seed)
    return save_checkpoint(model, root / "ckpt", tokenizer=tok, vae=vae)


def recipe_dict(ckpt: Path, out: Path, **over) -> dict:
    d = {
        "model": {"source": str(ckpt)},
        "sampling": {
            "system_prompt": SYSTEM,
            "steps": 6,
            "resolution": 32,
            "turn1": {
                "temperature": 0.7,
                "max_think_tokens": 6,
                "cfg_text_scale": 3.0,
                "cfg_interval": [0.4, 1.0],
            },
            "turn2": {
                "temperature": 0.7,
                "max_think_tokens": 8,
                "cfg_text_scale": 3.0,
                "cfg_img_scale": 2.0,
                "cfg_renorm_type": "text_channel",
            },
        },
        "prompts": {"num_train": 16, "per_step": 2},
        "rewards": {
            "image": [{"name": "shapes", "args": {"mode": "partial"}}],
            "format_args": {"min_chars": 0},
        },
        "optim": {"lr": 1e-3},
        "train": {
            "output_dir": str(out),
            "max_steps": 1,
            "save_every": 0,
            "image_grid_every": 1,
            "resume_from": "never",
        },
        "eval": {"at_start": False, "num_prompts": 4},
        "log": {"wandb_mode": "disabled", "progress_bar": False},
    }
    return _apply(d, over)


def grpo_recipe(ckpt: Path, out: Path, **over):
    from irg_rl.train.rl.recipe import GRPORecipe

    base = {
        "grpo": {
            "group_size": 4,
            "inner_updates": 2,
            "flow_clip_low": 0.2,
            "flow_clip_high": 0.2,
        }
    }
    d = recipe_dict(ckpt, out, **{"sampling.sde_window_size": 2, "sampling.sde_window_start": 1})
    d.update(base)
    return config_from_dict(GRPORecipe, _apply(d, over))


def dpo_recipe(ckpt: Path, out: Path, **over):
    from irg_rl.train.rl.recipe import DPORecipe

    d = recipe_dict(ckpt, out, **{"eval.num_prompts": 0})
    d.update({"pairs": {"group_size": 4}, "dpo": {"beta_text": 0.1, "beta_flow": 100.0}})
    return config_from_dict(DPORecipe, _apply(d, over))


def _apply(d: dict, over: dict) -> dict:
    for key, value in over.items():
        node = d
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return d


@pytest.fixture(scope="module", autouse=True)
def ray_local():
    """A local Ray instance for the test module (import this fixture into a module that needs Ray)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()
