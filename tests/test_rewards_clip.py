"""CLIP-family rewards on tiny random models saved to disk in the formats the published weights use."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from rewards import RewardBatch, build_reward

open_clip = pytest.importorskip("open_clip")

TINY = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("clip")
    cfg = d / "tiny-clip-test.json"
    cfg.write_text(json.dumps(TINY))
    open_clip.add_model_config(cfg)
    model, _, preprocess = open_clip.create_model_and_transforms("tiny-clip-test", pretrained=None)
    model.eval()
    sd = model.state_dict()
    torch.save(sd, d / "open_clip_bare.pt")  # open_clip release format: bare state dict
    # HPSv2 training-checkpoint format: {"state_dict": ...} with DDP "module." prefixes and extra entries
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3}, d / "hps.pt")
    return {"dir": d, "config": str(cfg), "model": model, "preprocess": preprocess}


def _batch():
    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)) for _ in range(3)]
    return RewardBatch(prompts=["a red circle", "two blue squares", "a cat"], images=imgs)


def _manual_cos(t, batch):
    tok = open_clip.get_tokenizer("tiny-clip-test")
    with torch.no_grad():
        fi = t["model"].encode_image(torch.stack([t["preprocess"](i) for i in batch.images]))
        ft = t["model"].encode_text(tok(batch.prompts))
    return torch.nn.functional.cosine_similarity(fi, ft, dim=-1)


def test_clip_score_matches_direct_computation(tiny_clip):
    args = {
        "model_name": "tiny-clip-test",
        "model_config": tiny_clip["config"],
        "checkpoint": str(tiny_clip["dir"] / "open_clip_bare.pt"),
    }
    r = build_reward({"name": "clip_score", "args": args})
    b = _batch()
    expected = _manual_cos(tiny_clip, b)
    assert torch.allclose(r(b).scores, expected, atol=1e-5)
    r2 = build_reward({"name": "clip_score", "args": {**args, "formula": "clipscore"}})
    assert torch.allclose(r2(b).scores, 2.5 * expected.clamp_min(0), atol=1e-5)


def test_hps_loads_state_dict_key_checkpoint(tiny_clip):
    r = build_reward(
        {
            "name": "hps",
            "args": {
                "model_name": "tiny-clip-test",
                "model_config": tiny_clip["config"],
                "checkpoint": str(tiny_clip["dir"] / "hps.pt"),
            },
        }
    )
    b = _batch()
    assert torch.allclose(r(b).scores, _manual_cos(tiny_clip, b), atol=1e-5)


def test_mismatched_checkpoint_is_a_clear_error(tiny_clip, tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"visual.proj": torch.zeros(2)}, bad)
    r = build_reward({"name": "clip_score", "args": {"model_name": "tiny-clip-test", "checkpoint": str(bad)}})
    with pytest.raises(ValueError, match="does not match the architecture: missing"):
        r(_batch())
    with pytest.raises(FileNotFoundError, match="checkpoint file not found"):
        build_reward(
            {
                "name": "clip_score",
                "args": {"model_name": "tiny-clip-test", "checkpoint": str(tmp_path / "nope.pt")},
            }
        )(_batch())


@pytest.mark.parametrize("layout", ["mlp", "linear"])
def test_aesthetic_head_layouts(tiny_clip, tmp_path, layout):
    torch.manual_seed(1)
    if layout == "mlp":
        dims = [16, 1024, 128, 64, 16, 1]
        sd = {}
        for n, i in enumerate((0, 2, 4, 6, 7)):
            lin = torch.nn.Linear(dims[n], dims[n + 1])
            sd[f"layers.{i}.weight"], sd[f"layers.{i}.bias"] = lin.weight.data, lin.bias.data
    else:
        lin = torch.nn.Linear(16, 1)
        sd = {"weight": lin.weight.data, "bias": lin.bias.data}
    torch.save(sd, tmp_path / "head.pth")
    r = build_reward(
        {
            "name": "aesthetic",
            "args": {
                "model_name": "tiny-clip-test",
                "checkpoint": str(tiny_clip["dir"] / "open_clip_bare.pt"),
                "head": str(tmp_path / "head.pth"),
            },
        }
    )
    b = _batch()
    with torch.no_grad():
        emb = torch.nn.functional.normalize(
            tiny_clip["model"].encode_image(torch.stack([tiny_clip["preprocess"](i) for i in b.images])),
            dim=-1,
        )
        x = emb
        if layout == "mlp":
            for i in (0, 2, 4, 6, 7):
                x = x @ sd[f"layers.{i}.weight"].T + sd[f"layers.{i}.bias"]
        else:
            x = x @ sd["weight"].T + sd["bias"]
    assert torch.allclose(r(b).scores, x.squeeze(-1), atol=1e-5)


def test_geneval_colour_classifier_recomputed_by_hand_on_tiny_clip(tiny_clip):
    """The classifier's choice equals an independent recomputation of GenEval's rule: masked crop on #999, the three
    templates encoded, normalised, averaged and renormalised per colour, argmax of the cosine similarity."""
    import torch

    from rewards.builtins.geneval.color import GENEVAL_COLORS, ClipColorClassifier, masked_crop
    from rewards.builtins.geneval.rules import Detection
    from rewards.builtins.open_clip_model import load_open_clip

    ckpt = str(tiny_clip["dir"] / "open_clip_bare.pt")
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    mask = np.zeros((32, 32), bool)
    mask[4:12, 4:12] = True
    dets = [Detection("car", 0.9, (0, 0, 16, 16), mask=mask), Detection("dog", 0.9, (16, 16, 32, 32))]
    crop = np.asarray(masked_crop(img, dets[0]))
    assert (crop[12:, 12:] == 153).all() and (crop[4:12, 4:12] == np.asarray(img)[4:12, 4:12]).all()

    got = ClipColorClassifier("tiny-clip-test", ckpt).classify(img, dets)
    model, preprocess, tokenizer = load_open_clip("tiny-clip-test", ckpt, "cpu", None)
    want = []
    with torch.no_grad():
        for d in dets:
            feat = torch.nn.functional.normalize(
                model.encode_image(preprocess(masked_crop(img, d))[None]), dim=-1
            )[0]
            sims = []
            for c in GENEVAL_COLORS:
                prompts = [
                    f"a photo of a {c} {d.label}",
                    f"a photo of a {c}-colored {d.label}",
                    f"a photo of a {c} object",
                ]
                emb = torch.nn.functional.normalize(model.encode_text(tokenizer(prompts)), dim=-1).mean(0)
                sims.append(float(torch.nn.functional.normalize(emb, dim=-1) @ feat))
            assert max(sims) - min(sims) > 1e-6  # the colours are told apart, so the argmax means something
            want.append(GENEVAL_COLORS[int(np.argmax(sims))])
    assert got == want


def _tiny_pickscore_dir(path):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt"))
    ip = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    eos = vocab["<|endoftext|>"]
    text = dict(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=77,
        bos_token_id=eos - 1,
        eos_token_id=eos,
        pad_token_id=eos,
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
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    out = path / "pickscore"
    model.save_pretrained(out)
    CLIPProcessor(image_processor=ip, tokenizer=tok).save_pretrained(out)
    return out, model


def test_pickscore_from_save_pretrained_dir(tmp_path):
    out, model = _tiny_pickscore_dir(tmp_path)
    r = build_reward({"name": "pickscore", "args": {"path": str(out)}})
    b = _batch()
    got = r(b).scores
    from transformers import AutoProcessor

    inputs = AutoProcessor.from_pretrained(out)(
        text=b.prompts, images=b.images, return_tensors="pt", padding=True
    )
    with torch.no_grad():
        res = model(**inputs)
    expected = (
        model.logit_scale.exp()
        * torch.nn.functional.cosine_similarity(res.image_embeds, res.text_embeds, dim=-1)
        / 26.0
    )
    assert got.shape == (3,) and torch.allclose(got, expected, atol=1e-4)
