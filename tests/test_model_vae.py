"""VAEs: grid codec exact on grid scenes, FLUX AE key layout and save/load, tiny AE training (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from irg_rl.models.vae import load_vae
from irg_rl.models.vae.flux_ae import FluxAEConfig, FluxAutoencoder
from irg_rl.tasks.shapes import ShapesWorldConfig, generate_prompts, render
from irg_rl.tasks.shapes.grid_codec import GridCodec

torch.set_num_threads(1)
FLUX_REF = Path("/work/shared/reference/flux-vae-state-dict.tsv")


def _images(n=24, seed=0):
    cfg = ShapesWorldConfig()
    metas = generate_prompts(cfg, n, seed, "train")
    return cfg, torch.stack([torch.from_numpy(render(m, cfg, i)) for i, m in enumerate(metas)])


def test_grid_codec_exact_and_tokens(tmp_path):
    world, imgs = _images()
    codec = GridCodec(world)
    lat = codec.encode(imgs)
    assert lat.shape == (len(imgs), 8, 4, 4) and codec.downsample == 8
    assert torch.equal(codec.decode(lat), imgs)
    noisy = lat + 0.1 * torch.randn_like(lat)  # nearest-code decoding tolerates small errors
    assert torch.equal(codec.decode(noisy), imgs)
    tokens = codec.to_tokens(lat, 1)
    assert tokens.shape == (len(imgs), 16, 8)
    assert torch.equal(codec.from_tokens(tokens, (4, 4), 1), lat)
    codec.save(tmp_path / "ae.safetensors")
    again = GridCodec.load(tmp_path / "ae.safetensors")
    assert torch.equal(again.codes, codec.codes) and torch.equal(again.decode(lat), imgs)


def test_flux_layout_matches_reference():
    with torch.device("meta"):
        ours = {k: tuple(v.shape) for k, v in FluxAutoencoder().state_dict().items()}
    rows = [ln.split("\t") for ln in FLUX_REF.read_text().splitlines() if ln and not ln.startswith("#")]
    ref = {n: tuple(int(x) for x in s.strip("[]").split(",")) for n, s in rows}
    assert ours == ref


def test_flux_tiny_round_trip(tmp_path):
    torch.manual_seed(0)
    ae = FluxAutoencoder(FluxAEConfig(ch=8, ch_mult=[1, 2], num_res_blocks=1, z_channels=4, groups=4)).eval()
    _, imgs = _images(2)
    with torch.no_grad():
        lat = ae.encode(imgs)
        assert lat.shape == (2, 4, 16, 16)
        out = ae.decode(lat)
    assert out.shape == imgs.shape and out.dtype == torch.uint8
    ae.save(tmp_path / "ae.safetensors")

    class Cfg:
        vae_kind = "flux"

    again = load_vae(tmp_path, Cfg())
    with torch.no_grad():
        assert torch.equal(again.encode(imgs), lat)


@pytest.mark.slow
def test_tiny_ae_trains():
    from irg_rl.models.vae.tiny_ae import train_tiny_ae

    _, imgs = _images(512)
    ae, stats = train_tiny_ae(imgs, steps=1500, max_seconds=150)
    with torch.no_grad():
        lat = ae.encode(imgs[:64])
        rec = ae.decode(lat).float()
    assert lat.shape == (64, 8, 4, 4)
    assert (rec - imgs[:64].float()).abs().mean() < 20, stats


def test_vae_kinds_come_from_the_models_and_the_plugins():
    from irg_rl.models.configs import tiny, vae_kinds
    from irg_rl.models.vae import vae_class

    # grid comes from the ShapesWorld task's entry point
    assert vae_kinds()[:2] == ("flux", "tiny") and "grid" in vae_kinds()
    assert vae_class("grid") is GridCodec
    cfg = tiny()
    cfg.vae_kind = "nope"
    with pytest.raises(ValueError, match="vae_kind must be one of"):
        cfg.validate()
    with pytest.raises(ValueError, match="unknown vae_kind 'nope'.*irg_rl.vae"):
        vae_class("nope")
