"""The demo's final table and HTML report, assembled from the per-stage evaluation results on disk."""

from __future__ import annotations

import json
import math
from pathlib import Path

from irg_rl.eval.report import Curve, Table, markdown_table, write_html_report
from irg_rl.eval.runner import sample_views, summary_columns, summary_row

# GRPO metrics plotted over RL steps (those present in the run's log are drawn)
RL_CURVE_KEYS = (
    "reward/image_1_mean",
    "reward/image_2_mean",
    "reward/metric/strict_1_mean",
    "reward/metric/strict_2_mean",
    "verdict/keep_given_right",
    "verdict/revise_given_wrong",
)


def _load_results(out: Path, stage: str) -> dict | None:
    path = out / stage / "results.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _strict_or_nan(turns: dict, turn: str) -> float:
    """A turn's strict score; NaN (never 0) when it was not scored."""
    value = turns.get(turn, {}).get("strict")
    return math.nan if value is None else float(value)


def _rl_curves(out: Path) -> list[Curve]:
    path = out / "grpo" / "metrics.jsonl"
    if not path.is_file():
        return []
    logs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    series = {}
    for key in RL_CURVE_KEYS:
        pts = [
            (r.get("step", i + 1), r[key]) for i, r in enumerate(logs) if isinstance(r.get(key), (int, float))
        ]
        if pts:
            series[key] = ([p[0] for p in pts], [p[1] for p in pts])
    return [Curve("GRPO rewards over RL steps", "RL step", "mean reward", series)] if series else []


def write_demo_report(out: Path, folder: Path, eval_rows: dict[str, tuple[str, str | None]]) -> dict:
    """Write `<folder>/report.html` and `<folder>/table.md`; return the summary (table text, paths)."""
    columns = ["model", *summary_columns()]
    rows, per_stage, sample_source = [], {}, None
    for stage, (title, _) in eval_rows.items():
        results = _load_results(out, stage)
        if results is None:
            continue
        rows.append([title, *summary_row(results)])
        per_stage[title] = results["summary"]["turns"]
        sample_source = (stage, results)
    if not rows:
        raise FileNotFoundError(f"no evaluation results under {out}/eval_*; run the eval stages first")
    first = sample_source[1]
    note = (
        f"Held-out ShapesWorld prompts: {first['num_prompts']} prompts x {first['images_per_prompt']} images "
        f"(prompts never seen in training); reward: {first['reward'].get('name')}. no-think = one round without "
        "thinking; think = IRG turn 1; IRG = turn 2 after reflecting. Regression rate = P(turn 2 wrong | turn 1 "
        "correct). keep given right and revise given wrong: the reflection's verdict against the scorer's judgement of "
        "image_1; stopped: share of trajectories a keep verdict ended (image_2 := image_1). One binomial standard "
        f"error of a strict rate near 0.5: {0.5 / math.sqrt(max(first['num_samples'], 1)):.3f}."
    )
    table = Table("Held-out scores per stage", columns, rows, note)
    turn_keys = [t for t in ("no_think", "think", "irg") if any(t in v for v in per_stage.values())]
    per_stage_curve = Curve(
        "IRG (turn 2) strict score per stage",
        "stage",
        "strict",
        {t: (list(per_stage), [_strict_or_nan(per_stage[s], t) for s in per_stage]) for t in turn_keys},
        kind="bar",
    )
    stage, results = sample_source
    views = sample_views(results, 12, prefix=f"../{stage}/")
    for v in views:
        v.title = f"{eval_rows[stage][0]}: {v.title}"
    html = write_html_report(
        folder, [table], [*_rl_curves(out), per_stage_curve], views, title="irg-rl demo on ShapesWorld"
    )
    text = markdown_table(columns, rows)
    (folder / "table.md").write_text(f"{text}\n\n{note}\n")
    return {"html": str(html), "table_text": text, "table_md": str(folder / "table.md"), "rows": rows}
