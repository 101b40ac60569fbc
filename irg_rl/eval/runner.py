"""Per-turn evaluation: generate with the IRG engine, score every turn, write files, results and a report.

Turns: `no_think` = one round without thinking (the plain text-to-image baseline, same sampling otherwise),
`think` = IRG turn 1 (think_1 -> image_1), `irg` = IRG turn 2 (think_2 -> image_2), the latter two from the
same two-round trajectory. Output layout under `out_dir`:

    samples/<prompt_id>/            (one folder per prompt; with images_per_prompt > 1: samples/<prompt_id>/<k>/)
        nothink.png turn1.png turn1.txt turn2.png turn2.txt scores.json
    results.json                    prompt set, images per prompt, reward/judge, every sampling setting, scores
    results.md                      the same as a markdown table
    report.html                     plots and sample trajectories (images referenced by relative path)

Trajectory k of global prompt p uses seed sample_seed(sampling.seed, p, k) whatever the batching.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from irg_rl.data.task_plugin import build_task
from irg_rl.eval.metrics import TURN_TITLES, TURNS, per_category, summarize
from irg_rl.eval.prompt_sets import EvalPrompt, load_prompt_set
from irg_rl.eval.report import Curve, SampleView, Table, markdown_table, write_html_report
from irg_rl.eval.scoring import (
    build_eval_reward,
    describe_reward,
    resolve_reward_spec,
    score_images,
    tensor_to_pil,
)
from irg_rl.inference.engine import IRGEngine
from irg_rl.inference.engine_config import IRGSamplingConfig

__all__ = ["evaluate", "run_eval", "summary_columns", "summary_row", "sample_dir", "SEED_STRIDE"]

# prompt-index stride of the engine's per-trajectory seeds (see irg_rl.inference.context.sample_seed)
SEED_STRIDE = 1_000_003


def sample_dir(out_dir: Path, prompt_id: str, k: int, images_per_prompt: int) -> Path:
    """Folder of sample k of a prompt (the prompt folder itself when there is one image per prompt)."""
    base = out_dir / "samples" / prompt_id
    return base if images_per_prompt == 1 else base / str(k)


def _engines(components: Any, sampling: IRGSamplingConfig, modes: list[str]) -> dict[str, IRGEngine]:
    """IRG engine (rounds 2, or 1 when only `think` is asked) and the no-think engine, as the modes need."""
    out = {}
    parts = (components.model, components.tokenizer, components.vae)
    if "think" in modes or "irg" in modes:
        rounds = 2 if "irg" in modes else 1
        out["irg"] = IRGEngine(*parts, dataclasses.replace(sampling, rounds=rounds, think=True))
    if "no_think" in modes:
        out["no_think"] = IRGEngine(*parts, dataclasses.replace(sampling, rounds=1, think=False))
    return out


def _write_text(path: Path, text: str) -> None:
    path.write_text(text + "\n", encoding="utf-8", errors="replace")


def _chunk(
    engines: dict[str, IRGEngine],
    reward,
    prompts: list[EvalPrompt],
    start: int,
    G: int,
    settings,
    out_dir: Path,
) -> list[dict]:
    """Generate and score one chunk of prompts; returns one record per (prompt, sample)."""
    texts = [p.prompt for p in prompts]
    metas = [p.metadata for p in prompts]
    entries = [p for p in prompts for _ in range(G)]  # prompt-major, as the engine orders trajectories
    records = [
        {"prompt_id": p.id, "sample": k, "prompt": p.prompt, "category": p.category, "turns": {}, "files": {}}
        for p in prompts
        for k in range(G)
    ]
    dirs = [sample_dir(out_dir, p.id, k, G) for p in prompts for k in range(G)]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    details: list[dict] = [{} for _ in records]

    def add(turn: str, images, **extra) -> None:
        scores = score_images(
            reward, entries, [tensor_to_pil(im) for im in images], settings.strict_threshold, **extra
        )
        for r, d, s in zip(records, details, scores, strict=True):
            r["turns"][turn] = s.to_dict()
            d[turn] = s.details

    if "no_think" in engines:
        nb = engines["no_think"].generate(
            texts, metas, G, seed=engines["no_think"].cfg.seed + SEED_STRIDE * start
        )
        imgs = nb.images("image_1")
        for r, d, im in zip(records, dirs, imgs, strict=True):
            tensor_to_pil(im).save(d / "nothink.png")
            r["files"]["no_think_image"] = "nothink.png"
        if "no_think" in settings.modes:
            add("no_think", imgs)
    if "irg" in engines:
        eng = engines["irg"]
        tb = eng.generate(texts, metas, G, seed=eng.cfg.seed + SEED_STRIDE * start)
        rounds = eng.cfg.rounds
        for r, d, traj in zip(records, dirs, tb.trajectories, strict=True):
            for k in range(1, rounds + 1):
                tensor_to_pil(traj.segment(f"image_{k}").image).save(d / f"turn{k}.png")
                _write_text(d / f"turn{k}.txt", traj.segment(f"think_{k}").text)
                r["files"][f"image_{k}"] = f"turn{k}.png"
                r["files"][f"think_{k}"] = f"turn{k}.txt"
                r[f"think_{k}"] = traj.segment(f"think_{k}").text
                r[f"think_{k}_stop"] = traj.segment(f"think_{k}").stop_reason
            if traj.verdict is not None:  # think_2's keep / revise verdict; stopped = image_2 is image_1
                r["verdict"], r["stopped"] = traj.verdict, traj.stopped
        img1, think1 = tb.images("image_1"), tb.texts("think_1")
        if "think" in settings.modes:
            add("think", img1, think_1=think1)
        if rounds == 2 and "irg" in settings.modes:
            pil1 = [tensor_to_pil(im) for im in img1]
            add("irg", tb.images("image_2"), images_1=pil1, think_1=think1, think_2=tb.texts("think_2"))
    for r, d, det in zip(records, dirs, details, strict=True):
        (d / "scores.json").write_text(
            json.dumps({"turns": r["turns"], "details": det}, indent=1, default=str)
        )
        r["folder"] = d.relative_to(out_dir).as_posix()
    return records


def summary_columns() -> list[str]:
    """Columns of the one-row-per-model table: each turn strict and partial, the regression and improvement rates,
    then the verdict's two accuracies (keep given image_1 right, revise given wrong) and the stopped share."""
    cols = []
    for t in TURNS:
        cols += [f"{TURN_TITLES[t]} strict", f"{TURN_TITLES[t]} partial"]
    return cols + ["regression rate", "improvement rate", "keep given right", "revise given wrong", "stopped"]


