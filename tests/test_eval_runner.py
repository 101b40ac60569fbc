"""End-to-end evaluation with a tiny random model: ShapesWorld with the shapes scorer, and a GenEval-format file
with the geneval reward over the ShapesWorld detector (scores of an untrained model are near chance; what is
checked is the files, the JSON and that the numbers follow from the per-sample scores)."""

from __future__ import annotations

import json
import re

import pytest

from irg_rl.eval.cli import main
from irg_rl.eval.metrics import TURNS
from irg_rl.eval.runner import summary_columns, summary_row

# a very small random model and short sampling (the machine is a shared 2-core CPU)
TINY = [
    "model.hidden_size=32",
    "model.intermediate_size=64",
    "model.num_layers=1",
    "sampling.steps=3",
    "sampling.turn1.max_think_tokens=4",
    "sampling.turn2.max_think_tokens=6",
    "eval.batch_size=4",
    "eval.num_threads=1",
]


def _check_outputs(out, results, n_prompts, G):
    data = json.loads((out / "results.json").read_text())
    assert data["num_prompts"] == n_prompts and data["images_per_prompt"] == G
    assert data["num_samples"] == len(data["samples"]) == n_prompts * G
    assert set(data["sampling"]) == {"irg", "no_think"}
    assert data["sampling"]["no_think"]["think"] is False and data["sampling"]["irg"]["rounds"] == 2
    assert data["sampling"]["irg"]["steps"] == 3 and "cfg_text_scale" in data["sampling"]["irg"]["turn2"]
    for t in TURNS:
        strict = [s["turns"][t]["strict"] for s in data["samples"]]
        assert data["summary"]["turns"][t]["strict"] == pytest.approx(sum(strict) / len(strict))
        assert all(v in (0.0, 1.0) for v in strict)
    tr = data["summary"]["transitions"]
    pairs = [(s["turns"]["think"]["strict"], s["turns"]["irg"]["strict"]) for s in data["samples"]]
    right1 = [b for a, b in pairs if a == 1.0]
    assert tr["turn1_correct"] == len(right1) and tr["regressed"] == sum(b == 0.0 for b in right1)
    for s in data["samples"]:
        folder = out / s["folder"]
        for name in ("nothink.png", "turn1.png", "turn1.txt", "turn2.png", "turn2.txt", "scores.json"):
            assert (folder / name).is_file(), folder / name
        assert (folder / "turn2.txt").read_text().rstrip("\n") == s["think_2"]
    md = (out / "results.md").read_text()
    assert data["prompt_set"] in md and "IRG (turn 2)" in md and "strict" in md
    html = out / "report.html"
    refs = [out / src for src in re.findall(r'<img src="([^"]+)"', html.read_text())]
    assert refs and all(r.is_file() for r in refs)
    assert len(summary_row(results)) == len(summary_columns())
    return data


def test_eval_shapes_end_to_end(tmp_path):
    out = tmp_path / "shapes"
    results = main(["--prompts", "shapes", "--out", str(out), "prompts.limit=5", *TINY])
    data = _check_outputs(out, results, 5, 1)
    assert data["reward"]["name"] == "shapes"
    assert [s["folder"] for s in data["samples"]][:2] == ["samples/00000", "samples/00001"]
    details = json.loads((out / "samples" / "00000" / "scores.json").read_text())["details"]
    assert "clauses" in details["irg"] and "description" in details["think"]


def test_eval_geneval_file_with_detector(tmp_path):
    rows = [
        {
            "tag": "single_object",
            "include": [{"class": "circle", "count": 1}],
            "prompt": "a photo of a circle",
        },
        {
            "tag": "colors",
            "include": [{"class": "square", "count": 1, "color": "red"}],
            "prompt": "a photo of a red square",
        },
        {
            "tag": "position",
            "include": [
                {"class": "circle", "count": 1},
                {"class": "triangle", "count": 1, "position": ["left of", 0]},
            ],
            "prompt": "a photo of a triangle left of a circle",
        },
    ]
    f = tmp_path / "evaluation_metadata.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "geneval"
    results = main(
        [
            "--prompts",
            "geneval",
            "--prompts-file",
            str(f),
            "--out",
            str(out),
            "reward.args.detector=irg_rl.tasks.shapes.detector:ShapesWorldDetector",
            "eval.images_per_prompt=2",
            *TINY,
        ]
    )
    data = _check_outputs(out, results, 3, 2)
    assert data["reward"]["name"] == "geneval" and data["reward"]["detector"].endswith("ShapesWorldDetector")
    assert data["prompt_file"] == str(f)
    assert (out / "samples" / "00001" / "1" / "turn2.png").is_file()  # two images per prompt -> <id>/<k>/
    assert set(data["per_category"]) == {"single_object", "colors", "position"}
