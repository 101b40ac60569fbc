"""The copy probe on a one-step SFT checkpoint of the small model and a small real ShapesWorld dataset."""

import pytest
import torch
from _sft_data import make_dataset, reset_accelerate, small_recipe

from experiments.probes.copy_probe import probe
from irg_rl.train.sft.trainer import train


def test_probe_measures_the_image_1_block(tmp_path):
    torch.set_num_threads(2)
    data = make_dataset(tmp_path / "data", num_prompts=12)
    reset_accelerate()
    train(small_recipe(data, tmp_path / "sft", "train.max_steps=1"))
    rows = probe(str(tmp_path / "sft"), str(data), rows=12)
    pairs = rows["correct"] + rows["corrupted"]
    assert len(pairs) == 12 and all(w > 0 and wo > 0 for w, wo in pairs)
    # random attention weights read the block, so removing it changes image_2's loss
    assert max(abs(w - wo) for w, wo in pairs) > 1e-6
    assert probe(str(tmp_path / "sft"), str(data), rows=12) == rows  # same noise and timesteps each call
    with pytest.raises(FileNotFoundError):
        probe(str(tmp_path / "sft"), str(tmp_path / "nowhere"), rows=1)
