"""Tokenizers: a real checkpoint's Qwen2 tokenizer, or a small byte-level BPE trained offline on our texts.

Both are `transformers` fast tokenizers exposing BAGEL's special tokens `<|im_start|>`, `<|im_end|>`,
`<|vision_start|>`, `<|vision_end|>` (added if a tokenizer lacks them, as BAGEL does) plus eos/pad.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .packing import SpecialTokenIds

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
VISION_START, VISION_END = "<|vision_start|>", "<|vision_end|>"
PAD = "<|endoftext|>"
SPECIAL_TOKENS = [PAD, IM_START, IM_END, VISION_START, VISION_END]


def _ensure_special(tok):
    missing = [
        t
        for t in (IM_START, IM_END, VISION_START, VISION_END)
        if tok.convert_tokens_to_ids(t) in (None, tok.unk_token_id)
    ]
    if missing:
        tok.add_tokens(missing, special_tokens=True)
    if tok.pad_token is None:
        tok.pad_token = PAD if tok.convert_tokens_to_ids(PAD) is not None else IM_END
    if tok.eos_token is None:
        tok.eos_token = IM_END
    return tok


def load_tokenizer(path: str | Path):
    """The tokenizer saved in a checkpoint directory (Qwen2 files or our tokenizer.json)."""
    from transformers import AutoTokenizer

    path = Path(path)
    try:
        tok = AutoTokenizer.from_pretrained(str(path), use_fast=True)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"{path}: cannot load a tokenizer ({e}); expected tokenizer.json or Qwen2 vocab files"
        ) from e
    return _ensure_special(tok)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024, min_frequency: int = 2):
    """Train a byte-level BPE (lossless on any text) on `texts` -> PreTrainedTokenizerFast. Takes milliseconds."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = list(texts)
    if not texts:
        raise ValueError("train_tokenizer: no training texts")
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    core.train_from_iterator(texts, trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token=IM_END, pad_token=PAD, additional_special_tokens=SPECIAL_TOKENS[1:]
    )
    return _ensure_special(tok)


def special_token_ids(tok) -> SpecialTokenIds:
    """BAGEL's special ids in `tok`."""
    ids = {t: tok.convert_tokens_to_ids(t) for t in (IM_START, IM_END, VISION_START, VISION_END)}
    bad = [t for t, i in ids.items() if i is None or i == tok.unk_token_id]
    if bad:
        raise ValueError(f"tokenizer lacks special tokens {bad}; load it with load_tokenizer() to add them")
    return SpecialTokenIds(
        im_start=ids[IM_START],
        im_end=ids[IM_END],
        vision_start=ids[VISION_START],
        vision_end=ids[VISION_END],
        pad=tok.pad_token_id if tok.pad_token_id is not None else ids[IM_END],
    )


def vocab_size(tok) -> int:
    """Rows the embedding needs (base vocab + added tokens)."""
    return len(tok)
