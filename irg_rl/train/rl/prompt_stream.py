"""Where an RL run's prompts come from, and the one random stream that decides what is sampled.

`PromptStream` draws each step's prompts, step seeds and SDE window starts from one generator per rank, seeded by
(train.seed, rank, step); its state is saved with every checkpoint so a resumed run draws exactly what an
uninterrupted one would. Prompts: a task plug-in's train split (`prompts.source` names the task) or a JSONL file.
"""

from __future__ import annotations

import numpy as np

from irg_rl.data.jsonl import read_jsonl_objects
from irg_rl.data.task_plugin import build_task, task_names

__all__ = ["PromptStream", "load_prompts", "heldout_prompts"]


def _read_jsonl(path: str) -> list[dict]:
    rows = []
    for i, row in read_jsonl_objects(path):
        if not isinstance(row.get("prompt"), str):
            raise ValueError(f"{path}:{i}: each line must be an object with a string 'prompt' field")
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no prompts")
    return rows


def load_prompts(section, seed: int) -> list[dict]:
    """Training prompts as metadata dicts with a 'prompt' key: a task plug-in's train split, or a JSONL file."""
    if section.source in task_names():
        task = build_task(section.source, section.options, where="prompts")
        return task.train_prompts(section.num_train, seed=seed, balance=section.balance)
    return _read_jsonl(section.source)


def heldout_prompts(recipe) -> list[dict]:
    """Held-out evaluation prompts (the task's held-out split, or `eval.file`); [] when there are none."""
    if recipe.prompts.source in task_names():
        task = build_task(recipe.prompts.source, recipe.prompts.options, where="prompts")
        return task.heldout_prompts(recipe.eval.num_prompts, seed=recipe.eval.seed)
    return _read_jsonl(recipe.eval.file)[: recipe.eval.num_prompts] if recipe.eval.file else []


class PromptStream:
    """Training prompts and the rank's sampling generator (prompt draws, step seeds, SDE window starts)."""

    def __init__(self, prompts: list[dict], seed: int, rank: int, step: int):
        self.prompts = prompts
        self.rng = np.random.default_rng([seed * 1_000_003 + rank * 7919, step])

    def draw(self, n: int) -> list[dict]:
        """`n` prompts, drawn with replacement only when there are fewer than `n`."""
        idx = self.rng.choice(len(self.prompts), size=n, replace=len(self.prompts) < n)
        return [self.prompts[int(i)] for i in idx]

    def step_seed(self) -> int:
        return int(self.rng.integers(0, 2**31 - 1))

    def window_start(self, max_start: int) -> int:
        """An SDE window start drawn uniformly from [0, max_start]."""
        return int(self.rng.integers(0, max_start + 1))

    def state(self) -> dict:
        return {"bit_generator": self.rng.bit_generator.state}

    def restore(self, state: dict) -> None:
        self.rng.bit_generator.state = state["bit_generator"]
