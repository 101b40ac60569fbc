"""The embedded tokenizer: trained offline, lossless, saved beside the model, BAGEL's special tokens kept whole."""

from transformers import PreTrainedTokenizerFast

from irg_rl.models.tokenizer import (
    IM_END,
    IM_START,
    VISION_END,
    VISION_START,
    load_tokenizer,
    special_token_ids,
    train_tokenizer,
    vocab_size,
)

TEXTS = [
    "<think> I will place two red circles on the left. </think>",
    "a photo of a blue square below a yellow triangle",
    "Detailed Explanation of Required Improvements: the circle must be green.",
] * 20


def test_train_save_load_round_trip(tmp_path):
    tok = train_tokenizer(TEXTS, vocab_size=300)
    unseen = "Ünïcode and digits 12345 never seen in training"
    for text in [*TEXTS[:3], unseen]:
        assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    ids = special_token_ids(tok)
    marked = f"{IM_START}{VISION_START}{VISION_END}{IM_END}"
    assert tok.encode(marked, add_special_tokens=False) == [
        ids.im_start,
        ids.vision_start,
        ids.vision_end,
        ids.im_end,
    ]
    assert len({ids.im_start, ids.im_end, ids.vision_start, ids.vision_end, ids.pad}) == 5
    tok.save_pretrained(tmp_path)
    back = load_tokenizer(tmp_path)
    assert isinstance(back, PreTrainedTokenizerFast)
    assert back.encode(TEXTS[1], add_special_tokens=False) == tok.encode(TEXTS[1], add_special_tokens=False)
    assert special_token_ids(back) == ids
    assert (
        vocab_size(back) == vocab_size(tok) > max(ids.im_start, ids.im_end, ids.vision_start, ids.vision_end)
    )


def test_training_is_deterministic():
    a = train_tokenizer(TEXTS, vocab_size=300)
    b = train_tokenizer(TEXTS, vocab_size=300)
    assert a.get_vocab() == b.get_vocab()
