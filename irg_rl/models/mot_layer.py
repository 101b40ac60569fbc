"""Qwen2 decoder layer with Mixture-of-Transformers: two weight sets routed by token modality.

Every token goes through exactly one set: "understanding" (text, ViT tokens, image marker tokens) or `*_moe_gen`
(VAE latent tokens). Attention is one attention over the whole sequence; only the projections, the per-head
q/k RMSNorms, the MLP and both layer norms are duplicated. QK-norm is applied per head before RoPE.
How tokens attend to each other is delegated to an `attend(layer_idx, q, k, v)` callable, so the same layer
serves the packed training forward and the KV-cached inference paths.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .configs import LLMConfig
from .connector import activation
from .norms import RMSNorm
from .rope import apply_rope

# attend(layer_idx, q [T, Hq, D], k [T, Hkv, D], v [T, Hkv, D]) -> [T, Hq, D]
AttendFn = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Routing:
    """Which rows of a flat token batch [T, ...] use the generation expert.

    `gen_idx` None (or empty) means every token is an understanding token: the fast path, no gather/scatter.
    """

    # indexes [Ng] of generation (VAE) tokens, or None
    gen_idx: torch.Tensor | None
    # indexes [Nu] of understanding tokens (None when gen_idx is None: all tokens)
    und_idx: torch.Tensor | None

    @staticmethod
    def from_mask(is_gen: torch.Tensor) -> Routing:
        """From a bool mask [T] (True = VAE token)."""
        if not bool(is_gen.any()):
            return Routing(None, None)
        return Routing(is_gen.nonzero().squeeze(1), (~is_gen).nonzero().squeeze(1))

    def apply(self, x: torch.Tensor, f_und: Callable, f_gen: Callable, out_dim: int) -> torch.Tensor:
        """Row-wise f_und / f_gen: [T, in] -> [T, out_dim]."""
        if self.gen_idx is None:
            return f_und(x)
        gen = f_gen(x[self.gen_idx])
        # allocate in the experts' output dtype: under autocast it differs from x's
        out = gen.new_empty(x.shape[0], out_dim)
        if self.und_idx.numel():
            out[self.und_idx] = f_und(x[self.und_idx]).to(out.dtype)
        out[self.gen_idx] = gen
        return out


class Qwen2MLP(nn.Module):
    """down(act(gate(x)) * up(x)); act is `hidden_act` of llm_config.json (Qwen2: silu)."""

    def __init__(self, hidden: int, inner: int, act: str = "silu"):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, inner, bias=False)
        self.up_proj = nn.Linear(hidden, inner, bias=False)
        self.down_proj = nn.Linear(inner, hidden, bias=False)
        self._act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self._act(self.gate_proj(x)) * self.up_proj(x))


class MoTAttention(nn.Module):
    """Projections (q/k/v with bias, o without) and per-head q/k norms, each in an und and a `_moe_gen` copy."""

    def __init__(self, cfg: LLMConfig):
        super().__init__()
        h, d = cfg.hidden_size, cfg.head_dim
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_attention_heads, cfg.num_key_value_heads, d
        for suffix in ("", "_moe_gen"):
            setattr(self, "q_proj" + suffix, nn.Linear(h, self.num_heads * d, bias=True))
            setattr(self, "k_proj" + suffix, nn.Linear(h, self.num_kv_heads * d, bias=True))
            setattr(self, "v_proj" + suffix, nn.Linear(h, self.num_kv_heads * d, bias=True))
            setattr(self, "o_proj" + suffix, nn.Linear(self.num_heads * d, h, bias=False))
            setattr(self, "q_norm" + suffix, RMSNorm(d, cfg.rms_norm_eps))
            setattr(self, "k_norm" + suffix, RMSNorm(d, cfg.rms_norm_eps))

    def _qkv(self, x: torch.Tensor, gen: bool) -> torch.Tensor:
        s = "_moe_gen" if gen else ""
        hq, hk, d = self.num_heads, self.num_kv_heads, self.head_dim
        n = x.shape[0]
        q = getattr(self, "q_norm" + s)(getattr(self, "q_proj" + s)(x).view(n, hq, d))
        k = getattr(self, "k_norm" + s)(getattr(self, "k_proj" + s)(x).view(n, hk, d))
        v = getattr(self, "v_proj" + s)(x)
        return torch.cat([q.reshape(n, hq * d), k.reshape(n, hk * d), v], dim=-1)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        routing: Routing,
        attend: AttendFn,
        layer_idx: int,
    ) -> torch.Tensor:
        """x [T, hidden] (already layer-normed), cos/sin [T, head_dim] -> [T, hidden]."""
        hq, hk, d = self.num_heads, self.num_kv_heads, self.head_dim
        width = (hq + 2 * hk) * d
        qkv = routing.apply(x, lambda a: self._qkv(a, False), lambda a: self._qkv(a, True), width)
        q, k, v = qkv.split([hq * d, hk * d, hk * d], dim=-1)
        n = x.shape[0]
        q = apply_rope(q.reshape(n, hq, d), cos, sin)
        k = apply_rope(k.reshape(n, hk, d), cos, sin)
        out = attend(layer_idx, q, k, v.reshape(n, hk, d)).reshape(n, hq * d)
        return routing.apply(out, self.o_proj, self.o_proj_moe_gen, x.shape[1])


class MoTDecoderLayer(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)); x + mlp(norm(x)), each part routed by modality."""

    def __init__(self, cfg: LLMConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.self_attn = MoTAttention(cfg)
        self.mlp = Qwen2MLP(cfg.hidden_size, cfg.intermediate_size, cfg.hidden_act)
        self.mlp_moe_gen = Qwen2MLP(cfg.hidden_size, cfg.intermediate_size, cfg.hidden_act)
        for suffix in ("", "_moe_gen"):
            setattr(self, "input_layernorm" + suffix, RMSNorm(cfg.hidden_size, cfg.rms_norm_eps))
            setattr(self, "post_attention_layernorm" + suffix, RMSNorm(cfg.hidden_size, cfg.rms_norm_eps))

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, routing: Routing, attend: AttendFn
    ) -> torch.Tensor:
        """x [T, hidden] -> [T, hidden]."""
        width = x.shape[1]
        h = routing.apply(x, self.input_layernorm, self.input_layernorm_moe_gen, width)
        x = x + self.self_attn(h, cos, sin, routing, attend, self.layer_idx)
        h = routing.apply(
            x,
            lambda a: self.mlp(self.post_attention_layernorm(a)),
            lambda a: self.mlp_moe_gen(self.post_attention_layernorm_moe_gen(a)),
            width,
        )
        return x + h
