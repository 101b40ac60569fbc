"""ShapesWorld as a task plug-in (`irg_rl.tasks` entry point `shapes`): its prompts, checks and tokenizer texts.

`ShapesTask(**options)`: `options` are `ShapesWorldConfig` fields; an unknown one is an error naming it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from irg_rl.tasks.shapes.prompts import enumerate_prompts, generate_prompts, validate_meta
from irg_rl.tasks.shapes.text import HEADINGS, write_think1
from irg_rl.tasks.shapes.world import ShapesWorldConfig

__all__ = ["ShapesTask", "shapes_texts"]


def world_from_options(options: dict[str, Any]) -> ShapesWorldConfig:
    """A ShapesWorldConfig from a plain dict; ValueError naming unknown fields and listing the valid ones."""
    names = {f.name for f in dataclasses.fields(ShapesWorldConfig)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise ValueError(f"unknown ShapesWorld option(s) {unknown}; valid: {sorted(names)}")
    return ShapesWorldConfig(**options)


def shapes_texts(
    world: ShapesWorldConfig, extra: Sequence[str] = (), num: int = 300, seed: int = 0
) -> list[str]:
    """Texts to train a tokenizer for ShapesWorld: prompts, plans, reflection headings, then the non-empty `extra`."""
    metas = generate_prompts(world, num, seed=seed)
    rng = np.random.default_rng(seed)
    texts = [m["prompt"] for m in metas] + [write_think1(m, rng) for m in metas[: num // 2]] + list(HEADINGS)
    return texts + [t for t in extra if t]


class ShapesTask:
    """The embedded ShapesWorld task (see `irg_rl.tasks.shapes`)."""

    def __init__(self, **options: Any) -> None:
        self.world = world_from_options(options)

    def train_prompts(self, num: int, seed: int, balance: str = "tag") -> list[dict]:
        return generate_prompts(self.world, num, seed=seed, split="train", balance=balance)

    def heldout_prompts(self, num: int | None, seed: int = 0) -> list[dict]:
        if num is None:
            return enumerate_prompts(self.world, "heldout")
        return generate_prompts(self.world, num, seed=seed, split="heldout")

    def check_prompt(self, meta: dict, where: str) -> dict:
        return validate_meta(meta, self.world, where=where)

    def tokenizer_texts(self, extra: Sequence[str] = ()) -> list[str]:
        return shapes_texts(self.world, extra)

    def reward_args(self, reward_name: str) -> dict[str, Any]:
        # the exact scorer and the GenEval rules over the ShapesWorld detector must judge in this world
        return {"world": dataclasses.asdict(self.world)} if reward_name == "shapes" else {}
