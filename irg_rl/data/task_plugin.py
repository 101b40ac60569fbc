"""Tasks are plug-ins: where prompts come from, and what a randomly initialised model needs to know about them.

A task (ShapesWorld is the one the project ships) registers a factory under the `irg_rl.tasks` entry-point
group (`NAME = "module:factory"` in its package's pyproject). `factory(**options)` returns an object with the
`Task` methods below; `options` are the task's own settings (ShapesWorld: its world fields `image_size`,
`grid_size`, `shapes`, `colors`, ...), given in a recipe as `task.options` (engine, evaluation) or
`prompts.options` (RL). The framework never imports a task module: it only calls these methods.

Prompts are GenEval-schema metadata dicts with at least a `"prompt"` string.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol

from irg_rl.config import ConfigError

__all__ = ["BALANCES", "ENTRY_POINT_GROUP", "Task", "TaskSection", "build_task", "task_names"]

ENTRY_POINT_GROUP = "irg_rl.tasks"

# how train prompts weigh: "tag" = the task's prompt categories take turns; "prompt" = every prompt equally likely
BALANCES = ("tag", "prompt")


class Task(Protocol):
    def train_prompts(self, num: int, seed: int, balance: str = "tag") -> list[dict]:
        """`num` prompts of the training split (disjoint from the held-out split); `balance` = how they weigh."""
        ...

    def heldout_prompts(self, num: int | None, seed: int = 0) -> list[dict]:
        """`num` held-out prompts (None = the whole split, in a fixed order)."""
        ...

    def check_prompt(self, meta: dict, where: str) -> dict:
        """`meta` checked against the task (ValueError naming `where` and the field otherwise)."""
        ...

    def tokenizer_texts(self, extra: Sequence[str] = ()) -> list[str]:
        """Texts to train a tokenizer for a randomly initialised model: prompts, plans, reflection phrases, then the
        non-empty `extra` (e.g. the system prompt)."""
        ...

    def reward_args(self, reward_name: str) -> dict[str, Any]:
        """Default arguments for a reward that scores this task's images (e.g. its world); {} for others."""
        ...


@dataclass
class TaskSection:
    """Which task plug-in, and its options."""

    # a task registered under the irg_rl.tasks entry points (the project ships "shapes" = ShapesWorld)
    name: str = "shapes"
    # the task's own settings (ShapesWorld: world fields such as image_size, grid_size, layout; {} = defaults)
    options: dict[str, Any] = field(default_factory=dict)


def task_names() -> list[str]:
    """Names of the installed task plug-ins."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def build_task(name: str | TaskSection, options: dict[str, Any] | None = None, where: str = "task") -> Task:
    """The task plug-in `name` built with `options`; ConfigError naming `where` when it is unknown or refuses them."""
    if isinstance(name, TaskSection):
        name, options = name.name, name.options
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        raise ConfigError(
            f"{where}.name={name!r}: no task plug-in of that name; installed under the '{ENTRY_POINT_GROUP}' "
            f"entry points: {task_names() or 'none'} (is irg-rl installed with `pip install -e .`?)"
        )
    factory = found[0].load()
    try:
        return factory(**dict(options or {}))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}.options for task {name!r}: {err}") from err
