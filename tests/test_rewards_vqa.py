"""vqa_score on a tiny random LLaVA saved with save_pretrained (word-level tokenizer built offline)."""

import pytest
import torch
from PIL import Image

from rewards import RewardBatch, build_reward

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    d = tmp_path_factory.mktemp("vlm") / "llava"
    words = [
        "<unk>",
        "<pad>",
        "<s>",
        "</s>",
        "<image>",
        "Yes",
        "No",
        "USER:",
        "ASSISTANT:",
        "Does",
        "this",
        "figure",
        "show",
    ]
    vocab = {w: i for i, w in enumerate(words)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        extra_special_tokens={"image_token": "<image>"},
    )
    ip = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    proc = LlavaProcessor(
        image_processor=ip,
        tokenizer=tok,
        patch_size=8,
        vision_feature_select_strategy="default",
        image_token="<image>",
        num_additional_image_tokens=1,
    )
    vision = CLIPVisionConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
    )
    text = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=1,
    )
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(
        LlavaConfig(
            vision_config=vision,
            text_config=text,
            image_token_index=4,
            vision_feature_layer=-1,
            vision_feature_select_strategy="default",
        )
    ).eval()
    model.save_pretrained(d)
    proc.save_pretrained(d)
    return d, model, proc, vocab["Yes"]


def test_vqa_score_is_p_yes(tiny_llava):
    path, model, proc, yes = tiny_llava
    r = build_reward({"name": "vqa_score", "args": {"path": str(path)}})
    imgs = [Image.new("RGB", (40, 40), c) for c in ("red", "blue")]
    out = r(RewardBatch(prompts=["a red dog", "a blue cat"], images=imgs))
    for i, (prompt, img) in enumerate(zip(["a red dog", "a blue cat"], imgs, strict=True)):
        text = f'USER: <image>\nDoes this figure show "{prompt}"? Please answer yes or no. ASSISTANT:'
        with torch.no_grad():
            logits = model(**proc(images=img, text=text, return_tensors="pt")).logits[0, -1]
        assert out.scores[i] == pytest.approx(float(torch.softmax(logits, -1)[yes]), abs=1e-5)
    assert ((out.scores > 0) & (out.scores < 1)).all()


def test_vqa_score_unsupported_family_is_explicit(tmp_path):
    from transformers import CLIPTextConfig, CLIPTextModel

    CLIPTextModel(
        CLIPTextConfig(
            vocab_size=10, hidden_size=8, intermediate_size=8, num_hidden_layers=1, num_attention_heads=1
        )
    ).save_pretrained(tmp_path)
    r = build_reward({"name": "vqa_score", "args": {"path": str(tmp_path)}})
    with pytest.raises(NotImplementedError, match="model_type 'clip_text_model'"):
        r(RewardBatch(prompts=["x"], images=[Image.new("RGB", (8, 8))]))
