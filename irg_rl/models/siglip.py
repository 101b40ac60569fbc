"""SigLIP vision tower, NaViT style: images of any size as packed patch rows, each image attending to itself.

Names follow the BAGEL checkpoint (`vit_model.vision_model.*`); the patch embedding is stored as a Linear
[hidden, 3*p*p] over rows from `patchify` (ordered (py, px, c)), plus a learned position embedding indexed by
flattened 2-D patch ids. BAGEL runs `num_hidden_layers - 1` layers and no pooling head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .configs import ViTConfig
from .connector import MLPConnector, activation


class SiglipEmbeddings(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.patch_embedding = nn.Linear(cfg.patch_dim, cfg.hidden_size)
        self.position_embedding = nn.Embedding(cfg.num_positions, cfg.hidden_size)

    def forward(self, patches: torch.Tensor, pos_ids: torch.Tensor) -> torch.Tensor:
        return self.patch_embedding(patches.to(self.patch_embedding.weight.dtype)) + self.position_embedding(
            pos_ids
        )


class SiglipAttention(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        d = cfg.hidden_size
        self.num_heads = cfg.num_attention_heads
        self.k_proj, self.v_proj = nn.Linear(d, d), nn.Linear(d, d)
        self.q_proj, self.out_proj = nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x [B, L, d], mask [B, 1, L, L] bool or None -> [B, L, d]."""
        B, L, d = x.shape
        h = self.num_heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(B, L, h, d // h).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x)), attn_mask=mask
        )
        return self.out_proj(out.transpose(1, 2).reshape(B, L, d))


class SiglipMLP(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.fc2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self._act = activation(cfg.hidden_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self._act(self.fc1(x)))


class SiglipEncoderLayer(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.self_attn = SiglipAttention(cfg)
        self.layer_norm1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.mlp = SiglipMLP(cfg)
        self.layer_norm2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


class SiglipEncoder(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.layers = nn.ModuleList([SiglipEncoderLayer(cfg) for _ in range(cfg.num_layers_used)])


class SiglipVisionTransformer(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.embeddings = SiglipEmbeddings(cfg)
        self.encoder = SiglipEncoder(cfg)
        self.post_layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, patches: torch.Tensor, pos_ids: torch.Tensor, seqlens: list[int]) -> torch.Tensor:
        """patches [N, 3*p*p], pos_ids [N], seqlens (patches per image, sum N) -> features [N, hidden]."""
        x = self.embeddings(patches, pos_ids)
        B, Lmax = len(seqlens), max(seqlens)
        if B == 1:
            h, mask, dest = x[None], None, None
        else:
            dest = torch.cat([torch.arange(n) + b * Lmax for b, n in enumerate(seqlens)]).to(x.device)
            h = x.new_zeros(B * Lmax, x.shape[1])
            h[dest] = x
            h = h.view(B, Lmax, -1)
            valid = torch.arange(Lmax)[None, :] < torch.tensor(seqlens)[:, None]
            mask = (valid[:, None, :] | ~valid[:, :, None])[:, None].to(x.device)
        for layer in self.encoder.layers:
            h = layer(h, mask)
        h = self.post_layernorm(h)
        return h[0] if dest is None else h.reshape(B * Lmax, -1)[dest]


class SiglipVisionModel(nn.Module):
    """`vision_model` wrapper (the checkpoint's `vit_model.vision_model.*` names)."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.vision_model = SiglipVisionTransformer(cfg)

    def forward(self, patches: torch.Tensor, pos_ids: torch.Tensor, seqlens: list[int]) -> torch.Tensor:
        return self.vision_model(patches, pos_ids, seqlens)


__all__ = ["SiglipVisionModel", "MLPConnector"]
