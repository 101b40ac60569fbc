"""The layout-kept diagnostic on rendered ShapesWorld images and a hand-made evaluation folder."""

import json

import numpy as np
import pytest
from PIL import Image

from experiments.probes.layout_kept import layout_kept, layout_kept_stats
from irg_rl.tasks.shapes import ShapesWorldConfig, corrupt, generate_prompts, layout_scene, render_scene
from irg_rl.tasks.shapes.text import KEEP_SENTENCES, KEEP_VERDICT

CFG = ShapesWorldConfig()


def _pair(seed: int):
    meta = generate_prompts(CFG, 1, seed=seed)[0]
    scene = layout_scene(meta, CFG, seed)
    wrong, _ = corrupt(meta, CFG, seed, scene=scene)
    return render_scene(scene, CFG), render_scene(wrong, CFG)


def test_keep_verdict_finds_every_keep_sentence_the_writer_uses():
    assert all(KEEP_VERDICT.search(k) for k in KEEP_SENTENCES)
    assert not KEEP_VERDICT.search("This image has mistakes.")


def test_layout_kept_on_renders():
    right, wrong = _pair(0)
    assert layout_kept(right, right.copy(), CFG)
    assert not layout_kept(right, wrong, CFG)


def test_stats_of_an_evaluation_folder(tmp_path):
    right, wrong = _pair(1)
    samples = []
    # (turn-1 strict, image_2 same as image_1, think_2)
    cases = [(1.0, True, "This is already correct; I keep it."), (1.0, False, "This image has mistakes."),
             (0.0, True, "The image is wrong."), (0.0, False, "The image is wrong.")]  # fmt: skip
    for i, (strict_1, same, think_2) in enumerate(cases):
        folder = tmp_path / "samples" / f"{i:05d}"
        folder.mkdir(parents=True)
        Image.fromarray(right).save(folder / "turn1.png")
        Image.fromarray(right if same else wrong).save(folder / "turn2.png")
        samples.append(
            {
                "folder": f"samples/{i:05d}",
                "files": {"image_1": "turn1.png", "image_2": "turn2.png"},
                "turns": {"think": {"strict": strict_1}},
                "think_2": think_2,
            }
        )
    (tmp_path / "results.json").write_text(json.dumps({"samples": samples}))
    st = layout_kept_stats(tmp_path, CFG)
    assert st["all"] == {"rate": 0.5, "n": 4}
    assert st["turn_1_right"] == {"rate": 0.5, "n": 2}
    assert st["says_keep"] == {"rate": 1.0, "n": 1}
    with pytest.raises(FileNotFoundError, match="not an evaluation folder"):
        layout_kept_stats(tmp_path / "samples")
    assert np.array_equal(right, np.asarray(Image.open(tmp_path / "samples/00000/turn1.png")))
