"""The demo's stage runner: finished stages are reused, interrupted ones redone, --fresh starts over."""

import json

import pytest

from experiments.demo.pipeline import DemoOptions, build_stages
from experiments.demo.stages import DONE, Stage, run_stages


def _counting_stage(name, calls, fail=False):
    def run(folder):
        calls.append(name)
        (folder / "out.txt").write_text(name)
        if fail:
            raise RuntimeError("killed mid-stage")
        return {"value": len(calls)}

    return Stage(name, run)


def test_reuse_interrupt_and_fresh(tmp_path):
    calls = []
    run_stages(tmp_path, [_counting_stage("a", calls)], log=lambda *_: None)
    with pytest.raises(RuntimeError):
        run_stages(
            tmp_path,
            [_counting_stage("a", calls), _counting_stage("b", calls, fail=True)],
            log=lambda *_: None,
        )
    assert calls == ["a", "b"]  # "a" was reused
    assert not (tmp_path / "b" / DONE).exists()  # an interrupted stage never looks finished
    summaries = run_stages(
        tmp_path, [_counting_stage("a", calls), _counting_stage("b", calls)], log=lambda *_: None
    )
    assert calls == ["a", "b", "b"] and summaries["a"]["value"] == 1
    assert json.loads((tmp_path / "b" / DONE).read_text())["value"] == 3
    run_stages(tmp_path, [_counting_stage("a", calls)], fresh=True, log=lambda *_: None)
    assert calls[-1] == "a" and not (tmp_path / "b").exists()


def test_unknown_stage_is_named():
    with pytest.raises(ValueError, match="sft_stage3"):
        build_stages(DemoOptions(stages=["data", "sft_stage3"]))
