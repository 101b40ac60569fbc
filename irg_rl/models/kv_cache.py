"""KV cache for batched incremental inference, and the attention functions of the packed and cached paths.

Layout (padded, left-aligned): per layer, keys and values are preallocated buffers [B, Hkv, capacity, D]; sample
b's valid entries are [0, lens[b]). Keys are stored after RoPE. `rope[b]` is the next RoPE position of sample b.
Samples may hold different lengths; unused slots are masked out (and hold finite values: zeros or stale keys).
Appending is an in-place slice write at lens[b] (capacity grows by doubling, or up front with `reserve`), and
attention reads a view of the buffer, so a decode step never copies the cache. Caches are plain tensors:
`clone()` forks a context (CFG branches share a prefix by forking; the copy owns new buffers), `select(idx)`
gathers/repeats samples (a copy), `cat` stacks caches along the batch (a copy; e.g. main + CFG branches
evaluated in one call). Several caches may share buffers when built by hand from the same tensors (a read-only
prefix view, see `inference/context.py`): writes land beyond the shorter cache's lengths, and a non-writing
call (`predict_velocity`) restores the slots it borrowed.
Writing into a cache is in place: use the cached API under `torch.no_grad()`; gradients go through
`BagelModel.forward_packed`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class KVCache:
    # per-layer keys [B, Hkv, capacity, D] (post-RoPE)
    keys: list[torch.Tensor]
    # per-layer values [B, Hkv, capacity, D]
    values: list[torch.Tensor]
    # valid entries per sample [B] (long)
    lens: torch.Tensor
    # next RoPE position per sample [B] (long)
    rope: torch.Tensor

    @staticmethod
    def empty(
        num_layers: int,
        batch: int,
        num_kv_heads: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device | str,
        capacity: int = 0,
    ) -> KVCache:
        shape = (batch, num_kv_heads, capacity, head_dim)
        return KVCache(
            keys=[torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)],
            values=[torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)],
            lens=torch.zeros(batch, dtype=torch.long, device=device),
            rope=torch.zeros(batch, dtype=torch.long, device=device),
        )

    @property
    def batch_size(self) -> int:
        return self.lens.shape[0]

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[2]

    def max_len(self) -> int:
        return int(self.lens.max()) if self.batch_size else 0

    def clone(self) -> KVCache:
        """An independent copy (trimmed to the longest sample)."""
        n = self.max_len()
        return KVCache(
            [k[:, :, :n].clone() for k in self.keys],
            [v[:, :, :n].clone() for v in self.values],
            self.lens.clone(),
            self.rope.clone(),
        )

    def select(self, index: torch.Tensor | list[int]) -> KVCache:
        """Samples `index` (may repeat, e.g. `torch.arange(B).repeat_interleave(G)`), as a new cache."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.lens.device)
        n = int(self.lens[index].max()) if index.numel() else 0
        return KVCache(
            [k[index, :, :n] for k in self.keys],
            [v[index, :, :n] for v in self.values],
            self.lens[index].clone(),
            self.rope[index].clone(),
        )

    @staticmethod
    def cat(caches: list[KVCache]) -> KVCache:
        """Stack caches along the batch (padding each to the longest)."""
        n = max(c.max_len() for c in caches)

        def pad(t: torch.Tensor) -> torch.Tensor:
            t = t[:, :, :n]
            return F.pad(t, (0, 0, 0, n - t.shape[2]))

        layers = range(len(caches[0].keys))
        return KVCache(
            [torch.cat([pad(c.keys[i]) for c in caches]) for i in layers],
            [torch.cat([pad(c.values[i]) for c in caches]) for i in layers],
            torch.cat([c.lens for c in caches]),
            torch.cat([c.rope for c in caches]),
        )

    def ensure_capacity(self, needed: int) -> None:
        """Grow every buffer to hold `needed` entries per sample (at least doubling, so appends amortise)."""
        if needed <= self.capacity:
            return
        new_cap = max(needed, 2 * self.capacity, 64)
        n = self.max_len()
        for store in (self.keys, self.values):
            for i, t in enumerate(store):
                grown = t.new_zeros(*t.shape[:2], new_cap, t.shape[3])
                grown[:, :, :n] = t[:, :, :n]
                store[i] = grown

    def reserve(self, extra: int) -> None:
        """Room for `extra` more entries per sample (e.g. a decode loop's max new tokens), allocated once."""
        self.ensure_capacity(self.max_len() + extra)


