"""The Qwen2 Mixture-of-Transformers LLM: token embedding, MoT layers, final norms (und + gen), untied lm_head.

Parameter names follow the BAGEL checkpoint: `language_model.model.{embed_tokens,layers.N.*,norm,norm_moe_gen}`
and `language_model.lm_head` once this module is mounted as `language_model`.
"""

from __future__ import annotations

import torch
from torch import nn

from .configs import LLMConfig
from .mot_layer import AttendFn, MoTDecoderLayer, Routing
from .norms import RMSNorm
from .rope import rope_cos_sin


class Qwen2MoTModel(nn.Module):
    def __init__(self, cfg: LLMConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList([MoTDecoderLayer(cfg, i) for i in range(cfg.num_hidden_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.norm_moe_gen = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(
        self, x: torch.Tensor, position_ids: torch.Tensor, routing: Routing, attend: AttendFn
    ) -> torch.Tensor:
        """Input embeddings x [T, hidden], RoPE position ids [T] -> final-normed hidden states [T, hidden]."""
        cos, sin = rope_cos_sin(position_ids, self.cfg.head_dim, self.cfg.rope_theta, x.dtype)
        for layer in self.layers:
            x = layer(x, cos, sin, routing, attend)
        return routing.apply(x, self.norm, self.norm_moe_gen, x.shape[1])


class Qwen2MoTForCausalLM(nn.Module):
    """`model` (Qwen2MoTModel) + `lm_head` [vocab, hidden], no bias."""

    def __init__(self, cfg: LLMConfig):
        super().__init__()
        self.model = Qwen2MoTModel(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)

    def init_moe_from_und(self) -> None:
        """Copy every understanding weight into its `*_moe_gen` twin (how BAGEL initialises the gen expert)."""
        params = dict(self.named_parameters())
        with torch.no_grad():
            for name, p in params.items():
                if "moe_gen" in name:
                    p.copy_(params[name.replace("_moe_gen", "")])