def summary_row(results: dict) -> list[Any]:
    """The cells of `summary_columns()` for one results dict (None where a turn or verdict was not evaluated)."""
    turns = results["summary"]["turns"]
    row: list[Any] = []
    for t in TURNS:
        row += [turns.get(t, {}).get("strict"), turns.get(t, {}).get("partial")]
    tr = results["summary"].get("transitions", {})
    v = results["summary"].get("verdict", {})
    return row + [
        tr.get("regression_rate"),
        tr.get("improvement_rate"),
        v.get("keep_given_right"),
        v.get("revise_given_wrong"),
        v.get("stopped_share"),
    ]


def _settings_note(results: dict) -> str:
    s = results["sampling"].get("irg") or results["sampling"].get("no_think") or {}
    t1, t2 = s.get("turn1", {}), s.get("turn2", {})
    return (
        f"prompt set {results['prompt_set']} ({results['num_prompts']} prompts x {results['images_per_prompt']} "
        f"images), reward {results['reward']['name']}, model {results['model']}; steps {s.get('steps')}, shift "
        f"{s.get('timestep_shift')}, resolution {s.get('resolution')}, seed {s.get('seed')}, think temperature "
        f"{t1.get('temperature')}/{t2.get('temperature')}, text CFG {t1.get('cfg_text_scale')}/"
        f"{t2.get('cfg_text_scale')}, image CFG turn 2 {t2.get('cfg_img_scale')}. Regression rate = P(turn 2 "
        "wrong | turn 1 correct); improvement rate = P(turn 2 correct | turn 1 wrong)."
    )


def _verdict_table(v: dict) -> Table:
    """think_2's verdict against the scorer's strict judgement of image_1 (turn 1)."""
    return Table(
        "Verdict against the scorer's judgement of image_1",
        ["image_1", "keep", "revise (incl. no verdict)", "accuracy"],
        [
            ["right", v["keep_right"], v["revise_right"], v["keep_given_right"]],
            ["wrong", v["keep_wrong"], v["revise_wrong"], v["revise_given_wrong"]],
        ],
        f"{v['n']} trajectories; overall accuracy "
        f"{'n/a' if v['accuracy'] is None else format(v['accuracy'], '.3f')}; no verdict in {v['none']}; "
        f"stopped (image_2 := image_1) {v['stopped']}.",
    )


