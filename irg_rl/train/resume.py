"""What may change when a run resumes, and the records that must agree with the resumed step (SFT, GRPO, DPO).

A checkpoint keeps the recipe it was trained with (`step-N/recipe.yaml`). On resume the current recipe is compared
with it key by key:
- keys in `SAFE_KEYS` (how long to run, how often to save / log / evaluate, threads, where to write) may change;
  they are listed in the log;
- any other changed key (group size, prompts per step, model, LoRA, rewards, learning rate, ...) changes what a
  step means and is refused with an error naming each key and both values, unless `train.allow_recipe_change`;
- an allowed change of `optim.lr` takes effect: the restored scheduler's base learning rates are rescaled to it.
A key the checkpoint's recipe does not have (written by an older version) is not compared.

`truncate_jsonl` / `truncate_history` drop records past the checkpoint's step, atomically, so a log written by a
run that died after its last checkpoint holds each step once after the resume.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from irg_rl.config import ConfigError, to_container

__all__ = [
    "SAFE_KEYS",
    "flatten",
    "recipe_changes",
    "check_recipe_change",
    "rescale_lr",
    "truncate_jsonl",
    "truncate_history",
]

# dotted keys (or prefixes ending in ".") that may change on resume without changing what a step means
SAFE_KEYS = (
    "train.max_steps",
    "train.save_every",
    "train.keep_last",
    "train.resume_from",
    "train.log_every",
    "train.save_trajectories_every",
    "train.image_grid_every",
    "train.image_grid_rows",
    "train.cpu_threads",
    "train.stop_after_steps",
    "train.strict_ratio_check",
    "train.allow_recipe_change",
    "train.output_dir",
    "log.",
    "eval.",
)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> {"a.b.c": leaf}; lists are leaves."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(flatten(v, f"{prefix}{k}." if isinstance(v, dict) else f"{prefix}{k}"))
    return out


def _safe(key: str) -> bool:
    return any(key == s or (s.endswith(".") and key.startswith(s)) for s in SAFE_KEYS)


def recipe_changes(
    saved: dict, current: dict
) -> tuple[list[tuple[str, Any, Any]], list[tuple[str, Any, Any]]]:
    """(safe, other) lists of (key, saved value, current value) for every key present in both that differs."""
    a, b = flatten(saved), flatten(current)
    changed = [(k, a[k], b[k]) for k in sorted(a.keys() & b.keys()) if a[k] != b[k]]
    return [c for c in changed if _safe(c[0])], [c for c in changed if not _safe(c[0])]


def _drop_moved_keys(saved: dict, recipe) -> dict:
    """A checkpoint's recipe without keys that have since moved to another section (a schema's MOVED_KEYS): the
    trainer synced their old twins before saving, so the new home in the saved recipe already holds the value."""
    for f in dataclasses.fields(recipe):
        moved = getattr(type(getattr(recipe, f.name)), "MOVED_KEYS", {})
        section = saved.get(f.name)
        if moved and isinstance(section, dict):
            for key in moved:
                section.pop(key, None)
    return saved


def check_recipe_change(checkpoint: Path, recipe, allow: bool, log=print) -> list[tuple[str, Any, Any]]:
    """Compare `recipe` with `checkpoint/recipe.yaml`; log safe changes, refuse the others unless `allow`.

    Returns every change (safe and allowed). Raises ConfigError naming each refused key with both values."""
    path = Path(checkpoint) / "recipe.yaml"
    if not path.is_file():
        log(f"resume: {path} is missing; the recipe cannot be compared with the checkpoint's")
        return []
    saved = _drop_moved_keys(OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}, recipe)
    safe, other = recipe_changes(saved, to_container(recipe))
    if other and not allow:
        lines = "; ".join(f"{k}: {old!r} in the checkpoint, {new!r} now" for k, old, new in other)
        raise ConfigError(
            f"resuming from {checkpoint} with a recipe that changes what a step means: {lines}. Resume with the "
            f"checkpoint's values, start a new run (another train.output_dir or train.resume_from=never), or set "
            f"train.allow_recipe_change=true to continue with the new values"
        )
    for k, old, new in safe + other:
        log(f"resume: {k} changed {old!r} -> {new!r}" + ("" if _safe(k) else " (train.allow_recipe_change)"))
    return safe + other


def rescale_lr(optimizer, scheduler, changes: list[tuple[str, Any, Any]], new_lr: float) -> None:
    """Make a restored LambdaLR schedule run at `new_lr` when `changes` (from `check_recipe_change`) say the
    checkpoint was trained at another `optim.lr` (its base learning rates were saved at that value)."""
    old_lr = float(next((old for k, old, _ in changes if k == "optim.lr"), new_lr))
    if old_lr == new_lr:
        return
    if old_lr <= 0:
        raise ConfigError(f"resume: cannot rescale a schedule saved with optim.lr={old_lr} to {new_lr}")
    ratio = new_lr / old_lr
    scheduler.base_lrs = [b * ratio for b in scheduler.base_lrs]
    for group, base, lmbda in zip(
        optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True
    ):
        group["initial_lr"] = base
        group["lr"] = base * lmbda(scheduler.last_epoch)
    scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def truncate_jsonl(path: Path, step: int) -> int:
    """Drop the lines of a `{"step": ...}` JSONL log whose step is past `step` (atomically); returns how many.

    A line that is not JSON (a write cut by the crash) is dropped too; a missing file is left alone."""
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            dropped += 1
            continue
        if isinstance(row, dict) and int(row.get("step", 0)) > step:
            dropped += 1
        else:
            kept.append(line)
    if dropped:
        _write_atomic(path, "".join(line + "\n" for line in kept))
    return dropped


def truncate_history(path: Path, step: int) -> list[dict]:
    """The records of a JSON list log (e.g. eval.json) up to `step`; [] when the file is missing."""
    if not path.is_file():
        return []
    rows = json.loads(path.read_text())
    return [r for r in rows if int(r.get("step", 0)) <= step]
