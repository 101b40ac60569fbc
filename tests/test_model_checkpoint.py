"""Checkpoint layout: exact round trip, errors naming bad tensors, 7B names/shapes vs the reference table."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _model_helpers import SPECIAL, random_model
from safetensors.torch import load_file, save_file

from irg_rl.models import BagelModel, PackedSequenceBuilder
from irg_rl.models.checkpoint import CheckpointError, expected_shapes, load_model, save_checkpoint
from irg_rl.models.configs import BagelConfig, ModelRecipe, bagel_7b_mot
from irg_rl.models.embeddings import sincos_2d_table

torch.set_num_threads(1)
# tensor names and shapes of the released BAGEL-7B-MoT ema.safetensors (1223 tensors), kept with the tests
REFERENCE = Path(__file__).parent / "data" / "bagel-7b-mot-state-dict.tsv"


def _seq(model):
    cfg = model.config
    b = PackedSequenceBuilder(SPECIAL, cfg.max_latent_size, cfg.vit_max_num_patch_per_side)
    b.add_text([1, 5, 6, 2], loss=True)
    b.add_vae_image(torch.ones(4, cfg.patch_latent_dim), (2, 2), t=0.4, noised=True)
    return b.build()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_round_trip_exact(tmp_path, dtype):
    model = random_model(dtype=dtype)
    save_checkpoint(model, tmp_path / "ckpt")
    loaded = load_model(tmp_path / "ckpt", dtype=dtype, special=SPECIAL)
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    with torch.no_grad():
        assert torch.equal(
            model.forward_packed(_seq(model)).velocity, loaded.forward_packed(_seq(loaded)).velocity
        )
    assert BagelConfig.from_dir(tmp_path / "ckpt").to_dict() == model.config.to_dict()
    save_checkpoint(model, tmp_path / "ckpt")  # overwriting an existing checkpoint works
    assert not list(tmp_path.glob(".ckpt*"))


def _rewrite(path: Path, edit) -> None:
    sd = load_file(str(path / "ema.safetensors"))
    edit(sd)
    save_file(sd, str(path / "ema.safetensors"))


def test_missing_misshaped_unexpected_named(tmp_path):
    save_checkpoint(random_model(), tmp_path / "c")
    name = "language_model.model.layers.1.mlp_moe_gen.up_proj.weight"
    _rewrite(tmp_path / "c", lambda sd: sd.pop(name))
    with pytest.raises(CheckpointError, match=r"missing tensors: .*mlp_moe_gen\.up_proj\.weight"):
        load_model(tmp_path / "c")
    save_checkpoint(random_model(), tmp_path / "c")
    _rewrite(tmp_path / "c", lambda sd: sd.__setitem__("vae2llm.bias", torch.zeros(3)))
    with pytest.raises(CheckpointError, match=r"mis-shaped tensors: vae2llm\.bias \(file \[3\]"):
        load_model(tmp_path / "c")
    save_checkpoint(random_model(), tmp_path / "c")
    _rewrite(tmp_path / "c", lambda sd: sd.__setitem__("foo.weight", torch.zeros(3)))
    with pytest.raises(CheckpointError, match=r"unexpected tensors: foo\.weight"):
        load_model(tmp_path / "c")


def test_pos_embeds_rebuilt_when_absent(tmp_path):
    model = random_model()
    save_checkpoint(model, tmp_path / "c")
    _rewrite(
        tmp_path / "c",
        lambda sd: [sd.pop(k) for k in ("latent_pos_embed.pos_embed", "vit_pos_embed.pos_embed")],
    )
    loaded = load_model(tmp_path / "c", dtype=torch.float32)
    assert torch.equal(loaded.latent_pos_embed.pos_embed, model.latent_pos_embed.pos_embed)
    assert torch.equal(loaded.vit_pos_embed.pos_embed, model.vit_pos_embed.pos_embed)


def test_latent_pos_scale_travels_in_config_json(tmp_path):
    recipe = ModelRecipe(source="micro", latent_pos_scale=4.0)
    model = BagelModel(recipe.build_config(), SPECIAL)
    assert torch.equal(model.latent_pos_embed.pos_embed, sincos_2d_table(32, 8, scale=4.0))
    save_checkpoint(model, tmp_path / "c")
    _rewrite(tmp_path / "c", lambda sd: sd.pop("latent_pos_embed.pos_embed"))  # rebuilt from config.json
    loaded = load_model(tmp_path / "c", dtype=torch.float32)
    assert loaded.config.latent_pos_scale == 4.0
    assert torch.equal(loaded.latent_pos_embed.pos_embed, model.latent_pos_embed.pos_embed)
    with pytest.raises(ValueError, match="latent_pos_scale must be > 0"):
        ModelRecipe(source="micro", latent_pos_scale=0.0).build_config()
    with pytest.raises(ValueError, match="apply to presets only"):
        ModelRecipe(source=str(tmp_path / "c"), latent_pos_scale=2.0).build_config()


def test_7b_names_and_shapes_match_reference():
    rows = [ln.split("\t") for ln in REFERENCE.read_text().splitlines() if ln and not ln.startswith("#")]
    ref = {name: tuple(int(x) for x in shape.strip("[]").split(",")) for name, shape in rows}
    assert len(ref) == 1223
    ours = expected_shapes(bagel_7b_mot())
    assert sorted(set(ref) - set(ours)) == [] and sorted(set(ours) - set(ref)) == []
    bad = {k: (ref[k], ours[k]) for k in ref if ref[k] != ours[k]}
    assert bad == {}
    total = sum(torch.Size(s).numel() for k, s in ours.items() if "pos_embed" not in k)
    assert 14.0e9 < total < 14.9e9  # "14.6B parameters in total"


def test_released_llm_config_names_the_plain_qwen2_layer_and_loads_as_mot():
    from irg_rl.models.configs import LLMConfig

    base = LLMConfig().to_dict()
    cfg = LLMConfig.from_dict({**base, "layer_module": "Qwen2DecoderLayer"})
    assert cfg.layer_module == "Qwen2MoTDecoderLayer"  # as the official loaders override it
    with pytest.raises(NotImplementedError, match="layer_module 'LlamaDecoderLayer'"):
        LLMConfig.from_dict({**base, "layer_module": "LlamaDecoderLayer"}).validate()
