"""The import contract in pyproject ([tool.importlinter]) holds, and covers every package of the framework.

Layers, low to high: config, data, models, distributed, inference, rollout, train, eval; the task plug-ins
(`irg_rl.tasks`) and the built-in rewards (`rewards.builtins`) sit on top and are found by name (entry points,
registry paths), never imported by the framework. Every import counts, also those inside functions.
"""

from __future__ import annotations

from pathlib import Path

import tomllib
from importlinter import cli

ROOT = Path(__file__).parent.parent
PLUGINS = {"tasks"}  # irg_rl subpackages that are plug-ins, not layers


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_import_contracts_are_kept(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert cli.lint_imports(config_filename="pyproject.toml", no_cache=True) == cli.EXIT_STATUS_SUCCESS


def test_every_framework_package_is_a_layer():
    """A new package cannot escape the contract: each irg_rl subpackage is a layer or a declared plug-in."""
    layers = next(c for c in _contracts() if c["type"] == "layers")["layers"]
    packages = {p.parent.name for p in (ROOT / "irg_rl").glob("*/__init__.py")}
    named = {name.removeprefix("irg_rl.") for name in layers}
    assert packages - PLUGINS == named - {"config"}, (
        f"irg_rl packages missing from the layers contract: {sorted(packages - PLUGINS - named)}; "
        f"layers naming no package: {sorted(named - {'config'} - packages)}"
    )


def test_plugins_are_forbidden_to_the_framework():
    forbidden = next(c for c in _contracts() if "plug-in" in c["name"])
    assert set(forbidden["forbidden_modules"]) >= {"irg_rl.tasks", "rewards.builtins"}
    layers = next(c for c in _contracts() if c["type"] == "layers")["layers"]
    assert set(forbidden["source_modules"]) == set(layers)


def test_every_shared_training_module_is_bound_by_the_sft_rl_split():
    """A module added beside sft/ and rl/ is a shared helper and must be listed as one (it may import neither)."""
    shared = next(c for c in _contracts() if c["name"].startswith("The shared training helpers"))
    modules = {
        f"irg_rl.train.{p.stem}" for p in (ROOT / "irg_rl" / "train").glob("*.py") if p.stem != "__init__"
    }
    assert modules == set(shared["source_modules"])
