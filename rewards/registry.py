"""Reward registry: built-ins by name, plug-ins from the `irg_rl.rewards` entry-point group, and
`package.module:factory` paths. Duplicate names are an error, never a silent override.

A factory is any callable returning a `Reward` (usually the class itself); its keyword arguments come from
`RewardSpec.args`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from typing import Any

from rewards.contract import Reward
from rewards.spec import RewardSpec

__all__ = [
    "ENTRY_POINT_GROUP",
    "RegistryError",
    "register_reward",
    "unregister_reward",
    "available_rewards",
    "resolve_factory",
    "build_reward",
    "describe",
]

ENTRY_POINT_GROUP = "irg_rl.rewards"

# name -> "module:attribute"; imported only when used so heavy optional dependencies stay optional
BUILTINS: dict[str, str] = {
    "shapes": "rewards.builtins.shapes:ShapesReward",
    "shapes_reading": "rewards.builtins.shapes:ShapesReadingReward",
    "geneval": "rewards.builtins.geneval.reward:GenEvalReward",
    "clip_score": "rewards.builtins.clip_score:ClipScoreReward",
    "pickscore": "rewards.builtins.pickscore:PickScoreReward",
    "hps": "rewards.builtins.hps:HPSReward",
    "aesthetic": "rewards.builtins.aesthetic:AestheticReward",
    "ocr": "rewards.builtins.ocr:OCRReward",
    "vqa_score": "rewards.builtins.vqa_score:VQAScoreReward",
    "vlm_judge": "rewards.builtins.vlm_judge:VLMJudgeReward",
    "reflection_format": "rewards.builtins.reflection:ReflectionFormatReward",
    "improvement": "rewards.builtins.reflection:ImprovementReward",
    "no_regression": "rewards.builtins.reflection:NoRegressionReward",
    "verdict": "rewards.builtins.reflection:VerdictReward",
}

# rewards registered at run time with `register_reward` (tests, notebooks)
_RUNTIME: dict[str, Callable[..., Reward]] = {}


class RegistryError(LookupError):
    """A reward name is unknown, ambiguous (registered twice) or its factory cannot be imported."""


def _entry_points() -> dict[str, Any]:
    """Plug-ins advertised by installed packages, name -> EntryPoint; duplicates across packages are an error."""
    found: dict[str, Any] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found and found[ep.name].value != ep.value:
            raise RegistryError(
                f"reward '{ep.name}' is registered twice in entry-point group '{ENTRY_POINT_GROUP}': "
                f"{found[ep.name].value} and {ep.value}; uninstall one of the packages"
            )
        found[ep.name] = ep
    return found


def _all_sources() -> dict[str, str | Callable[..., Reward] | Any]:
    """Every registered name with its source; raises RegistryError on a name defined in two places."""
    merged: dict[str, Any] = dict(BUILTINS)
    for source_name, extra in (
        ("register_reward", _RUNTIME),
        (f"entry point group '{ENTRY_POINT_GROUP}'", None),
    ):
        items = extra if extra is not None else _entry_points()
        for name, target in items.items():
            if name in merged:
                raise RegistryError(
                    f"reward name '{name}' is defined twice: already {_where(merged[name])}, again by {source_name}"
                    f" ({_where(target)}); rename one of them"
                )
            merged[name] = target
    return merged


def _where(target: Any) -> str:
    if isinstance(target, str):
        return target
    if hasattr(target, "value"):  # EntryPoint
        return target.value
    return f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', repr(target))}"


def register_reward(name: str, factory: Callable[..., Reward] | None = None):
    """Register `factory` under `name` (usable as a decorator). Re-using a name is a RegistryError."""

    def add(fn: Callable[..., Reward]) -> Callable[..., Reward]:
        if name in BUILTINS or name in _RUNTIME or name in _entry_points():
            raise RegistryError(f"reward name '{name}' is already registered; pick another name")
        _RUNTIME[name] = fn
        return fn

    return add(factory) if factory is not None else add


def unregister_reward(name: str) -> None:
    """Remove a run-time registration (built-ins and entry points cannot be removed)."""
    _RUNTIME.pop(name, None)


def _import_path(path: str) -> Callable[..., Reward]:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise RegistryError(f"'{path}' is not a 'package.module:factory' path")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise RegistryError(f"cannot import module '{module_name}' for reward '{path}': {e}") from e
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise RegistryError(f"module '{module_name}' has no attribute '{attr}' (reward path '{path}')")
        obj = getattr(obj, part)
    if not callable(obj):
        raise RegistryError(f"'{path}' is not callable; point it at a Reward class or factory function")
    return obj


def resolve_factory(name: str) -> Callable[..., Reward]:
    """The factory for a registered name or a `package.module:factory` path."""
    if ":" in name:
        return _import_path(name)
    sources = _all_sources()
    if name not in sources:
        import difflib

        close = difflib.get_close_matches(name, list(sources), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise RegistryError(
            f"unknown reward '{name}'.{hint} Registered: {', '.join(sorted(sources))}. "
            "Plug-ins can also be named as 'package.module:factory'."
        )
    target = sources[name]
    if isinstance(target, str):
        return _import_path(target)
    if hasattr(target, "load") and hasattr(target, "group"):  # EntryPoint
        try:
            return target.load()
        except Exception as e:  # noqa: BLE001 - the plug-in's own import error, re-raised with context
            raise RegistryError(f"entry point '{name}' ({target.value}) failed to import: {e}") from e
    return target


def available_rewards() -> dict[str, str]:
    """name -> one-line description, for every registered reward (built-in, run-time and entry point)."""
    out = {}
    for name in sorted(_all_sources()):
        try:
            out[name] = describe(resolve_factory(name))
        except RegistryError as e:
            out[name] = f"(unavailable: {e})"
    return out


def describe(factory: Callable[..., Any]) -> str:
    doc = (getattr(factory, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else "(no description)"


def build_reward(spec: RewardSpec | dict | str, **overrides: Any) -> Reward:
    """Build the reward a spec describes, wrapped for its serving mode ("local", "ray" or "http").

    `overrides` are merged into `spec.args`. For "http" the factory is not imported locally: the remote server
    holds the model, so conflicting dependencies can live in another environment.
    """
    spec = RewardSpec.coerce(spec)
    if overrides:
        spec = RewardSpec(**{**spec.__dict__, "args": {**spec.args, **overrides}})
    spec.validate()
    if spec.serve == "http":
        from rewards.serving.http_client import HttpReward

        return HttpReward(
            name=spec.name,
            url=spec.url,
            timeout_s=spec.timeout_s,
            retries=spec.retries,
            batch_size=spec.batch_size,
        )
    factory = resolve_factory(spec.name)
    if spec.serve == "ray":
        from rewards.serving.ray_actor import RayReward

        return RayReward(
            factory=factory,
            args=spec.args,
            name=spec.label,
            num_cpus=spec.num_cpus,
            num_gpus=spec.num_gpus,
            batch_size=spec.batch_size,
        )
    return make_local(factory, spec.args, spec.name)


def make_local(factory: Callable[..., Reward], args: dict, name: str) -> Reward:
    """Call the factory, turning a bad argument into an error that names the reward and its arguments."""
    try:
        reward = factory(**args)
    except TypeError as e:
        raise TypeError(f"reward '{name}': bad arguments {sorted(args)}: {e}") from e
    if not isinstance(reward, Reward):
        raise RegistryError(
            f"factory for reward '{name}' returned {type(reward).__name__}, not a rewards.Reward"
        )
    return reward
