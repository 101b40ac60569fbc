"""Layers point one way: a package imports only packages below it (any import, also inside functions).

Order, low to high: config, data, models, inference, rollout, train, then the drivers (eval; demo and bench, which
use eval), with
the ShapesWorld task (`tasks`) and the reward plug-ins (the top-level `rewards` package) on top. `KNOWN` lists
the upward imports that still exist, file by file; the test fails on any new one, and on a listed one that is
gone (shrink the list as the layering is repaired)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parent.parent / "irg_rl"
LAYER = {"config": 0, "data": 1, "models": 2, "inference": 3, "rollout": 4, "train": 5,
         "eval": 6, "tasks": 8, "rewards": 9}  # fmt: skip

# (importing file, imported package): upward edges not yet removed
KNOWN = {
    ("data/shapes_builder.py", "tasks"),
    ("data/shapes_self_builder.py", "inference"),
    ("data/shapes_self_builder.py", "models"),
    ("data/shapes_self_builder.py", "tasks"),
    ("eval/eval_config.py", "rewards"),
    ("eval/eval_config.py", "tasks"),
    ("eval/loaders.py", "rewards"),
    ("eval/loaders.py", "tasks"),
    ("eval/scoring.py", "rewards"),
    ("eval/shapes_detector.py", "rewards"),
    ("eval/shapes_detector.py", "tasks"),
    ("inference/components.py", "tasks"),
    ("inference/engine_config.py", "tasks"),
    ("rollout/rewards.py", "rewards"),
    ("rollout/weight_sync.py", "train"),
    ("train/rl_recipe.py", "tasks"),
    ("train/rl_setup.py", "tasks"),
    ("train/sft_setup.py", "tasks"),
}


def _imported_packages(path: Path) -> set[str]:
    rel = path.relative_to(ROOT).parts
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names = [node.module or ""]
            else:  # relative: resolve against this file's package
                base = list(rel[:-1])[: len(rel) - node.level]
                names = [".".join(["irg_rl", *base, *([node.module] if node.module else [])])]
        for name in names:
            parts = name.split(".")
            if parts[0] == "irg_rl" and len(parts) > 1:
                out.add(parts[1])
            elif parts[0] == "rewards":
                out.add("rewards")
    return out


def upward_edges() -> set[tuple[str, str]]:
    edges = set()
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if len(rel.parts) < 2 or rel.parts[0] not in LAYER:
            continue
        mine = LAYER[rel.parts[0]]
        for pkg in _imported_packages(path):
            if pkg in LAYER and pkg != rel.parts[0] and LAYER[pkg] >= mine:
                edges.add((rel.as_posix(), pkg))
    return edges


def test_no_new_upward_import():
    found = upward_edges()
    new = found - KNOWN
    assert not new, (
        f"imports that point up the layers (models <- inference <- rollout <- train <- drivers): {sorted(new)}"
    )


def test_known_list_shrinks_with_the_code():
    gone = KNOWN - upward_edges()
    assert not gone, f"these upward imports no longer exist; remove them from KNOWN: {sorted(gone)}"
