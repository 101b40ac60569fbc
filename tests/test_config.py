import ast
import dataclasses
import inspect
import textwrap

import pytest

from irg_rl.config import MISSING, ConfigError, load_config, parse_cli


@dataclasses.dataclass
class Optim:
    # learning rate
    lr: float = 1e-4
    # number of warmup steps
    warmup_steps: int = 0


@dataclasses.dataclass
class Recipe:
    # where outputs go
    output_dir: str = MISSING
    # optimiser settings
    optim: Optim = dataclasses.field(default_factory=Optim)
    # random seed
    seed: int = 0


def _write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


def test_inheritance_and_overrides(tmp_path):
    base = _write(tmp_path / "base.yaml", "output_dir: out\noptim:\n  lr: 0.5\n  warmup_steps: 3\n")
    child = _write(tmp_path / "child.yaml", "base: base.yaml\noptim:\n  lr: 0.25\n")
    cfg = load_config(Recipe, child, ["seed=7"])
    assert cfg == Recipe(output_dir="out", optim=Optim(lr=0.25, warmup_steps=3), seed=7)
    assert base.exists()


def test_misspelled_key_names_key_file_and_suggestion(tmp_path):
    path = _write(tmp_path / "r.yaml", "output_dir: out\noptim:\n  warmup_step: 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(Recipe, path)
    msg = str(info.value)
    assert "optim.warmup_step" in msg and str(path) in msg and "optim.warmup_steps" in msg


def test_wrong_type_and_missing_value(tmp_path):
    path = _write(tmp_path / "r.yaml", "output_dir: out\nseed: abc\n")
    with pytest.raises(ConfigError, match=r"r.yaml.*seed"):
        load_config(Recipe, path)
    with pytest.raises(ConfigError, match="output_dir"):
        load_config(Recipe, None, [])
    with pytest.raises(ConfigError, match="command-line override 'sed'.*Did you mean 'seed'"):
        load_config(Recipe, None, ["output_dir=x", "sed=1"])


def test_print_config(capsys, tmp_path):
    path = _write(tmp_path / "r.yaml", "output_dir: out\n")
    with pytest.raises(SystemExit) as info:
        parse_cli(Recipe, ["--config", str(path), "optim.lr=0.1", "--print-config"])
    assert info.value.code == 0
    assert "lr: 0.1" in capsys.readouterr().out


RECIPE_ROOTS = (
    "irg_rl.train.sft.config:SFTRecipe",
    "irg_rl.train.rl.recipe:GRPORecipe",
    "irg_rl.train.rl.recipe:NFTRecipe",
    "irg_rl.train.rl.recipe:DPORecipe",
    "irg_rl.eval.eval_config:EvalRecipe",
    "irg_rl.inference.engine_config:EngineConfig",
    "irg_rl.tasks.shapes.data_builder:ShapesDataConfig",
    "irg_rl.tasks.shapes.self_builder:SelfReflectionDataConfig",
)


def _schema_classes():
    """Every dataclass a recipe file can fill: the recipe roots and every section reachable from them (nested
    fields, list items, unions), plus the library's other *Config / *Recipe / *Spec dataclasses."""
    import importlib
    import pkgutil
    import typing

    import irg_rl

    def nested(tp):
        if dataclasses.is_dataclass(tp) and inspect.isclass(tp):
            yield tp
        for arg in typing.get_args(tp):
            yield from nested(arg)

    found: dict[type, None] = {}
    todo = []
    for root in RECIPE_ROOTS:
        mod, name = root.split(":")
        todo.append(getattr(importlib.import_module(mod), name))
    for mod in pkgutil.walk_packages(irg_rl.__path__, "irg_rl."):
        module = importlib.import_module(mod.name)
        for _, obj in inspect.getmembers(module, dataclasses.is_dataclass):
            if (
                inspect.isclass(obj)
                and obj.__module__ == module.__name__
                and obj.__name__.endswith(("Config", "Recipe", "Spec", "Section", "Settings"))
            ):
                todo.append(obj)
    while todo:
        cls = todo.pop()
        if cls in found:
            continue
        found[cls] = None
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            todo.extend(nested(hints[f.name]))
    return list(found)


def test_every_config_field_has_a_comment():
    missing = []
    for cls in _schema_classes():
        src = inspect.getsource(cls).splitlines()
        tree = ast.parse(textwrap.dedent("\n".join(src)))
        for node in tree.body[0].body:
            if isinstance(node, ast.AnnAssign):
                above = src[node.lineno - 2].strip() if node.lineno >= 2 else ""
                if not above.startswith("#"):
                    missing.append(f"{cls.__module__}.{cls.__name__}.{node.target.id}")
    assert not missing, f"fields without a one-line comment above them: {missing}"


def test_required_marker_in_a_recipe_is_enforced(tmp_path):
    path = _write(tmp_path / "r.yaml", "output_dir: out\noptim:\n  lr: ???\n")
    with pytest.raises(ConfigError, match="optim.lr"):
        load_config(Recipe, path)
    assert load_config(Recipe, path, ["optim.lr=0.5"]).optim.lr == 0.5


def test_override_into_a_list_entry():
    from pathlib import Path

    from irg_rl.train.rl.recipe import GRPORecipe

    recipe = Path(__file__).parent.parent / "recipes" / "shapes" / "grpo.yaml"
    r = load_config(GRPORecipe, recipe, ["rewards.image.0.args.mode=strict", "rewards.image.0.weight=2"])
    assert r.rewards.image[0].args == {"mode": "strict"} and r.rewards.image[0].weight == 2.0
    assert r.rewards.metrics[0].args == {"mode": "strict"}  # the other list is untouched
    with pytest.raises(ConfigError, match=r"index 3 is out of range for 'rewards.image' \(1 entries\)"):
        load_config(GRPORecipe, recipe, ["rewards.image.3.args.mode=strict"])
    with pytest.raises(ConfigError, match="wieght.*Did you mean: 'weight'"):
        load_config(GRPORecipe, recipe, ["rewards.image.0.wieght=2"])


def test_help_lists_every_key_with_its_default_and_comment(capsys):
    from irg_rl.config import parse_cli, schema_help
    from irg_rl.eval.eval_config import EvalRecipe
    from irg_rl.train.rl.recipe import DPORecipe, GRPORecipe, NFTRecipe
    from irg_rl.train.sft.config import SFTRecipe

    for schema in (SFTRecipe, DPORecipe, EvalRecipe):  # every key of every recipe has its help
        assert all(text for _, _, text in schema_help(schema)), [
            k for k, _, t in schema_help(schema) if not t
        ]
    for schema in (GRPORecipe, NFTRecipe):
        rows = schema_help(schema)
        assert rows and all(text for _, _, text in rows), [k for k, _, t in rows if not t]
        with pytest.raises(SystemExit):
            parse_cli(schema, ["--help"])
        out = capsys.readouterr().out
        for key, default, _ in rows:
            assert f"  {key} = {default}" in out, key
    assert "grpo.flow_ratio = 'standard'" in out and "GRPO-Guard" in out  # NFT inherits GRPO's section
    assert "nft.beta = 1.0" in out and "reference = 'auto'" in out


SCRIPT_SCHEMAS = {
    "sft": "irg_rl.train.sft.config:SFTRecipe",
    "grpo": "irg_rl.train.rl.recipe:GRPORecipe",
    "dpo": "irg_rl.train.rl.recipe:DPORecipe",
    "nft": "irg_rl.train.rl.recipe:NFTRecipe",
    "eval": "irg_rl.eval.eval_config:EvalRecipe",
    "generate": "irg_rl.inference.engine_config:EngineConfig",
    "make_shapes_data": "irg_rl.tasks.shapes.data_builder:ShapesDataConfig",
    "make_self_reflection_data": "irg_rl.tasks.shapes.self_builder:SelfReflectionDataConfig",
}


@pytest.mark.parametrize("script", sorted(SCRIPT_SCHEMAS))
def test_every_script_help_lists_every_recipe_key(script):
    import importlib
    import subprocess
    import sys
    from pathlib import Path

    from irg_rl.config import schema_help

    mod, name = SCRIPT_SCHEMAS[script].split(":")
    rows = schema_help(getattr(importlib.import_module(mod), name))
    root = Path(__file__).parent.parent
    out = subprocess.run(
        [sys.executable, str(root / "scripts" / f"{script}.py"), "--help"],
        capture_output=True,
        text=True,
        cwd=root,
    ).stdout
    missing = [key for key, default, _ in rows if f"  {key} = {default}" not in out]
    assert rows and not missing, f"scripts/{script}.py --help lacks {missing[:5]}"
