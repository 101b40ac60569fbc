"""GenEval rule engine with a fake detector returning given boxes and colours (known answers)."""

import math
import pickle

import numpy as np
import pytest
from PIL import Image

from rewards import RewardBatch, build_reward
from rewards.builtins.geneval.color import masked_crop
from rewards.builtins.geneval.detectors import encode_mask
from rewards.builtins.geneval.rules import Detection, GenEvalRules, evaluate, relative_position


class FakeDetector:
    """Returns the detections stored per prompt (picklable, module level)."""

    def __init__(self, table):
        self.table = table
        self.calls = []

    def detect(self, images, classes):
        self.calls.append(classes)
        return [[Detection(**d) for d in self.table[i]] for i in range(len(images))]


def D(label, box, score=0.95, color=None):  # noqa: N802
    return {"label": label, "box": box, "score": score, "color": color}


def test_relative_position_margin():
    cat = (0, 0, 10, 10)
    assert relative_position((20, 0, 30, 10), cat) == {"right of"}
    assert relative_position((11, 0, 21, 10), cat) == {"right of"}  # offset 11 shrinks to 9: 9/11 > 0.5
    assert relative_position((1, 0, 11, 10), cat) == set()  # inside the 0.1 * (10 + 10) margin
    assert relative_position((10, 10, 20, 20), cat) == {"right of", "below"}  # 8/14.1 = 0.57 on both axes
    assert relative_position((0, -30, 10, -20), cat) == {"above"}
    assert relative_position((3, 0, 13, 10), cat, margin=0.0) == {"right of"}


COUNT = {
    "tag": "counting",
    "include": [{"class": "dog", "count": 2}],
    "exclude": [{"class": "dog", "count": 3}],
}


@pytest.mark.parametrize(
    "dets, strict, partial",
    [
        ([D("dog", (0, 0, 5, 5)), D("dog", (9, 9, 15, 15))], 1.0, 1.0),
        ([D("dog", (0, 0, 5, 5)), D("dog", (9, 9, 15, 15)), D("dog", (20, 0, 25, 5))], 0.0, 0.5),
        (
            [D("dog", (0, 0, 5, 5)), D("dog", (9, 9, 15, 15), score=0.5)],
            0.0,
            0.5,
        ),  # 0.5 < counting threshold 0.9
        ([D("dog", (0, 0, 5, 5)), D("cat", (9, 9, 15, 15))], 0.0, 0.5),
    ],
)
def test_counting(dets, strict, partial):
    res = evaluate(COUNT, [Detection(**d) for d in dets])
    assert (res["strict"], res["partial"]) == (strict, partial)


def test_threshold_depends_on_tag():
    meta = {"tag": "single_object", "include": [{"class": "dog", "count": 1}]}
    assert evaluate(meta, [Detection("dog", 0.31, (0, 0, 1, 1))])["strict"] == 1.0
    assert evaluate(meta, [Detection("dog", 0.29, (0, 0, 1, 1))])["strict"] == 0.0
    assert (
        evaluate(meta, [Detection("dog", 0.31, (0, 0, 1, 1))], GenEvalRules(threshold=0.5))["strict"] == 0.0
    )


def test_color_attribution_uses_the_top_count_detections_only():
    meta = {
        "tag": "color_attr",
        "include": [
            {"class": "car", "count": 1, "color": "red"},
            {"class": "ball", "count": 1, "color": "blue"},
        ],
    }
    good = [Detection("car", 0.9, (0, 0, 4, 4), "red"), Detection("ball", 0.9, (5, 5, 8, 8), "blue")]
    swapped = [Detection("car", 0.9, (0, 0, 4, 4), "blue"), Detection("ball", 0.9, (5, 5, 8, 8), "blue")]
    assert evaluate(meta, good)["strict"] == 1.0
    res = evaluate(meta, swapped)
    assert res["partial"] == 0.5 and "expected red car>=1" in res["clauses"][0]["why"]
    # GenEval colour-checks only the best `count` cars: a lower-scored red car does not rescue the blue one ...
    assert evaluate(meta, swapped + [Detection("car", 0.8, (10, 10, 12, 12), "red")])["strict"] == 0.0
    # ... a higher-scored one does
    assert evaluate(meta, swapped + [Detection("car", 0.95, (10, 10, 12, 12), "red")])["strict"] == 1.0
    with pytest.raises(ValueError, match="has no colour"):
        evaluate(meta, [Detection("car", 0.9, (0, 0, 4, 4))])


