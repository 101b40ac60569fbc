"""`sampling.parity: irg` (the IRG research code's evaluation path): thinks re-tokenized into the context, pixels
truncated; RL refuses it; the system prompt read from a file or the checkpoint directory."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from _engine_helpers import PROMPTS, components, sampling
from _rl_helpers import grpo_recipe, random_checkpoint

from irg_rl.config import ConfigError
from irg_rl.inference import IRGEngine
from irg_rl.inference.components import resolve_system_prompt
from irg_rl.models.vae.base import float_to_images

torch.set_num_threads(1)


def test_truncated_and_rounded_pixels_by_hand():
    x = torch.tensor([-1.0, 0.0, 0.999, 1.0, 0.5]).reshape(1, 1, 1, 5).expand(1, 3, 1, 5)
    assert float_to_images(x)[0, 0, :, 0].tolist() == [0, 128, 255, 255, 191]  # 127.5 -> 128; 191.25 -> 191
    assert float_to_images(x, "truncate")[0, 0, :, 0].tolist() == [0, 127, 254, 255, 191]
    with pytest.raises(ValueError, match="rounding"):
        float_to_images(x, "floor")


def test_parity_reencodes_each_think_and_samples_the_same_tokens():
    model, tok, vae = components(seed=3)
    base = sampling(temperature=0.7)
    default = IRGEngine(model, tok, vae, base).generate(PROMPTS, None, 2, "euler")
    parity_engine = IRGEngine(model, tok, vae, dataclasses.replace(base, parity="irg"))
    parity = parity_engine.generate(PROMPTS, None, 2, "euler")
    changed = 0
    for a, b in zip(default.trajectories, parity.trajectories, strict=True):
        # round 1 is sampled from the same context, so the tokens are the same (the copy changes nothing)
        assert torch.equal(a.segment("think_1").token_ids, b.segment("think_1").token_ids)
        for name in ("think_1", "think_2"):
            seg = b.segment(name)
            assert seg.context_ids == parity_engine.piece(seg.text)  # the decoded text, tokenized again
            raw = [parity_engine.special.im_start, *seg.token_ids.tolist()]
            changed += seg.context_ids[: len(raw)] != raw
        assert b.segment("image_1").image.dtype == torch.uint8
    assert (
        changed > 0
    )  # the random model's token strings tokenize differently once decoded: a real difference


def test_rl_refuses_parity_and_the_system_prompt_comes_from_a_file(tmp_path):
    ckpt = random_checkpoint(tmp_path)
    with pytest.raises(ConfigError, match="sampling.parity"):
        grpo_recipe(ckpt, tmp_path / "out", **{"sampling.parity": "irg"})
    s = sampling()
    (tmp_path / "sys.txt").write_text("Think first.\n")
    assert (
        resolve_system_prompt(
            dataclasses.replace(s, system_prompt_file=str(tmp_path / "sys.txt")), "x"
        ).system_prompt
        == "Think first."
    )
    (ckpt / "system_prompt.txt").write_text("From the checkpoint.")
    got = resolve_system_prompt(dataclasses.replace(s, system_prompt_file="checkpoint"), str(ckpt))
    assert got.system_prompt == "From the checkpoint." and got.system_prompt_file == ""
    with pytest.raises(FileNotFoundError, match="system_prompt_file"):
        resolve_system_prompt(dataclasses.replace(s, system_prompt_file=str(tmp_path / "none.txt")), "x")
