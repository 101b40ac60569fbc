"""Atomic training checkpoints and `resume_from: auto | PATH` resolution.

Layout of `<output_dir>/checkpoints/step-000123/`:
    model/             the model in the model loader's layout (configs, tokenizer, model.safetensors, ema.safetensors)
    state/             optimizer, scheduler, per-rank RNG (accelerate/DeepSpeed `save_state`), EMA shadows
    data_state.json    every rank's sampler position (SFT) or sampling generator state (GRPO, DPO)
    trainer.json       step, process count, per-step losses so far
    COMPLETE           written last; a directory without it is not a checkpoint

All ranks write into `step-000123.tmp/`; rank 0 then writes COMPLETE, renames the directory into place and
replaces the `latest` pointer file with an atomic `os.replace`, so a crash at any moment leaves the previous
checkpoint as "latest" and never a half-written one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from irg_rl.models.run_layout import (  # noqa: F401 (the read side of the layout, re-exported for callers)
    _STEP_RE,
    COMPLETE,
    LATEST,
    checkpoints_root,
    is_complete,
    latest_checkpoint,
    list_checkpoints,
    resolve_model_dir,
)


def step_dir(output_dir: str | os.PathLike, step: int) -> Path:
    return checkpoints_root(output_dir) / f"step-{step:06d}"


def tmp_dir_for(final: Path) -> Path:
    return final.with_name(final.name + ".tmp")


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    """Write JSON to `path` through a temp file, fsync and `os.replace` (readers see old or new, never half)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def prepare_tmp(final: Path) -> Path:
    """(rank 0) A fresh, empty temp directory for the checkpoint `final` (removes leftovers of a crashed save)."""
    tmp = tmp_dir_for(final)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def open_step_dir(acc, output_dir: str | os.PathLike, step: int) -> tuple[Path, Path]:
    """(all ranks) (final, tmp) folders of checkpoint `step`: rank 0 prepares tmp, then every rank waits for it."""
    final = step_dir(output_dir, step)
    if acc.is_main_process:
        prepare_tmp(final)
    acc.wait_for_everyone()
    return final, tmp_dir_for(final)


def finalize(tmp: Path, final: Path, step: int) -> Path:
    """(rank 0, after every rank wrote into `tmp`) mark complete, move into place, point `latest` at it."""
    with open(tmp / COMPLETE, "w") as fh:
        fh.write(f"{step}\n")
        fh.flush()
        os.fsync(fh.fileno())
    if final.exists():  # re-saving the same step (e.g. resumed then saved again): replace the old copy
        old = final.with_name(final.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    write_json_atomic(final.parent / LATEST, {"step": step, "path": final.name})
    return final


def resolve_resume(resume_from: str, output_dir: str | os.PathLike) -> Path | None:
    """`""`/`"never"` -> None (fresh); `"auto"` -> latest complete checkpoint or None; a path -> it, if complete."""
    if not resume_from or resume_from in ("never", "none"):
        return None
    if resume_from == "auto":
        return latest_checkpoint(output_dir)
    path = Path(resume_from)
    if path.is_dir() and not _STEP_RE.match(path.name) and (path / "checkpoints").is_dir():
        path = latest_checkpoint(path) or path  # a run directory: its latest checkpoint
    if not path.is_dir():
        raise FileNotFoundError(f"train.resume_from={resume_from!r}: no such checkpoint directory")
    if not is_complete(path):
        raise ValueError(
            f"train.resume_from={resume_from!r}: {path} has no {COMPLETE} marker (an interrupted save); "
            f"pick an earlier checkpoint or use resume_from=auto"
        )
    return path


def prune(output_dir: str | os.PathLike, keep_last: int) -> list[Path]:
    """(rank 0) Delete all but the `keep_last` newest complete checkpoints; returns what was removed."""
    if keep_last <= 0:
        return []
    found = list_checkpoints(output_dir)
    removed = []
    for _, path in found[:-keep_last]:
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def read_trainer_state(ckpt: Path) -> dict:
    return json.loads((ckpt / "trainer.json").read_text())


def read_data_state(ckpt: Path) -> list[dict]:
    return json.loads((ckpt / "data_state.json").read_text())["ranks"]


def to_universal(state_dir: Path, out_dir: Path) -> Path:
    """(rank 0) Copy an accelerate state directory, converting its DeepSpeed ZeRO shards (`pytorch_model/`) into
    DeepSpeed's universal checkpoint format, which loads on any process count (`checkpoint.load_universal`)."""
    import argparse

    from deepspeed.checkpoint import ds_to_universal

    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    for f in state_dir.iterdir():
        if f.is_file():
            shutil.copy2(f, out_dir / f.name)
    args = argparse.Namespace(
        input_folder=str(state_dir / "pytorch_model"),
        output_folder=str(out_dir / "pytorch_model"),
        num_extract_workers=1,
        num_merge_workers=1,
        keep_temp_folder=False,
        strict=True,
        inject_missing_state=True,
    )
    ds_to_universal.main(args)
    return out_dir
