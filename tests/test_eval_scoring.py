"""Per-turn scoring: benchmark aggregation of judge answers (hand-checked), default rewards, real scorers."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from irg_rl.eval.prompt_sets import EvalPrompt
from irg_rl.eval.scoring import aggregate_answers, build_eval_reward, resolve_reward_spec, score_images
from irg_rl.tasks.shapes import ShapesWorldConfig, generate_prompts, render


def _answers(values):
    return {"answers": [{"question": f"q{i}", "reply": "", "score": v} for i, v in enumerate(values)]}


def test_tiif_answers_checked_against_expected():
    meta = {"questions": ["a", "b", "c", "d"], "expected_answers": ["yes", "no", "yes", "no"]}
    # yes, yes, no(unparsable counts wrong), no  -> right, wrong, wrong, right
    score, extra = aggregate_answers(meta, _answers([1.0, 1.0, None, 0.0]), fallback=0.123)
    assert score == pytest.approx(0.5)
    assert extra["correct"] == [True, False, False, True] and extra["unparsed"] == 1


def test_dpg_dependencies_zero_children_of_a_no():
    meta = {
        "questions": ["car?", "red car?", "tree?", "tall tree?"],
        "proposition_ids": [1, 2, 3, 4],
        "dependencies": [[], [1], [], [3]],
    }
    # car no -> "red car" zeroed although answered yes; tree yes, tall yes
    score, extra = aggregate_answers(meta, _answers([0.0, 1.0, 1.0, 1.0]), fallback=0.0)
    assert score == pytest.approx(2 / 4)
    assert extra["yes"][2] == 1.0 and extra["after_dependencies"][2] == 0.0


def test_wise_weighted_scores():
    meta = {
        "questions": ["c", "r", "a"],
        "question_weights": [0.7, 0.2, 0.1],
        "question_names": ["c", "r", "a"],
    }
    score, _ = aggregate_answers(meta, _answers([1.0, 0.5, 0.0]), fallback=0.0)
    assert score == pytest.approx(0.7 + 0.1)
    score, extra = aggregate_answers(meta, _answers([1.0, None, 0.0]), fallback=0.0)
    assert math.isnan(score) and "unparsable" in extra["na"]
    # no questions in the metadata: the reward's own score is kept
    assert aggregate_answers({}, {"strict": 1.0}, fallback=0.4) == (0.4, {})


def test_reward_spec_defaults_and_overrides():
    spec = resolve_reward_spec("wise", {"args": {"url": "http://x/v1"}})
    assert spec.name == "vlm_judge" and spec.args == {"scale_max": 2.0, "url": "http://x/v1"}
    spec = resolve_reward_spec("geneval", {"name": "clip_score", "args": {"model_name": "m"}})
    assert spec.name == "clip_score" and spec.args == {"model_name": "m"}
    with pytest.raises(ValueError, match="reward.args.url"):
        build_eval_reward("tiif")
    with pytest.raises(ValueError, match="detector_args.path"):
        build_eval_reward("geneval")


def _shapes_prompts(n):
    return [
        EvalPrompt(f"{i:05d}", m["prompt"], m, m["tag"])
        for i, m in enumerate(generate_prompts(ShapesWorldConfig(), n, split="heldout"))
    ]


def test_shapes_and_geneval_with_shapes_detector_agree_on_rendered_images():
    cfg = ShapesWorldConfig()
    prompts = _shapes_prompts(12)
    rng = np.random.default_rng(0)
    good = [Image.fromarray(render(p.metadata, cfg, rng)) for p in prompts]
    blank = [Image.new("RGB", (32, 32), (255, 255, 255)) for _ in prompts]
    # GenEval's rules exactly (extras allowed) so both scorers judge the same clauses
    shapes, _ = build_eval_reward("shapes", {"args": {"world": {"forbid_extra_objects": False}}})
    geneval, _ = build_eval_reward(
        "geneval", {"args": {"detector": "irg_rl.tasks.shapes.detector:ShapesWorldDetector"}}
    )
    for reward in (shapes, geneval):
        right = score_images(reward, prompts, good)
        assert [s.strict for s in right] == [1.0] * len(prompts)
        wrong = score_images(reward, prompts, blank)
        assert all(s.strict == 0.0 and s.partial < 1.0 for s in wrong)
    # the two scorers give the same partial credit on blank images (same GenEval clauses)
    a = [s.partial for s in score_images(shapes, prompts, blank)]
    b = [s.partial for s in score_images(geneval, prompts, blank)]
    assert a == pytest.approx(b)


class _YesNoJudge(BaseHTTPRequestHandler):
    """OpenAI-compatible chat endpoint: answers 'Yes.' to questions mentioning a cat, else 'No.'."""

    def log_message(self, *a):
        pass

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = next(p["text"] for p in body["messages"][-1]["content"] if p["type"] == "text")
        assert text.endswith("Answer yes or no.")
        reply = "Yes." if "cat" in text else "No."
        data = json.dumps({"choices": [{"message": {"content": reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_tiif_scored_through_a_judge_endpoint():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _YesNoJudge)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        reward, _ = build_eval_reward(
            "tiif", {"args": {"url": f"http://127.0.0.1:{srv.server_address[1]}/v1"}}
        )
        p = EvalPrompt(
            "t0",
            "A cat beneath a microwave.",
            {
                "questions": ["Is there a cat?", "Is there a dog?", "Is there a horse?"],
                "expected_answers": ["yes", "no", "yes"],
            },
        )
        (s,) = score_images(reward, [p], [Image.new("RGB", (8, 8))])
    finally:
        srv.shutdown()
    assert s.score == pytest.approx(2 / 3) and s.strict == 0.0 and s.partial == pytest.approx(2 / 3)
    assert s.details["correct"] == [True, True, False]
