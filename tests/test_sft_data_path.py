"""The SFT data path on real-world inputs: RGBA images composited on white, a user turn's need_loss, a corrupt
image skipped and counted (or named, part and all) under data.on_error."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from irg_rl.data import modes as M
from irg_rl.data.format import (
    DataFormatError,
    Part,
    Turn,
    parse_conversation,
    text_part,
    to_rgb,
    write_mode_shard,
)
from irg_rl.models.configs import tiny
from irg_rl.models.tokenizer import train_tokenizer
from irg_rl.tasks.shapes import ShapesWorldConfig
from irg_rl.tasks.shapes.grid_codec import GridCodec
from irg_rl.train.sft.conversation_packing import PackingOptions, build_micro_batch, encode_conversation
from irg_rl.train.sft.sampler import MixedSampler
from irg_rl.train.sft.setup import ModelSampleEncoder

CFG = tiny()
OPTS = PackingOptions(vae_cond_dropout=0.0, timestep_shift=3.0, samples_per_micro_batch=2)


@pytest.fixture(scope="module")
def enc():
    tok = train_tokenizer(["a red circle", "plan: draw it", "the image lacks a circle"] * 3, vocab_size=300)
    return ModelSampleEncoder(tok, GridCodec(ShapesWorldConfig(), dim=CFG.vae_latent_channels), CFG)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_rgba_is_composited_on_white():
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red everywhere, opaque only in the top-left pixel
    rgba[0, 0, 3] = 255
    rgb = np.asarray(to_rgb(Image.fromarray(rgba, "RGBA")))
    assert rgb[0, 0].tolist() == [255, 0, 0] and rgb[3, 3].tolist() == [255, 255, 255]
    part = Part("image", _png(Image.fromarray(rgba, "RGBA")), need_loss=False, need_vit=True)
    assert np.asarray(part.pil())[1, 1].tolist() == [255, 255, 255]  # not black


def test_user_need_loss_round_trips_and_trains_the_prompt(enc):
    raw = json.dumps(
        [
            {"role": "user", "content": "a red circle", "need_loss": True},
            {
                "role": "assistant",
                "content": [{"type": "text", "content": "plan: draw it", "need_loss": True}],
            },
        ]
    )
    conv = parse_conversation(raw)
    assert conv[0].need_loss is True
    sample = encode_conversation(conv, M.INITIAL_THINKING_GENERATION, 0, enc, OPTS)
    texts = [s for s in sample.segments if s.kind == "text"]
    assert [s.loss for s in texts] == [True, True]
    plain = encode_conversation(
        [Turn("user", "a red circle"), conv[1]], M.INITIAL_THINKING_GENERATION, 0, enc, OPTS
    )
    assert [s.loss for s in plain.segments if s.kind == "text"] == [False, True]
    with pytest.raises(DataFormatError, match=r"conversation\[0\]\.need_loss"):
        parse_conversation(json.dumps([{"role": "user", "content": "x", "need_loss": "yes"}]))


def _corrupt_shard(root):
    good = Image.fromarray(np.full((32, 32, 3), 255, dtype=np.uint8))
    convs = []
    for i in range(3):
        img = _png(good) if i != 1 else b"\x89PNG\r\n\x1a\n not an image"
        parts = [text_part("plan: draw it"), Part("image", img, need_loss=True)]
        convs.append([Turn("user", "a red circle"), Turn("assistant", parts)])
    write_mode_shard(root, M.INITIAL_FULL, convs)


def test_corrupt_image_is_skipped_and_counted_under_on_error_skip(tmp_path, enc):
    _corrupt_shard(tmp_path)
    sampler = MixedSampler(tmp_path, {M.INITIAL_FULL: 1.0}, shuffle_files=False, on_error="skip")
    batch = build_micro_batch(sampler, enc, OPTS, CFG.max_latent_size, CFG.vit_max_num_patch_per_side)
    assert len(batch.modes) == 2 and sampler.stats.skipped == 1
    assert "row 1: field 'conversation[1].content[1]': cannot decode image" in sampler.stats.errors[0]


def test_corrupt_image_names_the_part_under_on_error_raise(tmp_path, enc):
    _corrupt_shard(tmp_path)
    sampler = MixedSampler(tmp_path, {M.INITIAL_FULL: 1.0}, shuffle_files=False)
    with pytest.raises(
        DataFormatError, match=r"row 1: field 'conversation\[1\]\.content\[1\]': cannot decode"
    ):
        build_micro_batch(sampler, enc, OPTS, CFG.max_latent_size, CFG.vit_max_num_patch_per_side)
