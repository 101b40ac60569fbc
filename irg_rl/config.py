"""Typed recipes: dataclass schemas filled from YAML files (with inheritance) and `key=value` overrides.

A recipe file may name a base recipe with a top-level `base: other.yaml` (a path relative to the file, or a list
of paths merged left to right); the file's own keys override the base's. Every schema field is documented by a
one-line comment above it (tests enforce this). Errors name the key, the file it came from, and the closest
valid key.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import inspect
import sys
import textwrap
import typing
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")

__all__ = ["MISSING", "ConfigError", "load_config", "parse_cli", "to_yaml", "config_from_dict"]

BASE_KEY = "base"


def require(cond: bool, section: str, key: str, msg: str) -> None:
    """Raise ConfigError "<section>.<key>: <msg>" unless `cond` (what every schema's validate() uses)."""
    if not cond:
        raise ConfigError(f"{section}.{key}: {msg}")


class ConfigError(ValueError):
    """A recipe could not be turned into a valid typed config; the message says where and how to fix it."""


def _schema_fields(schema: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(schema)}


def _resolved_hints(schema: type) -> dict[str, Any]:
    return typing.get_type_hints(schema)


def _nested_dataclass(tp: Any) -> type | None:
    """The dataclass behind a field type, unwrapping Optional[...]."""
    if dataclasses.is_dataclass(tp):
        return tp
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if (
        typing.get_origin(tp) in (typing.Union, getattr(__import__("types"), "UnionType", None))
        and len(args) == 1
    ):
        return _nested_dataclass(args[0])
    return None


def _check_keys(schema: type, data: Any, source: str, prefix: str = "") -> None:
    """Reject unknown keys anywhere in `data`, naming the dotted key, the source and the closest valid key."""
    if not isinstance(data, dict):
        return
    fields = _schema_fields(schema)
    hints = _resolved_hints(schema)
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        moved = getattr(schema, "MOVED_KEYS", {})
        if key in moved:
            raise ConfigError(
                f"{source}: '{dotted}' is no longer a key; set '{moved[key]}' instead (each setting has one home)"
            )
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.5)
            hint = f" Did you mean '{prefix}{close[0]}'?" if close else ""
            valid = ", ".join(sorted(fields))
            raise ConfigError(
                f"{source}: unknown key '{dotted}' for {schema.__name__}.{hint} Valid keys here: {valid}."
            )
        sub = _nested_dataclass(hints[key])
        if sub is not None and isinstance(value, dict):
            _check_keys(sub, value, source, prefix=f"{dotted}.")


def _load_yaml_layers(path: Path, seen: tuple[Path, ...] = ()) -> list[tuple[str, dict]]:
    """Return [(source, dict)] for the file and its bases, bases first."""
    path = path.resolve()
    if path in seen:
        chain = " -> ".join(str(p) for p in (*seen, path))
        raise ConfigError(f"{path}: recipe inheritance loops: {chain}")
    if not path.is_file():
        raise ConfigError(f"recipe file not found: {path}")
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as err:  # yaml syntax errors come in several exception types
        raise ConfigError(f"{path}: cannot parse YAML: {err}") from err
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of keys to values, got {type(raw).__name__}")
    bases = raw.pop(BASE_KEY, None)
    layers: list[tuple[str, dict]] = []
    for base in [bases] if isinstance(bases, str) else list(bases or []):
        layers.extend(_load_yaml_layers(path.parent / base, (*seen, path)))
    layers.append((str(path), raw))
    return layers


@dataclasses.dataclass(frozen=True)
class _IndexedOverride:
    """A `key=value` override whose key indexes into a list (`rewards.image.0.args.mode=strict`)."""

    key: str
    value: Any


def _parse_overrides(overrides: list[str]) -> list[tuple[str, Any]]:
    layers = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(
                f"command line: override '{item}' is not of the form key=value (e.g. optim.lr=1e-4)"
            )
        key, raw = item.split("=", 1)
        source = f"command-line override '{key}'"
        if any(part.isdigit() for part in key.split(".")):
            # a nested dict layer cannot merge into a list; update the merged config in place instead
            value = OmegaConf.to_container(OmegaConf.from_dotlist([f"v={raw}"]))["v"]
            layers.append((source, _IndexedOverride(key, value)))
        else:
            layers.append((source, OmegaConf.to_container(OmegaConf.from_dotlist([item]))))
    return layers


def _apply_indexed(merged, override: _IndexedOverride, source: str) -> None:
    node, path = merged, []
    for part in override.key.split(".")[:-1]:
        if OmegaConf.is_list(node):
            if not (part.isdigit() and int(part) < len(node)):
                where = ".".join(path)
                raise ConfigError(
                    f"{source}: index {part} is out of range for '{where}' ({len(node)} entries); "
                    f"set the whole list instead, e.g. {where}=[...]"
                )
            node = node[int(part)]
        elif OmegaConf.is_dict(node) and part in node:
            node = node[part]
        else:
            raise ConfigError(f"{source}: '{'.'.join([*path, part])}' does not exist in the recipe")
        path.append(part)
    OmegaConf.update(merged, override.key, override.value, merge=True)


