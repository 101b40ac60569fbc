"""BAGEL-architecture unified model, packed sequences, KV-cached inference, VAEs, checkpoints, tokenizer.

See README.md in this folder for the API.
"""

from .bagel import BagelModel, PackedOutput
from .configs import PRESETS, BagelConfig, LLMConfig, ModelRecipe, ViTConfig
from .kv_cache import KVCache
from .packing import PackedSequence, PackedSequenceBuilder, SpecialTokenIds, build_attention_mask
from .patchify import patchify, unpatchify

__all__ = [
    "BagelConfig",
    "BagelModel",
    "KVCache",
    "LLMConfig",
    "ModelRecipe",
    "PRESETS",
    "PackedOutput",
    "PackedSequence",
    "PackedSequenceBuilder",
    "SpecialTokenIds",
    "ViTConfig",
    "build_attention_mask",
    "patchify",
    "unpatchify",
]
