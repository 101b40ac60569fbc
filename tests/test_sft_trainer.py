"""The SFT trainer on a tiny model and a small real ShapesWorld dataset (one process, CPU)."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from _sft_data import make_dataset, reset_accelerate, small_recipe
from safetensors.torch import load_file

from irg_rl.data.format import DataFormatError
from irg_rl.data.modes import IMPROVING_FULL, INITIAL_THINKING_GENERATION
from irg_rl.models.checkpoint import load_model
from irg_rl.train.freeze import param_group
from irg_rl.train.sft.trainer import SFTTrainer, train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    torch.set_num_threads(2)
    return make_dataset(tmp_path_factory.mktemp("shapes"), num_prompts=12)


def _trainer(data, out, *overrides):
    reset_accelerate()
    return SFTTrainer(small_recipe(data, out, *overrides))


def test_short_run_changes_every_trainable_parameter_and_no_frozen_one(data, tmp_path):
    tr = _trainer(
        data, tmp_path, "freeze.vit=true", f"data.mandatory_modes=[{IMPROVING_FULL}]", "train.max_steps=2"
    )
    before = {n: p.detach().clone() for n, p in tr.bagel.named_parameters()}
    trainable = {n for n, p in tr.bagel.named_parameters() if p.requires_grad}
    assert trainable and all("vit" in param_group(n) for n in set(before) - trainable)
    tr.run()
    after = dict(tr.bagel.named_parameters())
    unchanged = [n for n in trainable if torch.equal(before[n], after[n])]
    assert unchanged == []
    changed_frozen = [n for n in set(before) - trainable if not torch.equal(before[n], after[n])]
    assert changed_frozen == []


def test_batch_4_accum_1_matches_batch_1_accum_4(data, tmp_path):
    common = ("train.max_steps=2", "optim.eps=1e-8", "train.ema_decay=0")
    a = _trainer(data, tmp_path / "a", "data.samples_per_micro_batch=4", "train.grad_accum=1", *common)
    hist_a = a.run()
    b = _trainer(data, tmp_path / "b", "data.samples_per_micro_batch=1", "train.grad_accum=4", *common)
    hist_b = b.run()
    for x, y in zip(hist_a, hist_b, strict=True):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-5)
    pa_, pb = dict(a.bagel.named_parameters()), dict(b.bagel.named_parameters())
    worst = max(float((pa_[n] - pb[n]).detach().abs().max()) for n in pa_)
    assert worst < 1e-5


def test_kill_and_resume_reproduces_losses(data, tmp_path):
    reset_accelerate()
    ref = train(small_recipe(data, tmp_path / "ref", "train.max_steps=4"))
    out = tmp_path / "run"
    # the "crash": step 3 runs but is never saved (checkpoint at step 2 only)
    reset_accelerate()
    train(small_recipe(data, out, "train.max_steps=4", "train.save_every=2", "train.stop_after_steps=3"))
    assert json.loads((out / "checkpoints" / "latest").read_text())["step"] == 2
    reset_accelerate()
    resumed = train(small_recipe(data, out, "train.max_steps=4", "train.resume_from=auto"))
    assert [h["step"] for h in resumed] == [1, 2, 3, 4]
    for x, y in zip(ref, resumed, strict=True):
        for k in ("loss", "ce", "mse"):
            assert x[k] == pytest.approx(y[k], rel=1e-6, nan_ok=True)


def test_checkpoint_layout_and_stage2_init_from_ema_or_model(data, tmp_path):
    reset_accelerate()
    train(small_recipe(data, tmp_path / "s1", "train.max_steps=2", "train.ema_decay=0.5"))
    ck = tmp_path / "s1" / "checkpoints" / "step-000002"
    names = {p.name for p in (ck / "model").iterdir()}
    assert {
        "ema.safetensors",
        "model.safetensors",
        "ae.safetensors",
        "config.json",
        "tokenizer.json",
    } <= names
    ema, raw = (
        load_file(str(ck / "model" / "ema.safetensors")),
        load_file(str(ck / "model" / "model.safetensors")),
    )
    assert any(not torch.equal(ema[k], raw[k]) for k in raw)  # EMA 0.5 lags the raw weights
    for weights, ref in (("ema", ema), ("model", raw)):
        tr = _trainer(
            data, tmp_path / f"s2-{weights}", f"init.from_checkpoint={ck}", f"init.weights={weights}"
        )
        sd = tr.bagel.state_dict()
        assert all(torch.equal(sd[k], ref[k]) for k in ref if k in sd)
    model = load_model(ck / "model", dtype=torch.float32)  # the inference loader reads it
    assert model.config.llm.hidden_size == 32


def test_lora_trains_only_adapters_and_exports_merged_weights(data, tmp_path):
    tr = _trainer(
        data, tmp_path, "freeze.lora.enabled=true", "freeze.lora.r=4", "freeze.lora.alpha=8",
        "freeze.lora.target_modules=.*(q_proj|v_proj)_moe_gen", f"data.mandatory_modes=[{IMPROVING_FULL}]",
        "train.max_steps=2",
    )  # fmt: skip
    trainable = [n for n, p in tr.bagel.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_" in n for n in trainable)
    tr.run()
    merged = load_model(tmp_path / "checkpoints" / "step-000002" / "model", dtype=torch.float32)
    assert not any("lora" in k for k in merged.state_dict())


def test_malformed_row_stops_training_naming_file_row_field(tmp_path):
    mode_dir = tmp_path / "data" / INITIAL_THINKING_GENERATION
    mode_dir.mkdir(parents=True)
    good = [
        {"role": "user", "content": "a red circle"},
        {"role": "assistant", "content": [{"type": "text", "content": "ok"}]},
    ]
    bad = [{"role": "user", "content": "a red circle"}, {"role": "assistant", "content": [{"type": "text"}]}]
    pq.write_table(
        pa.table({"conversation": [json.dumps(good), json.dumps(bad)]}), mode_dir / "part-00000.parquet"
    )
    reset_accelerate()
    recipe = small_recipe(tmp_path / "data", tmp_path / "out")
    recipe.data.mode_weights = {INITIAL_THINKING_GENERATION: 1.0}
    with pytest.raises(DataFormatError) as info:
        train(recipe)
    assert "part-00000.parquet: row 1: field 'conversation[1].content[0].content'" in str(info.value)


def test_resume_refuses_a_changed_lr_unless_allowed_and_then_applies_it(data, tmp_path):
    from irg_rl.config import ConfigError

    out = tmp_path / "out"
    reset_accelerate()
    train(small_recipe(data, out, "train.max_steps=3", "train.save_every=1", "train.stop_after_steps=1"))
    reset_accelerate()
    with pytest.raises(ConfigError, match=r"optim.lr: 0.001 in the checkpoint, 0.0005 now"):
        SFTTrainer(small_recipe(data, out, "train.max_steps=3", "train.resume_from=auto", "optim.lr=5e-4"))
    reset_accelerate()
    t = SFTTrainer(
        small_recipe(
            data,
            out,
            "train.max_steps=3",
            "train.resume_from=auto",
            "optim.lr=5e-4",
            "train.allow_recipe_change=true",
        )
    )
    assert t.step == 1 and t.scheduler.get_last_lr()[0] == pytest.approx(5e-4)