def _missing_markers(data: Any, prefix: str = "") -> list[str]:
    """Dotted keys a layer marks as required with `???` (merging would otherwise keep the default)."""
    if not isinstance(data, dict):
        return []
    found = []
    for key, value in data.items():
        if value == MISSING:
            found.append(f"{prefix}{key}")
        found += _missing_markers(value, f"{prefix}{key}.")
    return found


def _merge_layers(schema: type[T], layers: list[tuple[str, dict | _IndexedOverride]]) -> T:
    merged = OmegaConf.structured(schema)
    for source, data in layers:
        try:
            if isinstance(data, _IndexedOverride):
                _apply_indexed(merged, data, source)
                continue
            _check_keys(schema, data, source)
            merged = OmegaConf.merge(merged, data)
            for key in _missing_markers(data):
                OmegaConf.update(merged, key, MISSING)
        except OmegaConfBaseException as err:
            key = getattr(err, "full_key", None) or "?"
            raise ConfigError(f"{source}: invalid value for '{key}': {err.msg}") from err
    missing = sorted(OmegaConf.missing_keys(merged))
    if missing:
        sources = ", ".join(s for s, _ in layers) or "defaults"
        raise ConfigError(
            f"missing required value(s) {', '.join(repr(m) for m in missing)} (read from: {sources}); "
            f"set them in the recipe or pass key=value on the command line"
        )
    obj = OmegaConf.to_object(merged)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate()
    return obj  # type: ignore[return-value]


def load_config(schema: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Build a `schema` instance from a recipe file (with its bases) and dotted `key=value` overrides."""
    layers = _load_yaml_layers(Path(path)) if path is not None else []
    layers += _parse_overrides(list(overrides or []))
    return _merge_layers(schema, layers)


def config_from_dict(schema: type[T], data: dict, source: str = "<dict>") -> T:
    """Build a `schema` instance from a plain dict (used by tests and by code that builds recipes)."""
    return _merge_layers(schema, [(source, data)])


def to_yaml(cfg: Any) -> str:
    """The resolved recipe as YAML text (what `--print-config` prints and what runs save beside checkpoints)."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def to_container(cfg: Any) -> dict:
    """The resolved recipe as plain Python containers (for wandb and JSON)."""
    out = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)
    assert isinstance(out, dict)
    return out


def _field_comments(cls: type) -> dict[str, str]:
    """field name -> the comment lines right above it in the class source (the schema's help text)."""
    try:
        src = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    lines = src.splitlines()
    out = {}
    for node in ast.parse(src).body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            above, i = [], node.lineno - 2
            while i >= 0 and lines[i].strip().startswith("#"):
                above.insert(0, lines[i].strip().lstrip("#").strip())
                i -= 1
            out[node.target.id] = " ".join(above)
    return out


def schema_help(schema: type, prefix: str = "", instance: Any = None) -> list[tuple[str, str, str]]:
    """(dotted key, default, help) for every leaf setting of a recipe schema, nested sections included; the help
    is the comment above the field in the schema's source (one home per setting)."""
    if instance is None:
        try:
            instance = schema()
        except Exception:  # a schema with required arguments: defaults from the fields alone
            instance = None
    comments: dict[str, str] = {}
    for cls in reversed(schema.__mro__):  # inherited fields keep their base class's comment
        if dataclasses.is_dataclass(cls):
            comments.update({k: v for k, v in _field_comments(cls).items() if v})
    rows = []
    for f in dataclasses.fields(schema):
        value = getattr(instance, f.name, None) if instance is not None else f.default
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            rows.extend(schema_help(type(value), key + ".", value))
        else:
            shown = "???" if value is MISSING or value is dataclasses.MISSING else repr(value)
            rows.append((key, shown, comments.get(f.name, "")))
    return rows


def keys_epilog(schema: type) -> str:
    """The `--help` epilog listing every recipe key of `schema` with its default and help (for any script's parser)."""
    lines = ["recipe keys (key = default: help); override any with key=value:"]
    for key, default, text in schema_help(schema):
        lines.append(f"  {key} = {default}" + (f"\n      {text}" if text else ""))
    return "\n".join(lines)


def parse_cli(schema: type[T], argv: list[str] | None = None, description: str | None = None) -> T:
    """Parse `--config PATH [key=value ...] [--print-config]`; print the recipe and exit when asked. `--help` lists
    every recipe key with its default and the schema's comment for it."""
    parser = argparse.ArgumentParser(
        description=description or schema.__doc__,
        epilog=keys_epilog(schema),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=str, default=None, help="recipe YAML file")
    parser.add_argument("--print-config", action="store_true", help="print the resolved recipe and exit")
    parser.add_argument(
        "overrides",
        nargs="*",
        help="dotted key=value overrides of the recipe, e.g. optim.lr=1e-4 train.max_steps=10 (--print-config lists every key)",
    )
    args = parser.parse_args(argv)
    try:
        cfg = load_config(schema, args.config, args.overrides)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.print_config:
        print(to_yaml(cfg), end="")
        raise SystemExit(0)
    return cfg


def is_config_node(value: Any) -> bool:
    return isinstance(value, (DictConfig, ListConfig))
