"""Shared helpers for tests/test_engine_*.py: a small random BAGEL model (every weight random), tokenizer, grid codec."""

from __future__ import annotations

import torch

from irg_rl.inference.engine_config import IRGSamplingConfig, TurnConfig
from irg_rl.models import BagelModel
from irg_rl.models.configs import tiny
from irg_rl.models.tokenizer import special_token_ids, train_tokenizer
from irg_rl.tasks.shapes import ShapesWorldConfig
from irg_rl.tasks.shapes.grid_codec import GridCodec
from irg_rl.tasks.shapes.task import shapes_texts

SYSTEM = "Plan inside <think> </think> before each image; after an image, reflect and improve it."
PROMPTS = ["a photo of a red circle", "a photo of two blue squares"]

_TOK = None


def tokenizer():
    global _TOK
    if _TOK is None:
        _TOK = train_tokenizer(shapes_texts(ShapesWorldConfig(), [SYSTEM], num=60), vocab_size=400)
    return _TOK


def components(seed: int = 0):
    """(model, tokenizer, vae): d 64, 2 layers, every weight random so velocities and logits are non-trivial."""
    tok = tokenizer()
    cfg = tiny(vocab_size=len(tok))
    cfg.llm.hidden_size, cfg.llm.intermediate_size, cfg.llm.num_hidden_layers = 64, 96, 2
    torch.manual_seed(seed)
    model = BagelModel(cfg, special_token_ids(tok))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
            elif p.dim() > 1 or "bias" in name:
                p.normal_(0, 0.15)
    return model.eval(), tok, GridCodec(ShapesWorldConfig(), dim=cfg.vae_latent_channels)


def sampling(**kw) -> IRGSamplingConfig:
    """Short two-round settings with every CFG branch active somewhere."""
    t1 = TurnConfig(
        temperature=kw.pop("temperature", 0.0),
        max_think_tokens=6,
        cfg_text_scale=3.0,
        cfg_img_scale=1.0,
        cfg_interval=[0.4, 1.0],
        cfg_renorm_type="global",
    )
    t2 = TurnConfig(
        temperature=t1.temperature,
        max_think_tokens=8,
        cfg_text_scale=3.0,
        cfg_img_scale=2.0,
        cfg_interval=[0.0, 1.0],
        cfg_renorm_type="text_channel",
    )
    base = dict(
        system_prompt=SYSTEM,
        turn1=t1,
        turn2=t2,
        steps=6,
        resolution=32,
        sde_window_size=2,
        sde_window_start=1,
        seed=7,
    )
    base.update(kw)
    return IRGSamplingConfig(**base)
