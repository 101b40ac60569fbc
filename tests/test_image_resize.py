"""BAGEL's official image sizes on hand-computed cases, and the SFT encoder applying them."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from irg_rl.models.image_resize import (
    VAE_TRAIN,
    VIT_INFERENCE,
    VIT_TRAIN,
    ResizeLimits,
    official_size,
    resize_official,
)


@pytest.mark.parametrize(
    "size,limits,expected",
    [
        ((1000, 700), VAE_TRAIN, (992, 704)),  # kept, snapped: 62.5 -> 62 (round half to even), 43.75 -> 44
        ((300, 200), VAE_TRAIN, (768, 512)),  # enlarged so the short side is 512
        ((4000, 3000), VAE_TRAIN, (1024, 768)),  # shrunk so the long side is 1024
        ((4000, 500), VAE_TRAIN, (1024, 128)),  # min side wins first (4096 x 512), then the long side is cut
        ((1000, 700), VIT_TRAIN, (980, 686)),  # 980 / 14 = 70, 686 / 14 = 49
        ((100, 100), VIT_INFERENCE, (224, 224)),
        (
            (3000, 3000),
            ResizeLimits(4096, 2048, 16),
            (1392, 1392),
        ),  # 3008^2 > 2048^2: sides x (2048^2 / 3008^2)
    ],
)
def test_official_size(size, limits, expected):
    assert official_size(*size, limits) == expected


def test_resize_keeps_an_image_of_the_right_size_and_resizes_others():
    img = Image.new("RGB", (768, 512), (10, 20, 30))
    assert resize_official(img, VAE_TRAIN) is img
    out = resize_official(Image.new("RGB", (300, 200), (10, 20, 30)), VAE_TRAIN)
    assert out.size == (768, 512) and out.getpixel((5, 5)) == (10, 20, 30)
    with pytest.raises(ValueError, match="positive"):
        official_size(0, 10, VAE_TRAIN)


def test_sft_encoder_resizes_for_the_vit_when_asked():
    from _engine_helpers import components

    from irg_rl.train.sft.setup import ModelSampleEncoder

    model, tok, vae = components(seed=0)
    p = model.config.vit.patch_size
    img = Image.new("RGB", (100, 70), (200, 0, 0))
    plain = ModelSampleEncoder(tok, vae, model.config)
    official = ModelSampleEncoder(tok, vae, model.config, image_resize="official")
    assert plain.vit_patches(img)[1] == (70 // p, 100 // p)  # as stored, cropped to whole patches
    w, h = official_size(100, 70, ResizeLimits(980, 378, p))
    assert official.vit_patches(img)[1] == (h // p, w // p) and (w, h) != (100, 70)


def test_inference_vit_input_is_the_official_pil_transform():
    from types import SimpleNamespace

    import numpy as np

    from irg_rl.inference.context import vit_input

    fake = SimpleNamespace(
        config=SimpleNamespace(vit=SimpleNamespace(image_size=980, patch_size=14)), device="cpu"
    )
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, size=(60, 100, 3), dtype=np.uint8)
    x = vit_input(torch.from_numpy(small), fake)
    # short side 60 -> 224 (enlarged), long side 100 -> 373.3 -> 378 (x14); PIL bicubic on uint8
    assert x.shape == (3, 224, 378)
    want = np.asarray(Image.fromarray(small).resize((378, 224), Image.Resampling.BICUBIC))
    assert torch.equal(x, torch.from_numpy(want.copy()).permute(2, 0, 1).float() / 127.5 - 1.0)
    # a model whose ViT is 32 px (the tiny preset): a 32 x 32 image is used as it is
    tiny = SimpleNamespace(
        config=SimpleNamespace(vit=SimpleNamespace(image_size=32, patch_size=8)), device="cpu"
    )
    img = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    assert torch.equal(
        vit_input(torch.from_numpy(img), tiny), torch.from_numpy(img).permute(2, 0, 1).float() / 127.5 - 1.0
    )


class _StubFluxShapedVAE:
    """Latents of FLUX's shape (16 channels, /8) without the network: the test is about sizes, not pixels."""

    def encode(self, images):
        b, h, w, _ = images.shape
        return images.float().mean(-1)[:, None].repeat(1, 16, 1, 1)[:, :, ::8, ::8][:, :, : h // 8, : w // 8]

    def to_tokens(self, latents, p):
        from irg_rl.models.patchify import patchify

        return torch.stack([patchify(lat, p) for lat in latents])


@pytest.mark.parametrize("size", [(1024, 1024), (1000, 700), (333, 517), (4000, 300)])
def test_official_sizes_fit_bagel_7b_position_tables(size):
    """At BAGEL-7B dims any image, odd-sized, huge or RGBA, packs within the latent (64) and ViT (70) tables."""
    from irg_rl.models.configs import bagel_7b_mot
    from irg_rl.models.tokenizer import train_tokenizer
    from irg_rl.train.sft.setup import ModelSampleEncoder

    cfg = bagel_7b_mot()
    tok = train_tokenizer(["a photo of a cat"] * 4, vocab_size=300)
    enc = ModelSampleEncoder(tok, _StubFluxShapedVAE(), cfg, image_resize="official")
    img = Image.new("RGBA", size, (200, 10, 10, 128))
    tokens, (gh, gw) = enc.vae_tokens(img.convert("RGB"))
    assert max(gh, gw) <= cfg.max_latent_size and tokens.shape == (gh * gw, cfg.patch_latent_dim)
    patches, (vh, vw) = enc.vit_patches(img.convert("RGB"))
    assert max(vh, vw) <= cfg.vit_max_num_patch_per_side and patches.shape[0] == vh * vw
    # without resizing, a 1024^2 image overflows the ViT table (73 patches a side > 70)
    if size == (1024, 1024):
        plain = ModelSampleEncoder(tok, _StubFluxShapedVAE(), cfg)
        assert max(plain.vit_patches(img.convert("RGB"))[1]) > cfg.vit_max_num_patch_per_side