def test_counting_with_colour_needs_every_counted_object_in_it():
    meta = {"tag": "colors", "include": [{"class": "car", "count": 2, "color": "red"}]}
    dets = [Detection("car", 0.9, (0, 0, 4, 4), "red"), Detection("car", 0.8, (5, 0, 9, 4), "green")]
    assert evaluate(meta, dets)["strict"] == 0.0
    asked = []
    colors = evaluate(
        meta,
        dets + [Detection("car", 0.7, (9, 0, 12, 4), "red")],
        colors_of=lambda f: asked.append(f) or ["red"] * len(f),
    )
    assert colors["strict"] == 1.0 and [d.score for d in asked[0]] == [
        0.9,
        0.8,
    ]  # only the top two are classified


def test_thresholds_are_strict():
    meta = {"tag": "single_object", "include": [{"class": "dog", "count": 1}]}
    assert evaluate(meta, [Detection("dog", 0.3, (0, 0, 1, 1))])["strict"] == 0.0
    count = {
        "tag": "counting",
        "include": [{"class": "dog", "count": 1}],
        "exclude": [{"class": "dog", "count": 2}],
    }
    assert (
        evaluate(count, [Detection("dog", 0.95, (0, 0, 1, 1)), Detection("dog", 0.9, (5, 5, 6, 6))])["strict"]
        == 1.0
    )


def test_position_and_references():
    meta = {
        "tag": "position",
        "include": [{"class": "cat", "count": 1}, {"class": "dog", "count": 1, "position": ["right of", 0]}],
    }
    ok = [Detection("cat", 0.9, (0, 0, 10, 10)), Detection("dog", 0.9, (20, 0, 30, 10))]
    near = [Detection("cat", 0.9, (0, 0, 10, 10)), Detection("dog", 0.9, (1, 0, 11, 10))]
    assert evaluate(meta, ok)["strict"] == 1.0
    assert evaluate(meta, near)["partial"] == 0.5
    fwd = {
        "tag": "position",
        "include": [{"class": "dog", "count": 1, "position": ["left of", 1]}, {"class": "cat", "count": 1}],
    }
    with pytest.raises(ValueError, match="must name an earlier include clause"):
        evaluate(fwd, ok)
    missing_target = evaluate(meta, [Detection("dog", 0.9, (20, 0, 30, 10))])
    assert missing_target["partial"] == 0.0 and "no target for dog" in missing_target["clauses"][1]["why"]


def test_exclude_clause():
    meta = {
        "tag": "single_object",
        "include": [{"class": "cat", "count": 1}],
        "exclude": [{"class": "dog", "count": 1}],
    }
    assert evaluate(meta, [Detection("cat", 0.9, (0, 0, 1, 1))])["strict"] == 1.0
    res = evaluate(meta, [Detection("cat", 0.9, (0, 0, 1, 1)), Detection("dog", 0.5, (2, 2, 3, 3))])
    assert res["strict"] == 0.0 and res["partial"] == 0.5


def test_bad_metadata_names_clause():
    with pytest.raises(ValueError, match=r"include\[1\]\.position"):
        evaluate({"include": [{"class": "a"}, {"class": "b", "position": ["near", 0]}]}, [])
    with pytest.raises(ValueError, match=r"include\[0\]\.count"):
        evaluate({"include": [{"class": "a", "count": 0}]}, [])


def test_geneval_reward_with_fake_detector_strict_partial_and_nan():
    table = {
        0: [D("cat", (0, 0, 10, 10), color="red"), D("dog", (1, 0, 11, 10), color="red")],
        1: [],
    }
    metas = [
        {
            "tag": "position",
            "include": [
                {"class": "cat", "count": 1, "color": "red"},
                {"class": "dog", "count": 1, "position": ["right of", 0]},
            ],
        },
        {},
        {"tag": "single_object", "include": [{"class": "cat", "count": 1}]},
    ]
    # only samples with metadata reach the detector, in order; sample 2 is the detector's second image
    det = FakeDetector({0: table[0], 1: table[1]})
    r = build_reward({"name": "geneval", "args": {"detector": det, "mode": "partial"}})
    b = RewardBatch(prompts=["a", "b", "c"], images=[Image.new("RGB", (32, 32))] * 3, metadata=metas)
    out = r(b)
    assert out.scores[0] == 0.5 and math.isnan(out.scores[1]) and out.scores[2] == 0.0
    assert det.calls == [[["cat", "dog"], ["cat"]]]
    assert out.details[0]["clauses"][1]["ok"] is False
    strict = build_reward({"name": "geneval", "args": {"detector": FakeDetector(table), "mode": "strict"}})
    assert strict(b).scores[0] == 0.0
    assert pickle.loads(pickle.dumps(r)).detector.table == det.table


def test_geneval_reward_needs_colours():
    det = FakeDetector({0: [D("car", (0, 0, 4, 4))]})
    r = build_reward({"name": "geneval", "args": {"detector": det}})
    b = RewardBatch(
        prompts=["a"],
        images=[Image.new("RGB", (8, 8))],
        metadata=[{"include": [{"class": "car", "count": 1, "color": "red"}]}],
    )
    with pytest.raises(ValueError, match="set color"):
        r(b)


