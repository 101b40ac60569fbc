"""The `make demo` pipeline on ShapesWorld: data -> SFT stage 1 -> SFT stage 2 -> reflection rows on the model's own
first images -> SFT stage 2 continued on them -> GRPO -> per-turn evaluation.

Every stage runs from the repository's recipes (`recipes/shapes/*.yaml`) with only paths overridden, so what
the demo does is what a user gets from the scripts. Finished stages are reused on a rerun (`--fresh` redoes all).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from experiments.demo.stages import Stage, run_stages, stage_summary
from irg_rl.config import load_config
from irg_rl.tasks.shapes.data_builder import ShapesDataConfig, build_shapes_data

REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPES = REPO_ROOT / "recipes" / "shapes"

# rows of the final table: eval stage name -> (title, the training stage whose checkpoint is evaluated)
EVAL_ROWS: dict[str, tuple[str, str | None]] = {
    "eval_untrained": ("untrained", None),
    "eval_sft_stage1": ("SFT stage 1", "sft_stage1"),
    "eval_sft_stage2": ("SFT stage 2", "sft_stage2"),
    "eval_sft_stage2_self": ("SFT stage 2 + own-image rows", "sft_stage2_self"),
    "eval_grpo": ("GRPO", "grpo"),
}


@dataclass
class DemoOptions:
    """Options of `python -m experiments.demo`."""

    # run folder
    out: str = "runs/demo"
    # delete earlier results first
    fresh: bool = False
    # ShapesWorld training prompts (conversations per learning mode)
    num_prompts: int = 2000
    # training prompts whose first image the stage-2 model draws and the scorer labels (own-image reflection rows)
    self_prompts: int = 2000
    # held-out evaluation of the stage-2 and RL checkpoints: images per held-out prompt (8 x 106 prompts = 848
    # trajectories, binomial standard error <= 0.017)
    eval_images_per_prompt: int = 8
    # the same for the reference rows (untrained, stage 1), which score near 0: fewer images keep the demo short
    baseline_images_per_prompt: int = 1
    # extra key=value overrides per stage, e.g. {"sft_stage1": ["train.max_steps=10"]} (used by tests)
    overrides: dict[str, list[str]] = field(default_factory=dict)
    # stages to run, in order (a prefix of the full list is fine, e.g. to stop after SFT)
    stages: list[str] = field(
        default_factory=lambda: [
            "data",
            "sft_stage1",
            "sft_stage2",
            "self_data",
            "sft_stage2_self",
            "grpo",
            *EVAL_ROWS,
            "report",
        ]
    )


def _recipe(name: str) -> Path:
    path = RECIPES / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"demo recipe {path} is missing; run the demo from a checkout of irg-rl")
    return path


def _latest_checkpoint(run_dir: Path) -> Path:
    from irg_rl.train.checkpointing import latest_checkpoint

    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise FileNotFoundError(f"no complete checkpoint under {run_dir}; rerun the demo with --fresh")
    return ckpt


def _data_stage(opts: DemoOptions, out: Path) -> Stage:
    def run(folder: Path) -> dict:
        overrides = [f"num_prompts={opts.num_prompts}", *opts.overrides.get("data", [])]
        return build_shapes_data(folder, load_config(ShapesDataConfig, None, overrides))

    return Stage("data", run)


def _self_data_stage(opts: DemoOptions, out: Path) -> Stage:
    def run(folder: Path) -> dict:
        from irg_rl.tasks.shapes.self_builder import SelfReflectionDataConfig, build_self_reflection_data

        overrides = [f"model={_latest_checkpoint(out / 'sft_stage2')}", f"num_prompts={opts.self_prompts}"]
        cfg = load_config(SelfReflectionDataConfig, None, overrides + opts.overrides.get("self_data", []))
        return build_self_reflection_data(folder, cfg)

    return Stage("self_data", run)


def _sft_stage(
    opts: DemoOptions, out: Path, name: str, init_from: str | None, extra_roots: tuple[str, ...] = ()
) -> Stage:
    def run(folder: Path) -> dict:
        from irg_rl.train.sft.config import SFTRecipe
        from irg_rl.train.sft.trainer import train

        overrides = [f"data.root={out / 'data'}", f"train.output_dir={folder}"]
        if extra_roots:
            overrides.append(f"data.extra_roots=[{','.join(str(out / r) for r in extra_roots)}]")
        if init_from:
            overrides.append(f"init.from_checkpoint={_latest_checkpoint(out / init_from)}")
        recipe = load_config(SFTRecipe, _recipe(name), overrides + opts.overrides.get(name, []))
        logs = train(recipe)
        last = logs[-1] if logs else {}
        return {"checkpoint": str(_latest_checkpoint(folder)), "steps": len(logs), "last_log": last}

    return Stage(name, run)


def _grpo_stage(opts: DemoOptions, out: Path) -> Stage:
    def run(folder: Path) -> dict:
        from irg_rl.train.rl.grpo import train
        from irg_rl.train.rl.recipe import GRPORecipe

        overrides = [
            f"model.source={_latest_checkpoint(out / 'sft_stage2_self')}",
            f"train.output_dir={folder}",
            # the demo evaluates every stage with the same harness afterwards
            "eval.at_start=false",
            "eval.num_prompts=0",
        ]
        recipe = load_config(GRPORecipe, _recipe("grpo"), overrides + opts.overrides.get("grpo", []))
        logs = train(recipe)
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in logs))
        return {"checkpoint": str(_latest_checkpoint(folder)), "steps": len(logs)}

    return Stage("grpo", run)


def _eval_stage(opts: DemoOptions, out: Path, name: str, trained_by: str | None) -> Stage:
    def run(folder: Path) -> dict:
        from irg_rl.eval.eval_config import EvalRecipe
        from irg_rl.eval.runner import run_eval, summary_columns, summary_row

        source = str(_latest_checkpoint(out / trained_by)) if trained_by else "tiny"
        main_row = trained_by in ("sft_stage2", "sft_stage2_self", "grpo")
        images = opts.eval_images_per_prompt if main_row else opts.baseline_images_per_prompt
        overrides = [
            f"model.source={source}",
            f"prompts.file={out / 'data' / 'prompts_heldout.jsonl'}",
            f"eval.images_per_prompt={images}",
            f"eval.out={folder}",
        ]
        recipe = load_config(EvalRecipe, _recipe("eval"), overrides + opts.overrides.get(name, []))
        results = run_eval(recipe, folder)
        return {
            "model": source,
            "columns": summary_columns(),
            "row": summary_row(results),
            "num_prompts": results["num_prompts"],
            "images_per_prompt": results["images_per_prompt"],
            "report": results["paths"].get("report"),
        }

    return Stage(name, run)


def _report_stage(opts: DemoOptions, out: Path) -> Stage:
    def run(folder: Path) -> dict:
        from experiments.demo.report import write_demo_report

        return write_demo_report(out, folder, EVAL_ROWS)

    return Stage("report", run)


def build_stages(opts: DemoOptions) -> list[Stage]:
    out = Path(opts.out)
    factories = {
        "data": lambda: _data_stage(opts, out),
        "sft_stage1": lambda: _sft_stage(opts, out, "sft_stage1", None),
        "sft_stage2": lambda: _sft_stage(opts, out, "sft_stage2", "sft_stage1"),
        "self_data": lambda: _self_data_stage(opts, out),
        "sft_stage2_self": lambda: _sft_stage(
            opts, out, "sft_stage2_self", "sft_stage2", extra_roots=("self_data",)
        ),
        "grpo": lambda: _grpo_stage(opts, out),
        "report": lambda: _report_stage(opts, out),
        **{name: (lambda n=name, t=t: _eval_stage(opts, out, n, t)) for name, (_, t) in EVAL_ROWS.items()},
    }
    unknown = [s for s in opts.stages if s not in factories]
    if unknown:
        raise ValueError(f"unknown demo stage(s) {unknown}; valid: {list(factories)}")
    return [factories[s]() for s in opts.stages]


def run_demo(opts: DemoOptions) -> dict:
    out = Path(opts.out)
    summaries = run_stages(out, build_stages(opts), fresh=opts.fresh)
    report = stage_summary(out, "report")
    print(f"\nShapesWorld IRGL data (six learning modes, official parquet format): {out / 'data'}")
    if report:
        print(report["table_text"])
        print(f"\nHTML report: {report['html']}")
    return summaries