def sample_views(results: dict, limit: int, prefix: str = "") -> list[SampleView]:
    """Report views of the first sample of up to `limit` prompts; image paths get `prefix` prepended."""
    turns = [t for t in TURNS if t in results["summary"]["turns"]]
    views = []
    for r in results["samples"]:
        if len(views) >= limit:
            break
        if r["sample"] != 0:
            continue
        f = r["files"]

        def path(key: str, r=r, f=f) -> str | None:
            return f"{prefix}{r['folder']}/{f[key]}" if key in f else None

        rewards = {f"{TURN_TITLES[t]} {m}": r["turns"][t][m] for t in turns for m in ("strict", "partial")}
        views.append(
            SampleView(
                title=f"{r['prompt_id']} ({r['category']})",
                prompt=r["prompt"],
                think_1=r.get("think_1", ""),
                image_1=path("image_1"),
                think_2=r.get("think_2", ""),
                image_2=path("image_2"),
                rewards=rewards,
                no_think_image=path("no_think_image"),
            )
        )
    return views


def _write_outputs(out_dir: Path, results: dict, report: bool, report_samples: int) -> dict[str, Path]:
    paths = {"results": out_dir / "results.json", "table": out_dir / "results.md"}
    paths["results"].write_text(json.dumps(results, indent=1, default=str))
    turns = results["summary"]["turns"]
    rows = [
        [TURN_TITLES[t], turns[t]["strict"], turns[t]["partial"], turns[t]["score"], turns[t]["n_scored"]]
        for t in TURNS
        if t in turns
    ]
    main = Table(
        "Scores per turn",
        ["turn", "strict", "partial", "mean reward", "scored"],
        rows,
        _settings_note(results),
    )
    cats = results["per_category"]
    cat_turns = [t for t in TURNS if t in turns]
    cat_table = Table(
        "Strict accuracy per category",
        [
            "category",
            *[TURN_TITLES[t] for t in cat_turns],
            "regression rate",
            "improvement rate",
            "keep given right",
            "revise given wrong",
        ],
        [
            [
                c,
                *[s["turns"].get(t, {}).get("strict") for t in cat_turns],
                s.get("transitions", {}).get("regression_rate"),
                s.get("transitions", {}).get("improvement_rate"),
                s.get("verdict", {}).get("keep_given_right"),
                s.get("verdict", {}).get("revise_given_wrong"),
            ]
            for c, s in cats.items()
        ],
    )
    tables = [main, cat_table]
    v = results["summary"].get("verdict")
    if v:
        tables.append(_verdict_table(v))
    tr = results["summary"].get("transitions")
    md = [
        f"# Evaluation: {results['prompt_set']}",
        "",
        main.note,
        "",
        markdown_table(main.columns, main.rows),
        "",
    ]
    if tr:
        md += [
            f"Regression rate {tr['regression_rate'] if tr['regression_rate'] is not None else 'n/a'} "
            f"({tr['regressed']}/{tr['turn1_correct']}); improvement rate "
            f"{tr['improvement_rate'] if tr['improvement_rate'] is not None else 'n/a'} ({tr['improved']}/{tr['turn1_wrong']}).",
            "",
        ]
    if v:
        md += [
            "## Verdict (self-verification)",
            "",
            tables[2].note,
            "",
            markdown_table(tables[2].columns, tables[2].rows),
            "",
        ]
    md += ["## Per category", "", markdown_table(cat_table.columns, cat_table.rows), ""]
    md += [
        "## Settings",
        "",
        "```json",
        json.dumps({k: results[k] for k in ("reward", "sampling")}, indent=1),
        "```",
        "",
    ]
    paths["table"].write_text("\n".join(md))
    if report:
        curve = Curve(
            "Score per turn",
            "",
            "mean",
            {
                m: ([TURN_TITLES[t] for t in cat_turns], [turns[t][m] for t in cat_turns])
                for m in ("strict", "partial")
            },
            kind="bar",
        )
        views = sample_views(results, report_samples)
        paths["report"] = write_html_report(
            out_dir, tables, [curve], views, title=f"Evaluation: {results['prompt_set']}"
        )
    return paths