def test_http_detector_backend_against_loopback_server():
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from rewards.serving.transport import RemoteError

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_POST(self):  # noqa: N802
            req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            assert self.path == "/detect" and len(req["images"]) == len(req["classes"])
            mask = np.zeros((8, 8), dtype=bool)
            mask[1:3, 1:3] = True
            dets = [
                [
                    {
                        "label": c,
                        "score": 0.95,
                        "box": [0, 0, 4, 4],
                        "color": "red",
                        "mask": encode_mask(mask),
                    }
                    for c in cls
                ]
                for cls in req["classes"]
            ]
            body = json.dumps({"detections": dets} if req["classes"][0] != ["bad"] else {"oops": 1}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}"
        r = build_reward(
            {"name": "geneval", "args": {"detector": "http", "detector_args": {"url": url, "retries": 1}}}
        )
        meta = {"tag": "colors", "include": [{"class": "car", "count": 1, "color": "red"}]}
        out = r(RewardBatch(prompts=["a red car"], images=[Image.new("RGB", (8, 8))], metadata=[meta]))
        assert out.scores.tolist() == [1.0] and out.details[0]["detections"][0]["color"] == "red"
        dets = r.detector.detect([Image.new("RGB", (8, 8))], [["car"]])
        assert dets[0][0].mask.sum() == 4 and dets[0][0].mask[1, 1]  # masks cross the protocol
        bad = {"tag": "single_object", "include": [{"class": "bad", "count": 1}]}
        with pytest.raises(RemoteError, match="geneval detector at .*/detect: malformed response body"):
            r(RewardBatch(prompts=["x"], images=[Image.new("RGB", (8, 8))], metadata=[bad]))
    finally:
        srv.shutdown()


def _tiny_owlv2(path):
    import json

    import torch
    from transformers import (
        CLIPTokenizer,
        Owlv2Config,
        Owlv2ForObjectDetection,
        Owlv2ImageProcessor,
        Owlv2Processor,
    )
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt"), pad_token="!")
    eos = vocab["<|endoftext|>"]
    text = dict(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=16,
        bos_token_id=eos - 1,
        eos_token_id=eos,
        pad_token_id=0,
    )
    vision = dict(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
    )
    torch.manual_seed(0)
    model = Owlv2ForObjectDetection(
        Owlv2Config(text_config=text, vision_config=vision, projection_dim=32)
    ).eval()
    out = path / "owlv2"
    model.save_pretrained(out)
    Owlv2Processor(
        image_processor=Owlv2ImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok
    ).save_pretrained(out)
    return out


def test_owlv2_detector_loads_tiny_checkpoint(tmp_path):
    pytest.importorskip("transformers")
    path = _tiny_owlv2(tmp_path)
    r = build_reward(
        {
            "name": "geneval",
            "args": {"detector": "owlv2", "detector_args": {"path": str(path), "min_score": 0.0}},
        }
    )
    dets = r.detector.detect([Image.new("RGB", (48, 32), "red")], [["cat", "dog"]])[0]
    assert len(dets) == 16  # one box per 8x8 patch of the 32x32 input at threshold 0
    assert all(d.label in ("cat", "dog") and 0.0 <= d.score <= 1.0 and len(d.box) == 4 for d in dets)
    meta = {"tag": "single_object", "include": [{"class": "cat", "count": 1}]}
    out = r(RewardBatch(prompts=["a cat"], images=[Image.new("RGB", (48, 32))], metadata=[meta]))
    assert out.scores[0] in (0.0, 1.0) and "detections" in out.details[0]
    assert pickle.loads(pickle.dumps(r)).detector._model is None


def test_masked_crop_fills_999_outside_the_mask_and_crops_like_pil():
    img = Image.fromarray(np.full((6, 8, 3), 200, dtype=np.uint8))
    mask = np.zeros((6, 8), dtype=bool)
    mask[2:4, 2:4] = True
    crop = np.asarray(masked_crop(img, Detection("car", 0.9, (1.4, 1.6, 4.6, 4.4), mask=mask)))
    # PIL rounds the box to (1, 2, 5, 4): 4 wide, 2 high; columns 2-3 are inside the mask, the rest #999 grey
    assert crop.shape == (2, 4, 3)
    assert (crop[:, 1:3] == 200).all() and (crop[:, 0] == 0x99).all() and (crop[:, 3] == 0x99).all()
    # without a mask the image itself is cropped; a box past the border is padded with black, as PIL does
    plain = np.asarray(masked_crop(img, Detection("car", 0.9, (6, 0, 10, 2))))
    assert plain.shape == (2, 4, 3) and (plain[:, :2] == 200).all() and (plain[:, 2:] == 0).all()
