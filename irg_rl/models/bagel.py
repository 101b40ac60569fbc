"""BagelModel: the unified model (Qwen2-MoT LLM + SigLIP/connector + latent embedding and velocity head).

Two ways to run it:
- `forward_packed(seq)`: one packed sequence (training, teacher-forced re-scoring, with gradients) ->
  CE logits at `seq.ce_indexes` and predicted velocities at `seq.mse_indexes`.
- the cached API (inference, batched over B samples; see `kv_cache.py` for the cache layout):
  `new_cache(B)`, `prefill_text`, `prefill_vit`, `prefill_vae` (append to the cache; return logits where asked),
  `predict_velocity` (a noised image against the cache, not written). Token routing: text, image markers and
  ViT tokens use the understanding weights, VAE tokens the `*_moe_gen` weights.
Latent tokens enter as `vae2llm(x) + time_embedder(t) + latent_pos_embed(pos)`; velocity = `llm2vae(h)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .configs import BagelConfig
from .connector import MLPConnector
from .embeddings import PositionEmbedding, TimestepEmbedder, flattened_position_ids
from .kv_cache import CachedAttention, KVCache, packed_attention
from .mot_layer import Routing
from .packing import PackedSequence, SpecialTokenIds, sample_masks
from .patchify import patchify
from .qwen2_mot import Qwen2MoTForCausalLM
from .siglip import SiglipVisionModel


@dataclass
class PackedOutput:
    # next-token logits at seq.ce_indexes [Nc, vocab] (None when the sequence has no CE positions)
    ce_logits: torch.Tensor | None
    # predicted velocity at seq.mse_indexes [Nm, P] (None when there are no noised blocks)
    velocity: torch.Tensor | None
    # final hidden states [L, hidden] when requested
    hidden: torch.Tensor | None = None


class BagelModel(nn.Module):
    def __init__(self, cfg: BagelConfig, special: SpecialTokenIds | None = None):
        super().__init__()
        cfg.validate()
        self.config = cfg
        self.special = special
        # how forward_packed attends over several samples (kv_cache.PACKED_ATTENTION); a runtime choice, not saved
        self.packed_attention = "padded"
        h = cfg.llm.hidden_size
        self.language_model = Qwen2MoTForCausalLM(cfg.llm)
        if cfg.visual_gen:
            self.time_embedder = TimestepEmbedder(h)
            self.vae2llm = nn.Linear(cfg.patch_latent_dim, h)
            self.llm2vae = nn.Linear(h, cfg.patch_latent_dim)
            self.latent_pos_embed = PositionEmbedding(cfg.max_latent_size, h, cfg.latent_pos_scale)
        if cfg.visual_und:
            self.vit_model = SiglipVisionModel(cfg.vit)
            self.connector = MLPConnector(cfg.vit.hidden_size, h, cfg.connector_act)
            self.vit_pos_embed = PositionEmbedding(cfg.vit_max_num_patch_per_side, h)
        self.zero_init_velocity_head()

    def zero_init_velocity_head(self) -> None:
        """llm2vae starts at zero (BAGEL), so an untrained model predicts zero velocity."""
        if self.config.visual_gen and self.llm2vae.weight.device.type != "meta":
            nn.init.zeros_(self.llm2vae.weight)
            nn.init.zeros_(self.llm2vae.bias)

    @property
    def dtype(self) -> torch.dtype:
        return self.language_model.lm_head.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.language_model.lm_head.weight.device

    # ---- embeddings -------------------------------------------------------------------------------------

    def embed_text(self, ids: torch.Tensor) -> torch.Tensor:
        return self.language_model.model.embed_tokens(ids)

    def embed_vit(self, patches: torch.Tensor, pos_ids: torch.Tensor, seqlens: list[int]) -> torch.Tensor:
        """ViT patches [N, 3*p*p] -> LLM inputs [N, hidden] (SigLIP -> connector -> + fixed 2-D pos embed)."""
        if not self.config.visual_und:
            raise ValueError("this model was built with visual_und=false: it has no ViT")
        feats = self.connector(self.vit_model(patches, pos_ids, seqlens))
        return feats + self.vit_pos_embed(pos_ids).to(feats.dtype)

    def embed_latents(self, tokens: torch.Tensor, t: torch.Tensor, pos_ids: torch.Tensor) -> torch.Tensor:
        """Latent tokens [N, P] at flow times t [N] -> LLM inputs [N, hidden]."""
        if not self.config.visual_gen:
            raise ValueError("this model was built with visual_gen=false: it has no latent path")
        x = self.vae2llm(tokens.to(self.dtype))
        return x + self.time_embedder(t).to(x.dtype) + self.latent_pos_embed(pos_ids).to(x.dtype)

    def velocity_head(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.llm2vae(hidden)

    def lm_head(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.language_model.lm_head(hidden)

    # ---- packed forward ---------------------------------------------------------------------------------

    def forward_packed(self, seq: PackedSequence, return_hidden: bool = False) -> PackedOutput:
        """Full forward over a packed batch (see packing.py for the attention and position rules)."""
        dev = self.device
        L = seq.length
        x = torch.zeros(L, self.config.llm.hidden_size, dtype=self.dtype, device=dev)
        x[seq.text_indexes] = self.embed_text(seq.text_ids).to(x.dtype)
        is_gen = torch.zeros(L, dtype=torch.bool, device=dev)
        if seq.vit_patches is not None:
            x[seq.vit_indexes] = self.embed_vit(seq.vit_patches, seq.vit_pos_ids, seq.vit_seqlens).to(x.dtype)
        if seq.vae_tokens is not None:
            latents = self.embed_latents(seq.vae_tokens, seq.vae_timesteps, seq.vae_pos_ids)
            x[seq.vae_indexes] = latents.to(x.dtype)
            is_gen[seq.vae_indexes] = True
        attend = packed_attention(self.packed_attention, seq.sample_lens, sample_masks(seq), dev)
        hidden = self.language_model.model(x, seq.position_ids, Routing.from_mask(is_gen), attend)
        ce = None if seq.ce_indexes is None else self.lm_head(hidden[seq.ce_indexes])
        vel = None if seq.mse_indexes is None else self.velocity_head(hidden[seq.mse_indexes])
        return PackedOutput(ce, vel, hidden if return_hidden else None)

    # ---- cached incremental API -------------------------------------------------------------------------

    def new_cache(self, batch_size: int, capacity: int = 0) -> KVCache:
        c = self.config.llm
        return KVCache.empty(
            c.num_hidden_layers,
            batch_size,
            c.num_key_value_heads,
            c.head_dim,
            self.dtype,
            self.device,
            capacity,
        )

    def _special(self) -> SpecialTokenIds:
        if self.special is None:
            raise ValueError(
                "model.special is unset: set BagelModel.special = SpecialTokenIds(...) from the tokenizer"
            )
        return self.special

    def _run_cached(
        self,
        cache: KVCache,
        x: torch.Tensor,
        is_gen: torch.Tensor | None,
        pos: torch.Tensor,
        q_lens: torch.Tensor,
        causal: bool,
        write: bool,
    ) -> torch.Tensor:
        """x [B, Lq, hidden], pos [B, Lq] -> final hidden [B, Lq, hidden]; appends to the cache if write."""
        B, Lq, H = x.shape
        if B != cache.batch_size:
            raise ValueError(f"batch of {B} samples for a cache of {cache.batch_size}")
        routing = Routing(None, None) if is_gen is None else Routing.from_mask(is_gen.reshape(-1))
        attend = CachedAttention(cache, q_lens, Lq, causal, write)
        hidden = self.language_model.model(x.reshape(B * Lq, H), pos.reshape(-1), routing, attend)
        if write:
            cache.lens += q_lens
        return hidden.view(B, Lq, H)

    def prefill_text(
        self, cache: KVCache, tokens: Sequence[Sequence[int]] | torch.Tensor, logits: str | None = "last"
    ) -> torch.Tensor | None:
        """Append a causal text piece per sample (lists may differ in length; an empty list skips the sample).

        tokens: B lists of ids, or a tensor [B, Lq] (all of length Lq). Positions continue from `cache.rope`.
        logits: "last" -> [B, vocab] at each sample's last new token (rows of skipped samples are meaningless),
        "all" -> [B, Lq, vocab], None -> nothing. Decoding one token = prefill_text(cache, [[tok], ...]).
        """
        dev = self.device
        if isinstance(tokens, torch.Tensor):
            ids = tokens.to(dev)
            q_lens = torch.full((ids.shape[0],), ids.shape[1], dtype=torch.long, device=dev)
        else:
            lens = [len(t) for t in tokens]
            Lq = max(lens) if lens else 0
            pad = self.special.pad if self.special is not None else 0
            ids = torch.tensor(
                [list(t) + [pad] * (Lq - len(t)) for t in tokens], dtype=torch.long, device=dev
            )
            q_lens = torch.tensor(lens, dtype=torch.long, device=dev)
        B, Lq = ids.shape
        pos = cache.rope[:, None] + torch.arange(Lq, device=dev)[None, :]
        hidden = self._run_cached(cache, self.embed_text(ids), None, pos, q_lens, causal=True, write=True)
        cache.rope += q_lens
        if logits is None:
            return None
        if logits == "all":
            return self.lm_head(hidden)
        last = (q_lens - 1).clamp(min=0)
        return self.lm_head(hidden[torch.arange(B, device=dev), last])

    def _image_block(
        self, cache: KVCache, inner: list[torch.Tensor | None], gen: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Wrap per-sample inner embeddings [n_b, hidden] in vision markers -> x [B, Lq, H], is_gen, pos, q_lens."""
        sp = self._special()
        dev, H = self.device, self.config.llm.hidden_size
        B = cache.batch_size
        ns = [0 if e is None else e.shape[0] for e in inner]
        Lq = max(ns) + 2
        x = torch.zeros(B, Lq, H, dtype=self.dtype, device=dev)
        is_gen = torch.zeros(B, Lq, dtype=torch.bool, device=dev)
        markers = self.embed_text(torch.tensor([sp.vision_start, sp.vision_end], device=dev))
        for b, e in enumerate(inner):
            if e is None:
                continue
            n = e.shape[0]
            x[b, 0] = markers[0]
            x[b, 1 : n + 1] = e.to(x.dtype)
            x[b, n + 1] = markers[1]
            is_gen[b, 1 : n + 1] = gen
        q_lens = torch.tensor(
            [0 if e is None else n + 2 for e, n in zip(inner, ns, strict=False)], dtype=torch.long, device=dev
        )
        pos = cache.rope[:, None].expand(B, Lq)
        return x, is_gen, pos, q_lens

    def prefill_vit(self, cache: KVCache, images: Sequence[torch.Tensor | None]) -> None:
        """Append one ViT image per sample: float [3, H, W] normalised to [-1, 1] (None skips the sample)."""
        p = self.config.vit.patch_size
        patches, pos_ids, seqlens = [], [], []
        for img in images:
            if img is None:
                continue
            patches.append(patchify(img.to(self.device), p))
            pos_ids.append(
                flattened_position_ids(
                    img.shape[1] // p,
                    img.shape[2] // p,
                    self.config.vit_max_num_patch_per_side,
                    self.config.interpolate_pos,
                )
            )
            seqlens.append(patches[-1].shape[0])
        if not patches:
            return
        emb = self.embed_vit(torch.cat(patches), torch.cat(pos_ids).to(self.device), seqlens)
        chunks = iter(emb.split(seqlens))
        inner = [None if img is None else next(chunks) for img in images]
        x, _, pos, q_lens = self._image_block(cache, inner, gen=False)
        self._run_cached(cache, x, None, pos, q_lens, causal=False, write=True)
        cache.rope += (q_lens > 0).long()

    def latent_pos_ids(self, grid_hw: tuple[int, int]) -> torch.Tensor:
        h, w = grid_hw
        return flattened_position_ids(h, w, self.config.max_latent_size, self.config.interpolate_pos).to(
            self.device
        )

    def _latent_inner(self, tokens, grid_hw, t: torch.Tensor) -> list[torch.Tensor | None]:
        """Embed each sample's latent tokens [h*w, P] (None stays None) at its time t[b], in one batched call."""
        pos = self.latent_pos_ids(grid_hw)
        n = pos.numel()
        keep = [b for b, tok in enumerate(tokens) if tok is not None]
        for b in keep:
            if tokens[b].shape[0] != n:
                raise ValueError(f"sample {b}: {tokens[b].shape[0]} latent tokens for a {grid_hw} grid")
        if not keep:
            return [None] * len(tokens)
        flat = torch.cat([tokens[b] for b in keep]).to(self.device)
        tt = t.to(self.device)[torch.tensor(keep, device=self.device)].repeat_interleave(n)
        chunks = iter(self.embed_latents(flat, tt, pos.repeat(len(keep))).split(n))
        return [None if tok is None else next(chunks) for tok in tokens]

    def prefill_vae(
        self, cache: KVCache, tokens: torch.Tensor | Sequence[torch.Tensor | None], grid_hw: tuple[int, int]
    ) -> None:
        """Append one clean VAE image per sample (timestep 0): tokens [B, h*w, P] or a list (None skips)."""
        if isinstance(tokens, torch.Tensor):
            tokens = list(tokens)
        t = torch.zeros(len(tokens))
        x, is_gen, pos, q_lens = self._image_block(cache, self._latent_inner(tokens, grid_hw, t), gen=True)
        self._run_cached(cache, x, is_gen, pos, q_lens, causal=False, write=True)
        cache.rope += (q_lens > 0).long()

    def predict_velocity(
        self, cache: KVCache, x_t: torch.Tensor, t: float | torch.Tensor, grid_hw: tuple[int, int]
    ) -> torch.Tensor:
        """Velocity [B, h*w, P] for noised latent tokens x_t [B, h*w, P] at time t (scalar or [B]).

        The image block (markers + tokens, one RoPE position = cache.rope) attends to the cache and to itself;
        nothing is written. For CFG, evaluate several caches at once with `KVCache.cat` and split the result.
        """
        B, n, _ = x_t.shape
        t = torch.as_tensor(t, dtype=torch.float32).reshape(-1).expand(B)
        x, is_gen, pos, q_lens = self._image_block(cache, self._latent_inner(list(x_t), grid_hw, t), gen=True)
        hidden = self._run_cached(cache, x, is_gen, pos, q_lens, causal=False, write=False)
        return self.velocity_head(hidden[:, 1 : n + 1])