class PackedAttention:
    """Attention for a packed sequence: samples are padded into a batch, each with its own boolean mask."""

    def __init__(self, sample_lens: list[int], masks: list[torch.Tensor], device: torch.device):
        self.B, self.Lmax = len(sample_lens), max(sample_lens)
        rows = [torch.arange(n) + b * self.Lmax for b, n in enumerate(sample_lens)]
        self.dest = torch.cat(rows).to(device)  # packed position -> padded slot
        full = torch.ones(self.B, self.Lmax, self.Lmax, dtype=torch.bool)
        for b, (n, m) in enumerate(zip(sample_lens, masks, strict=True)):
            full[b, :n, :n] = m
            full[b, :n, n:] = False  # valid queries never see padding; padded queries see all (no NaN)
        self.mask = full[:, None].to(device)
        self.identity = self.B == 1

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        if self.identity:
            return x.transpose(0, 1)[None]
        out = x.new_zeros(self.B * self.Lmax, *x.shape[1:])
        out[self.dest] = x
        return out.view(self.B, self.Lmax, *x.shape[1:]).transpose(1, 2)

    def __call__(self, layer_idx: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q [L, Hq, D], k/v [L, Hkv, D] -> [L, Hq, D]."""
        out = F.scaled_dot_product_attention(
            self._pad(q), self._pad(k), self._pad(v), attn_mask=self.mask, enable_gqa=True
        )
        out = out.transpose(1, 2).reshape(self.B * self.Lmax, *q.shape[1:])
        return out if self.identity else out[self.dest]


class PerSampleAttention:
    """Attention for a packed sequence, one SDPA call per sample on its own rows: no padded work.

    Same results as `PackedAttention` (the padded slots never reach a valid query there). A sample whose mask is
    plain causal (pure text) uses SDPA's causal path instead of a mask."""

    def __init__(self, sample_lens: list[int], masks: list[torch.Tensor], device: torch.device):
        self.bounds, start = [], 0
        self.masks: list[torch.Tensor | None] = []
        for n, m in zip(sample_lens, masks, strict=True):
            self.bounds.append((start, start + n))
            start += n
            causal = torch.equal(m, torch.ones(n, n, dtype=torch.bool).tril())
            self.masks.append(None if causal else m[None, None].to(device))

    def __call__(self, layer_idx: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q [L, Hq, D], k/v [L, Hkv, D] -> [L, Hq, D]."""
        outs = []
        for (a, b), m in zip(self.bounds, self.masks, strict=True):
            qs, ks, vs = (t[a:b].transpose(0, 1)[None] for t in (q, k, v))
            o = F.scaled_dot_product_attention(qs, ks, vs, attn_mask=m, is_causal=m is None, enable_gqa=True)
            outs.append(o[0].transpose(0, 1))
        return torch.cat(outs) if len(outs) > 1 else outs[0]


# how forward_packed attends: "padded" = one batched call over samples padded to the longest; "per_sample" = one
# call per sample; "auto" = per_sample on CPU (measured faster, docs/benchmarks_sft.md), padded elsewhere
PACKED_ATTENTION = ("auto", "padded", "per_sample")


def packed_attention(kind: str, sample_lens: list[int], masks: list[torch.Tensor], device: torch.device):
    """The attention callable for one packed forward pass (see PACKED_ATTENTION)."""
    if kind not in PACKED_ATTENTION:
        raise ValueError(f"packed attention must be one of {PACKED_ATTENTION}, got {kind!r}")
    if kind == "auto":
        kind = "per_sample" if device.type == "cpu" else "padded"
    cls = PerSampleAttention if kind == "per_sample" else PackedAttention
    return cls(sample_lens, masks, device)


class CachedAttention:
    """New tokens [B, Lq] (flattened to B*Lq rows) attend to the cache plus themselves.

    Inside the new block: causal (text) or full (image blocks). Rows i >= q_lens[b] are padding: their outputs
    are meaningless and their keys are never written. In place (always when write=True): each layer's new
    keys/values go into the buffer at slots lens[b] + i first, then the queries attend to a view of the buffer
    [0, max(lens + q_lens)) under a per-sample mask, so nothing is concatenated. With write=False the borrowed
    slots are restored afterwards (the cache, and any cache sharing its buffers, is unchanged); a cache without
    room for the block is not grown for a read (a persistent copy) but attended as [cache; block] concatenated.
    `BagelModel._run_cached` advances `lens` after a write.
    """

    def __init__(self, cache: KVCache, q_lens: torch.Tensor, Lq: int, causal: bool, write: bool):
        self.cache, self.Lq, self.write = cache, Lq, write
        dev = cache.lens.device
        end = int((cache.lens + q_lens).max()) if cache.batch_size else 0
        if write:
            cache.ensure_capacity(end)
        self.inplace = end <= cache.capacity
        i = torch.arange(Lq, device=dev)
        pad_rows = i[None, :] >= q_lens[:, None]  # [B, Lq]
        # query i of sample b sees its cache [0, lens[b]) and new entries i' < seen[b, i]
        seen = torch.minimum(i[None, :] + 1, q_lens[:, None]) if causal else q_lens[:, None].expand(-1, Lq)
        if self.inplace:  # keys = buffer slots [0, end); new entry i' of sample b sits at lens[b] + i'
            self.Lk = end
            j = torch.arange(end, device=dev)
            mask = j[None, None, :] < (cache.lens[:, None] + seen)[:, :, None]
        else:  # keys = [buffer [0, Lc); the new block [0, Lq)]
            self.Lk = cache.max_len()
            cached = torch.arange(self.Lk, device=dev)[None, None, :] < cache.lens[:, None, None]
            mask = torch.cat([cached.expand(-1, Lq, -1), i[None, None, :] < seen[:, :, None]], dim=2)
        # padded queries see every key (finite values), so no row is fully masked (no NaN)
        self.mask = (mask | pad_rows[:, :, None])[:, None]
        self.wb, self.wi = (~pad_rows).nonzero(as_tuple=True)
        self.wpos = cache.lens[self.wb] + self.wi

    def __call__(self, layer_idx: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        B, Lq = self.cache.batch_size, self.Lq
        q = q.view(B, Lq, *q.shape[1:]).transpose(1, 2)
        k = k.view(B, Lq, *k.shape[1:]).transpose(1, 2)
        v = v.view(B, Lq, *v.shape[1:]).transpose(1, 2)
        kbuf, vbuf = self.cache.keys[layer_idx], self.cache.values[layer_idx]
        if not self.inplace:
            keys = torch.cat([kbuf[:, :, : self.Lk], k], dim=2)
            vals = torch.cat([vbuf[:, :, : self.Lk], v], dim=2)
            out = F.scaled_dot_product_attention(q, keys, vals, attn_mask=self.mask, enable_gqa=True)
            return out.transpose(1, 2).reshape(B * Lq, q.shape[1], q.shape[3])
        slots = (self.wb, slice(None), self.wpos)
        saved = None if self.write else (kbuf[slots], vbuf[slots])
        kbuf[slots] = k[self.wb, :, self.wi]
        vbuf[slots] = v[self.wb, :, self.wi]
        out = F.scaled_dot_product_attention(
            q, kbuf[:, :, : self.Lk], vbuf[:, :, : self.Lk], attn_mask=self.mask, enable_gqa=True
        )
        if saved is not None:
            kbuf[slots], vbuf[slots] = saved
        return out.transpose(1, 2).reshape(B * Lq, q.shape[1], q.shape[3])
