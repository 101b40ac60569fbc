"""JSON Lines files of objects (prompt sets, metadata): one reader with errors naming the file and line."""

from __future__ import annotations

import json
import os


def read_jsonl_objects(
    path: str | os.PathLike, error: type[Exception] = ValueError
) -> list[tuple[int, dict]]:
    """[(line number, object)] of a JSONL file; blank lines are skipped; a bad line raises `error(path:line ...)`."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise error(f"{path}:{n}: not valid JSON ({e.msg}); each line must be one JSON object") from e
            if not isinstance(obj, dict):
                raise error(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
            rows.append((n, obj))
    return rows
