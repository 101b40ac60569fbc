"""Resumable pipeline stages: a stage whose `DONE.json` exists is reused, unless a fresh run is asked for.

A stage writes into `<out>/<name>/` and, last, atomically writes `DONE.json` holding its summary, so an
interrupted stage is redone on the next run and a finished one is never half-reused.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DONE = "DONE.json"


@dataclass
class Stage:
    """One step of the demo pipeline."""

    # folder name under the run directory, also shown in logs
    name: str
    # does the work in the given folder and returns a JSON-serialisable summary
    run: Callable[[Path], dict]


def stage_summary(out: Path, name: str) -> dict | None:
    """The summary of a finished stage, or None when it has not finished."""
    path = out / name / DONE
    return json.loads(path.read_text()) if path.is_file() else None


def run_stages(
    out: str | os.PathLike, stages: list[Stage], fresh: bool = False, log=print
) -> dict[str, dict]:
    """Run the stages in order, reusing finished ones; a fresh run deletes earlier results first."""
    out = Path(out)
    if fresh and out.exists():
        shutil.rmtree(out)
    summaries: dict[str, dict] = {}
    for stage in stages:
        folder = out / stage.name
        done = stage_summary(out, stage.name)
        if done is not None:
            log(f"[{stage.name}] reusing finished stage in {folder} (pass --fresh to redo)")
            summaries[stage.name] = done
            continue
        if folder.exists():
            shutil.rmtree(folder)  # leftovers of an interrupted attempt
        folder.mkdir(parents=True)
        log(f"[{stage.name}] running ...")
        start = time.perf_counter()
        summary = dict(stage.run(folder))
        summary["seconds"] = round(time.perf_counter() - start, 1)
        tmp = folder / (DONE + ".tmp")
        tmp.write_text(json.dumps(summary, indent=2))
        os.replace(tmp, folder / DONE)
        log(f"[{stage.name}] done in {summary['seconds']} s")
        summaries[stage.name] = summary
    return summaries
