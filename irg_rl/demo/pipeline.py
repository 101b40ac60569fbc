"""The demo pipeline: ShapesWorld data -> (later stages) ... ; prints where every output is."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from irg_rl.data.shapes_builder import ShapesDataConfig, build_shapes_data
from irg_rl.demo.stages import Stage, run_stages


@dataclass
class DemoOptions:
    """Options of `scripts/demo.py`."""

    # run folder
    out: str = "runs/demo"
    # delete earlier results first
    fresh: bool = False
    # ShapesWorld training prompts
    num_prompts: int = 2000


def _data_stage(opts: DemoOptions) -> Stage:
    def run(folder: Path) -> dict:
        return build_shapes_data(folder, ShapesDataConfig(num_prompts=opts.num_prompts))

    return Stage("data", run)


def run_demo(opts: DemoOptions) -> dict:
    out = Path(opts.out)
    summaries = run_stages(out, [_data_stage(opts)], fresh=opts.fresh)
    print(f"\nShapesWorld IRGL data (six learning modes, official parquet format): {out / 'data'}")
    print(f"preview image grid (prompt | image_1 | image_2): {out / 'data' / 'preview.png'}")
    return summaries
