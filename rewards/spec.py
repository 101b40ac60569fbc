"""`RewardSpec`: how a recipe names one reward (what, with which arguments, weight, and where it runs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["RewardSpec", "SERVE_MODES", "parse_args_kv"]

SERVE_MODES = ("local", "ray", "http")


@dataclass
class RewardSpec:
    """One reward in a recipe's `rewards:` list."""

    # registered reward name (see `scripts/score.py --list`) or a `package.module:factory` path to a plug-in
    name: str = ""
    # weight of this reward in the composite sum (negative weights penalise)
    weight: float = 1.0
    # keyword arguments passed to the reward factory (paths, model names, modes)
    args: dict[str, Any] = field(default_factory=dict)
    # where the reward runs: "local" (this process), "ray" (its own Ray actor) or "http" (a remote scorer at `url`)
    serve: str = "local"
    # base URL of the reward server when serve is "http", e.g. http://127.0.0.1:8765
    url: str | None = None
    # label in logs and composite details; defaults to `name`
    alias: str | None = None
    # CPUs reserved by the Ray actor when serve is "ray"
    num_cpus: float = 1.0
    # GPUs reserved by the Ray actor when serve is "ray" (fractions share a GPU)
    num_gpus: float = 0.0
    # samples per remote call (Ray or HTTP); 0 sends the whole batch at once
    batch_size: int = 0
    # HTTP: seconds to wait for one request before it counts as failed
    timeout_s: float = 120.0
    # HTTP: attempts per request before giving up (exponential backoff between attempts)
    retries: int = 3

    @property
    def label(self) -> str:
        return self.alias or self.name

    def validate(self, where: str = "reward spec") -> None:
        """Raise ValueError naming the field and the fix when the spec is inconsistent."""
        if not self.name:
            raise ValueError(
                f"{where}: 'name' is empty; set it to a registered reward or 'package.module:factory'"
            )
        if self.serve not in SERVE_MODES:
            raise ValueError(
                f"{where} '{self.label}': serve='{self.serve}' is not one of {', '.join(SERVE_MODES)}"
            )
        if self.serve == "http" and not self.url:
            raise ValueError(f"{where} '{self.label}': serve='http' needs 'url' (e.g. http://127.0.0.1:8765)")
        if self.retries < 1:
            raise ValueError(f"{where} '{self.label}': retries={self.retries}; use 1 or more")
        if self.timeout_s <= 0:
            raise ValueError(
                f"{where} '{self.label}': timeout_s={self.timeout_s}; use a positive number of seconds"
            )
        if self.batch_size < 0:
            raise ValueError(
                f"{where} '{self.label}': batch_size={self.batch_size}; use 0 (whole batch) or more"
            )

    @staticmethod
    def coerce(spec: RewardSpec | dict | str, where: str = "reward spec") -> RewardSpec:
        """Accept a RewardSpec, a plain dict (unknown keys are an error) or a bare reward name."""
        if isinstance(spec, RewardSpec):
            return spec
        if isinstance(spec, str):
            return RewardSpec(name=spec)
        if isinstance(spec, dict) or hasattr(spec, "items"):
            data = dict(spec.items())
            known = set(RewardSpec.__dataclass_fields__)
            unknown = sorted(set(data) - known)
            if unknown:
                raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys: {', '.join(sorted(known))}")
            data["args"] = dict(data.get("args") or {})
            return RewardSpec(**data)
        raise TypeError(f"{where}: expected a RewardSpec, dict or name, got {type(spec).__name__}")


def parse_args_kv(items: list[str]) -> dict[str, Any]:
    """['mode=strict', 'world={image_size: 64}'] -> {'mode': 'strict', 'world': {'image_size': 64}} (YAML values)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--arg '{item}': expected key=value (value parsed as YAML)")
        out[key.strip()] = yaml.safe_load(value)
    return out