def evaluate(
    components: Any,
    sampling: IRGSamplingConfig,
    prompts: list[EvalPrompt],
    reward,
    reward_info: dict,
    settings,
    out_dir: str | Path,
    prompt_set: str = "custom",
    prompt_file: str | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Evaluate `prompts` per turn with `components` (model, tokenizer, vae, origin); returns the results dict.

    `settings` is an `EvalSettings` (images_per_prompt, modes, batch_size, strict_threshold, report, ...).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    G = settings.images_per_prompt
    engines = _engines(components, sampling, list(settings.modes))
    records: list[dict] = []
    t0 = time.perf_counter()
    for start in range(0, len(prompts), settings.batch_size):
        chunk = prompts[start : start + settings.batch_size]
        records += _chunk(engines, reward, chunk, start, G, settings, out)
        log(
            f"[eval] {min(start + len(chunk), len(prompts))}/{len(prompts)} prompts ({time.perf_counter() - t0:.1f} s)"
        )
    results = {
        "prompt_set": prompt_set,
        "prompt_file": prompt_file,
        "num_prompts": len(prompts),
        "images_per_prompt": G,
        "num_samples": len(records),
        "modes": list(settings.modes),
        "model": getattr(components, "origin", "?"),
        "reward": reward_info,
        "strict_rule": f"reward's own strict verdict if it reports one, else score >= {settings.strict_threshold}",
        "sampling": {name: dataclasses.asdict(e.cfg) for name, e in engines.items()},
        "image_sampler": "euler (deterministic given the seed)",
        "summary": summarize(records),
        "per_category": per_category(records),
        "seconds": round(time.perf_counter() - t0, 2),
        "samples": records,
    }
    if prompt_set == "wise":
        results["wise_overall"] = wise_overall_per_turn(results["per_category"])
    paths = _write_outputs(out, results, settings.report, settings.report_samples)
    results["paths"] = {k: str(v) for k, v in paths.items()}
    return results


def wise_overall_per_turn(cats: dict[str, dict]) -> dict[str, float] | None:
    """WISE's overall WiScore per turn (0.4 culture + 0.12 x five categories, from each category's mean judge
    score), or None unless all six categories were evaluated."""
    from irg_rl.eval.loaders import WISE_CATEGORIES, wise_overall

    names = [name for name, *_ in WISE_CATEGORIES]
    if not all(name in cats for name in names):
        return None
    turns = set.intersection(*(set(cats[n]["turns"]) for n in names))
    return {t: wise_overall({n: cats[n]["turns"][t]["score"] for n in names}) for t in sorted(turns)}


def run_eval(recipe, out_dir: str | Path | None = None, log: Callable[[str], None] = print) -> dict:
    """Build model, prompts and reward from an `EvalRecipe`, then `evaluate`."""
    from irg_rl.inference.components import build_components, resolve_system_prompt

    recipe.validate()
    if recipe.eval.num_threads > 0:
        torch.set_num_threads(recipe.eval.num_threads)
    opts = dict(recipe.prompts.options)
    if (
        recipe.prompts.set == recipe.task.name
    ):  # the task's own held-out prompts, in the recipe's task options
        opts = {**recipe.task.options, **opts}
    prompts = load_prompt_set(recipe.prompts.set, recipe.prompts.file, recipe.prompts.limit, **opts)
    spec = resolve_reward_spec(recipe.prompts.set, recipe.reward)
    # a reward that scores the task's images judges in the recipe's task (e.g. its world); spec args win
    spec.args = {**build_task(recipe.task, where="task").reward_args(spec.name), **spec.args}
    reward, spec = build_eval_reward(recipe.prompts.set, spec)
    parts = build_components(recipe.engine_config(), recipe.eval.device)
    log(
        f"[eval] model: {parts.origin}; {len(prompts)} prompts from '{recipe.prompts.set}'; reward {spec.name}"
    )
    return evaluate(
        parts,
        resolve_system_prompt(recipe.sampling, recipe.model.source),
        prompts,
        reward,
        describe_reward(reward, spec),
        recipe.eval,
        out_dir or recipe.eval.out,
        prompt_set=recipe.prompts.set,
        prompt_file=recipe.prompts.file,
        log=log,
    )
