"""Evaluation prompts: one `EvalPrompt` type for every benchmark, and a registry of prompt-set loaders.

Each benchmark's published prompt file is read from a path the user supplies (the project ships none of the
licence-restricted files); a task plug-in (ShapesWorld) needs no file: its held-out split is generated. Loaders live in
`irg_rl.eval.loaders`, the prompt type in `irg_rl.eval.prompt`; `load_prompt_set(name, path, ...)` is the one entry point.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from irg_rl.data.task_plugin import task_names
from irg_rl.eval import loaders as L
from irg_rl.eval.prompt import EvalPrompt, PromptSetError

__all__ = ["EvalPrompt", "PromptSetError", "BENCHMARK_SETS", "load_prompt_set", "prompt_set_names"]


@dataclass(frozen=True)
class PromptSetInfo:
    """A registered prompt set: its loader and what the user must supply."""

    # loader(path, **options) -> list[EvalPrompt]
    loader: Callable[..., list[EvalPrompt]]
    # true when the set is read from a user-supplied file or folder
    needs_path: bool
    # what to pass as --prompts-file (shown in errors)
    expects: str


def _registry() -> dict[str, PromptSetInfo]:
    tasks = {
        name: PromptSetInfo(
            functools.partial(L.load_task, name), False, "optional JSONL of its prompts (GenEval schema)"
        )
        for name in task_names()
    }
    return {
        **tasks,
        "geneval": PromptSetInfo(L.load_geneval, True, "GenEval prompts/evaluation_metadata.jsonl"),
        "wise": PromptSetInfo(L.load_wise, True, "a WISE data/*.json file or the folder holding them"),
        "tiif": PromptSetInfo(
            L.load_tiif, True, "a TIIF-Bench <type>_prompts.jsonl or a folder (e.g. data/testmini_prompts)"
        ),
        "genai": PromptSetInfo(L.load_genai, True, "GenAI-Bench genai_image.json"),
        "oneig": PromptSetInfo(L.load_oneig, True, "OneIG-Bench.csv"),
        "dpg": PromptSetInfo(L.load_dpg, True, "ELLA dpg_bench/ folder (prompts/*.txt + dpg_bench.csv)"),
    }


# the benchmark prompt sets read from published files (kept in sync with _registry)
BENCHMARK_SETS = ("geneval", "wise", "tiif", "genai", "oneig", "dpg")


def prompt_set_names() -> tuple[str, ...]:
    """Every prompt set: the installed task plug-ins (held-out splits; "shapes"), then the benchmarks."""
    return (*task_names(), *BENCHMARK_SETS)


def load_prompt_set(
    name: str, path: str | Path | None = None, limit: int | None = None, **options: Any
) -> list[EvalPrompt]:
    """Prompts of set `name` read from `path` (first `limit` of them), ids unique and non-empty."""
    reg = _registry()
    if name not in reg:
        close = difflib.get_close_matches(name, list(reg), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise PromptSetError(f"unknown prompt set '{name}'.{hint} Known sets: {', '.join(reg)}")
    info = reg[name]
    if info.needs_path and path is None:
        raise PromptSetError(
            f"prompt set '{name}' is read from a file you supply (the project does not ship it): "
            f"pass --prompts-file PATH pointing at {info.expects}"
        )
    if path is not None and not Path(path).exists():
        raise PromptSetError(f"prompt set '{name}': {path} does not exist; expected {info.expects}")
    prompts = info.loader(Path(path) if path is not None else None, **options)
    if limit is not None:
        if limit < 1:
            raise PromptSetError(f"prompt set '{name}': limit must be >= 1, got {limit}")
        prompts = prompts[:limit]
    if not prompts:
        raise PromptSetError(f"prompt set '{name}' from {path}: no prompts found; expected {info.expects}")
    seen: set[str] = set()
    for p in prompts:
        if not p.prompt.strip():
            raise PromptSetError(f"prompt set '{name}' from {path}: prompt '{p.id}' has empty text")
        if p.id in seen:
            raise PromptSetError(f"prompt set '{name}' from {path}: duplicate prompt id '{p.id}'")
        seen.add(p.id)
    return prompts
