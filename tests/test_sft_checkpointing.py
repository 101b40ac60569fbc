import json

import pytest
import torch
from torch import nn

from irg_rl.config import ConfigError, load_config
from irg_rl.train import checkpointing as ck
from irg_rl.train.optim import lr_factor
from irg_rl.train.sft.config import SFTRecipe
from irg_rl.train.sft.ema import EMA


def _save(out, step):
    final = ck.step_dir(out, step)
    tmp = ck.prepare_tmp(final)
    (tmp / "trainer.json").write_text(json.dumps({"step": step}))
    return ck.finalize(tmp, final, step)


def test_crash_mid_save_keeps_previous_latest(tmp_path):
    _save(tmp_path, 2)
    # a save of step 4 that died before COMPLETE: a half-written temp dir
    half = ck.prepare_tmp(ck.step_dir(tmp_path, 4))
    (half / "state").mkdir()
    assert ck.latest_checkpoint(tmp_path).name == "step-000002"
    assert ck.resolve_resume("auto", tmp_path).name == "step-000002"
    # even a renamed directory without the marker is not taken
    half.rename(ck.step_dir(tmp_path, 4))
    (tmp_path / "checkpoints" / "latest").unlink()
    assert ck.latest_checkpoint(tmp_path).name == "step-000002"
    with pytest.raises(ValueError, match="COMPLETE"):
        ck.resolve_resume(str(ck.step_dir(tmp_path, 4)), tmp_path)


def test_resume_resolution_and_pruning(tmp_path):
    assert ck.resolve_resume("auto", tmp_path) is None
    assert ck.resolve_resume("never", tmp_path) is None
    with pytest.raises(FileNotFoundError, match="resume_from"):
        ck.resolve_resume(str(tmp_path / "nope"), tmp_path)
    for s in (1, 2, 3):
        _save(tmp_path, s)
    assert ck.resolve_resume(str(tmp_path), tmp_path).name == "step-000003"  # a run directory
    _save(tmp_path, 3)  # saving the same step again replaces it
    assert [p.name for p in ck.prune(tmp_path, 1)] == ["step-000001", "step-000002"]
    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [3]


def test_ema_update_swap_and_state():
    model = nn.Linear(2, 1, bias=False)
    nn.init.zeros_(model.weight)
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)
    assert torch.allclose(ema.shadow["weight"], torch.full((1, 2), 0.1))
    with ema.swapped_into(model):
        assert torch.allclose(model.weight, torch.full((1, 2), 0.1))
    assert torch.allclose(model.weight, torch.ones(1, 2))
    other = EMA(model, 0.9)
    other.load_state_dict(ema.state_dict())
    assert torch.equal(other.shadow["weight"], ema.shadow["weight"])


def test_lr_schedule():
    r = load_config(SFTRecipe, None, ["data.root=x", "train.output_dir=y", "optim.warmup_steps=4"])
    assert [lr_factor(s, r.optim, 10) for s in (0, 3, 4, 9)] == [0.25, 1.0, 1.0, 1.0]
    r.optim.scheduler, r.optim.min_lr_ratio = "cosine", 0.1
    assert lr_factor(4, r.optim, 10) == pytest.approx(1.0) and lr_factor(10, r.optim, 10) == pytest.approx(
        0.1
    )


@pytest.mark.parametrize(
    "name", ["shapes/sft_stage1", "shapes/sft_stage2", "bagel7b/sft_stage1", "bagel7b/sft_stage2"]
)
def test_recipes_load(name):
    from pathlib import Path

    path = Path(__file__).parent.parent / "recipes" / f"{name}.yaml"
    r = load_config(SFTRecipe, path)
    if name.endswith("stage2"):
        assert {m for m, w in r.data.mode_weights.items() if w > 0} == {
            "initial_full_learning",
            "improving_full_learning",
        }
        assert r.init.from_checkpoint


def test_recipe_errors_name_the_key():
    with pytest.raises(ConfigError, match="data.mode_wieghts"):
        load_config(SFTRecipe, None, ["data.root=x", "train.output_dir=y", "data.mode_wieghts.a=1"])
    with pytest.raises(ValueError, match="data.mode_weights: unknown learning mode 'full'"):
        load_config(SFTRecipe, None, ["data.root=x", "train.output_dir=y", "data.mode_weights.full=1"])
    with pytest.raises(ValueError, match="data.mandatory_modes"):
        load_config(
            SFTRecipe, None, ["data.root=x", "train.output_dir=y", "data.mandatory_modes=[initial_full_learning]",
                              "data.mode_weights.initial_full_learning=0"]
        )  # fmt: skip
