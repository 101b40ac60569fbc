"""Seed study: does GRPO/DPO beat its starting checkpoint by more than the run-to-run spread?

Stages (resumable like the demo: a stage with `DONE.json` is reused): `eval_start` evaluates the starting
checkpoint; per seed, `train_seed<N>` runs the recipe with `train.seed=N` and `eval_seed<N>` evaluates its last
checkpoint with the same held-out prompts, images per prompt and sampling seed. `summary.json`/`summary.md` hold
per-seed rows, the mean and range over seeds, and the gain over the start against one binomial standard error.

CFG-aware evaluation (`cfg_eval_overrides`, `python -m experiments.rl_seeds --cfg-eval`): every evaluation is repeated with
guidance on (`eval_start_cfg`, `eval_seed<N>_cfg`), and the summary gets a second table, so a gain made without
guidance can be checked under guidance (policies trained without CFG may lose their gain when sampled with it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from experiments.demo.stages import Stage, run_stages
from irg_rl.config import load_config

ALGOS = ("grpo", "dpo", "nft")
# BAGEL's default guidance (turn 1: text 4.0; turn 2: text 4.0, image 2.0), for --cfg-eval
DEFAULT_CFG_EVAL = (
    "sampling.turn1.cfg_text_scale=4.0",
    "sampling.turn2.cfg_text_scale=4.0",
    "sampling.turn2.cfg_img_scale=2.0",
)
# columns of the study table: (label, key into an eval summary row)
METRICS = (
    ("think (turn 1) strict", "think"),
    ("IRG (turn 2) strict", "irg"),
    ("regression rate", "regression_rate"),
    ("improvement rate", "improvement_rate"),
    ("keep given right", "keep_given_right"),
    ("revise given wrong", "revise_given_wrong"),
)


@dataclass
class SeedStudyOptions:
    """Options of `python -m experiments.rl_seeds`."""

    # grpo | dpo | nft
    algo: str = "grpo"
    # the RL recipe (its model.source is replaced by `start`)
    recipe: str = "recipes/shapes/grpo.yaml"
    # starting checkpoint or run folder (e.g. runs/demo/sft_stage2)
    start: str = "runs/demo/sft_stage2"
    # held-out prompts JSONL written by the data stage
    heldout: str = "runs/demo/data/prompts_heldout.jsonl"
    # evaluation recipe
    eval_recipe: str = "recipes/shapes/eval.yaml"
    # training seeds, one run each
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    # images sampled per held-out prompt in each evaluation: 16 x 106 prompts = 1696 trajectories, binomial SE
    # <= 0.012 (small evaluations were off their large-evaluation value by more than most RL gains)
    images_per_prompt: int = 16
    # run folder
    out: str = "runs/seed_study"
    # extra key=value overrides of the RL recipe (e.g. train.max_steps=20)
    train_overrides: list[str] = field(default_factory=list)
    # extra key=value overrides of the evaluation recipe (e.g. sampling.steps=10)
    eval_overrides: list[str] = field(default_factory=list)
    # non-empty: evaluate everything a second time with these overrides on top (guidance on, e.g. DEFAULT_CFG_EVAL)
    cfg_eval_overrides: list[str] = field(default_factory=list)
    # delete earlier results first
    fresh: bool = False


def _eval(
    opts: SeedStudyOptions, source_of, extra: tuple[str, ...] | list[str] = ()
) -> Callable[[Path], dict]:
    def run(folder: Path) -> dict:
        from irg_rl.eval.eval_config import EvalRecipe
        from irg_rl.eval.runner import run_eval

        overrides = [
            f"model.source={source_of()}",
            f"prompts.file={opts.heldout}",
            f"eval.images_per_prompt={opts.images_per_prompt}",
            f"eval.out={folder}",
        ]
        recipe = load_config(
            EvalRecipe, opts.eval_recipe, overrides + list(opts.eval_overrides) + list(extra)
        )
        results = run_eval(recipe, folder)
        s = results["summary"]
        return {
            "model": results["model"],
            "n": s["turns"]["irg"]["n"],
            "think": s["turns"]["think"]["strict"],
            "irg": s["turns"]["irg"]["strict"],
            # None (no turn-1 image right, or none wrong) is stored as NaN
            "regression_rate": _nan_if_none(s["transitions"]["regression_rate"]),
            "improvement_rate": _nan_if_none(s["transitions"]["improvement_rate"]),
            "keep_given_right": _nan_if_none(s.get("verdict", {}).get("keep_given_right")),
            "revise_given_wrong": _nan_if_none(s.get("verdict", {}).get("revise_given_wrong")),
            "stopped_share": _nan_if_none(s.get("verdict", {}).get("stopped_share")),
        }

    return run


def _train(opts: SeedStudyOptions, seed: int) -> Callable[[Path], dict]:
    def run(folder: Path) -> dict:
        if opts.algo == "grpo":
            from irg_rl.train.rl.grpo import train
            from irg_rl.train.rl.recipe import GRPORecipe as Recipe
        elif opts.algo == "nft":
            from irg_rl.train.rl.nft import train
            from irg_rl.train.rl.recipe import NFTRecipe as Recipe
        else:
            from irg_rl.train.rl.dpo import train
            from irg_rl.train.rl.recipe import DPORecipe as Recipe

        overrides = [
            f"model.source={opts.start}",
            f"train.output_dir={folder}",
            f"train.seed={seed}",
            "eval.at_start=false",
            "eval.num_prompts=0",
        ]
        logs = train(load_config(Recipe, opts.recipe, overrides + list(opts.train_overrides)))
        times = [r["time/step_s"] for r in logs if isinstance(r.get("time/step_s"), float)]
        return {"steps": len(logs), "seconds_per_step": _mean(times)}

    return run


def _nan_if_none(x) -> float:
    return math.nan if x is None else float(x)


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def summarise(start: dict, runs: dict[int, dict]) -> dict:
    """Mean, range and gain over the start per metric; `se` is one binomial standard error of a strict rate."""
    out: dict = {"start": start, "seeds": runs, "metrics": {}}
    for _, key in METRICS:
        # NaN where an evaluation has no such figure (no verdict read, or made before verdicts were reported)
        values = [r.get(key, math.nan) for r in runs.values()]
        mean = _mean(values)
        entry = {
            "mean": mean,
            "min": min(values),
            "max": max(values),
            "gain": mean - start.get(key, math.nan),
        }
        if key in ("think", "irg"):
            p, n = start[key], start["n"]
            entry["se_start"] = math.sqrt(max(p * (1 - p), 1e-12) / n)
        out["metrics"][key] = entry
    return out


def summary_markdown(opts: SeedStudyOptions, summary: dict) -> str:
    lines = [
        f"# {opts.algo.upper()} seed study",
        "",
        f"recipe `{opts.recipe}` from `{opts.start}`, overrides {opts.train_overrides or 'none'}; held-out "
        f"`{opts.heldout}` x {opts.images_per_prompt} images ({summary['start']['n']} trajectories per evaluation).",
        "",
        *_table(summary),
    ]
    if "cfg" in summary:
        lines += ["", f"## With guidance ({', '.join(opts.cfg_eval_overrides)})", "", *_table(summary["cfg"])]
    return "\n".join(lines) + "\n"


def _table(summary: dict) -> list[str]:
    seeds = summary["seeds"]
    head = "| run | " + " | ".join(label for label, _ in METRICS) + " |"
    lines = [head, "|" + "---|" * (len(METRICS) + 1)]

    def row(name: str, r: dict) -> str:
        return f"| {name} | " + " | ".join(f"{r.get(key, math.nan):.3f}" for _, key in METRICS) + " |"

    lines.append(row("start", summary["start"]))
    for seed, r in seeds.items():
        lines.append(row(f"seed {seed}", r))
    m = summary["metrics"]
    lines.append("| mean over seeds | " + " | ".join(f"{m[k]['mean']:.3f}" for _, k in METRICS) + " |")
    lines.append(
        "| range over seeds | "
        + " | ".join(f"{m[k]['min']:.3f}-{m[k]['max']:.3f}" for _, k in METRICS)
        + " |"
    )
    lines.append("| mean - start | " + " | ".join(f"{m[k]['gain']:+.3f}" for _, k in METRICS) + " |")
    irg = m["irg"]
    lines += [
        "",
        f"Turn-2 strict gain {irg['gain']:+.3f}; seed range {irg['max'] - irg['min']:.3f}; one binomial standard "
        f"error of the start's rate {irg['se_start']:.3f}. Every seed above the start: "
        f"{all(r['irg'] > summary['start']['irg'] for r in seeds.values())}. Turn 2 above turn 1 on every seed: "
        f"{all(r['irg'] > r['think'] for r in seeds.values())} (smallest margin "
        f"{min(r['irg'] - r['think'] for r in seeds.values()):+.3f}).",
        "",
        _margin_line(seeds, irg["max"] - irg["min"]),
    ]
    return lines


def _margin_line(seeds: dict, irg_range: float) -> str:
    """Turn 2 - turn 1 per seed, read against both seed ranges: the margins' own and turn 2's."""
    margins = [r["irg"] - r["think"] for r in seeds.values()]
    spread = max(margins) - min(margins)
    return (
        f"Margins turn 2 - turn 1: {' / '.join(f'{x:+.3f}' for x in margins)} (range {spread:.3f}). Smallest "
        f"margin above the margins' seed range: {min(margins) > spread}; above turn 2's seed range "
        f"({irg_range:.3f}): {min(margins) > irg_range}."
    )


def run_seed_study(opts: SeedStudyOptions) -> dict:
    if opts.algo not in ALGOS:
        raise ValueError(f"algo must be one of {ALGOS}, got {opts.algo!r}")
    for name, path in (("recipe", opts.recipe), ("heldout", opts.heldout), ("eval_recipe", opts.eval_recipe)):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{name}: {path} does not exist")
    out = Path(opts.out)

    def checkpoint_of(run: str):
        def source() -> str:
            from irg_rl.train.checkpointing import latest_checkpoint

            ckpt = latest_checkpoint(out / run)
            if ckpt is None:
                raise FileNotFoundError(f"no complete checkpoint under {out / run}; rerun with --fresh")
            return str(ckpt)

        return source

    cfg = opts.cfg_eval_overrides
    stages = [Stage("eval_start", _eval(opts, lambda: opts.start))]
    if cfg:
        stages.append(Stage("eval_start_cfg", _eval(opts, lambda: opts.start, cfg)))
    for seed in opts.seeds:
        stages.append(Stage(f"train_seed{seed}", _train(opts, seed)))
        stages.append(Stage(f"eval_seed{seed}", _eval(opts, checkpoint_of(f"train_seed{seed}"))))
        if cfg:
            stages.append(Stage(f"eval_seed{seed}_cfg", _eval(opts, checkpoint_of(f"train_seed{seed}"), cfg)))
    done = run_stages(out, stages, fresh=opts.fresh)
    summary = summarise(done["eval_start"], {s: done[f"eval_seed{s}"] for s in opts.seeds})
    if cfg:
        summary["cfg"] = summarise(done["eval_start_cfg"], {s: done[f"eval_seed{s}_cfg"] for s in opts.seeds})
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    summary_md_path(out).write_text(summary_markdown(opts, summary))
    return summary


def summary_md_path(out: str | Path) -> Path:
    return Path(out) / "summary.md"
