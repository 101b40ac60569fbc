"""Batched think sampling on a KV cache: temperature sampling, per-sample stop, token ids and log-probs recorded.

The piece written into the cache is `<|im_start|> sampled... <|im_end|>`: sampling stops per sample at a sampled
`<|im_end|>` (kept, with its log-prob), at a stop string such as `</think>` or at the length limit (then
`<|im_end|>` is appended without a log-prob). Each sample draws from its own `torch.Generator`, so a trajectory
does not depend on which other samples share its batch (the research baseline reproduces it at batch 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from irg_rl.models import BagelModel, KVCache

__all__ = ["TextSample", "StopStrings", "token_logprobs", "draw_tokens", "sample_text"]


@dataclass
class TextSample:
    """One sampled piece."""

    # ids written into the context (<|im_start|> ... <|im_end|>)
    context_ids: list[int]
    # sampled ids (context_ids[1 : 1 + n])
    token_ids: list[int]
    # log-prob of each sampled id
    logprobs: list[float]
    # eos | stop_string | length
    stop_reason: str


class StopStrings:
    """Detects a decoded tail ending with one of `strings` (decoding only the last few tokens)."""

    def __init__(self, tokenizer, strings: Sequence[str]):
        self.tokenizer, self.strings = tokenizer, [s for s in strings if s]
        lens = [len(tokenizer(s, add_special_tokens=False)["input_ids"]) for s in self.strings]
        self.tail = max(lens, default=0) + 2

    def hit(self, ids: list[int]) -> bool:
        if not self.strings:
            return False
        text = self.tokenizer.decode(ids[-self.tail :], skip_special_tokens=False)
        return any(text.endswith(s) for s in self.strings)


def token_logprobs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """log-softmax of logits [..., V] / T in float32 (T = 0, greedy, scores under T = 1)."""
    t = temperature if temperature > 0 else 1.0
    return torch.log_softmax(logits.float() / t, dim=-1)


def draw_tokens(
    logp: torch.Tensor, temperature: float, generators: Sequence[torch.Generator]
) -> torch.Tensor:
    """One token per row of log-probs [B, V]: argmax when T = 0, else inverse-CDF with row b's generator -> [B]."""
    if temperature <= 0:
        return logp.argmax(dim=-1)
    cdf = logp.exp().cumsum(dim=-1)
    u = torch.stack([torch.rand(1, generator=g, device=logp.device) for g in generators])
    u = u * cdf[:, -1:]  # the cdf's last entry is 1 up to rounding
    return torch.searchsorted(cdf, u).squeeze(1).clamp(max=logp.shape[-1] - 1)


@torch.no_grad()
def sample_text(
    model: BagelModel,
    cache: KVCache,
    temperature: float,
    max_new_tokens: int,
    generators: Sequence[torch.Generator],
    stop: StopStrings | None = None,
) -> list[TextSample]:
    """Sample one think piece per cache sample and append it to the cache (in place)."""
    sp = model._special()
    B = cache.batch_size
    if len(generators) != B:
        raise ValueError(f"sample_text: {len(generators)} generators for a batch of {B}")
    ids: list[list[int]] = [[] for _ in range(B)]
    lps: list[list[float]] = [[] for _ in range(B)]
    reason = ["length"] * B
    active = [True] * B
    pending: list[list[int]] = [[sp.im_start] for _ in range(B)]  # ids not yet in the cache
    cache.reserve(max_new_tokens + 2)  # <|im_start|>, the samples, the last one + <|im_end|>: no regrowth
    for _ in range(max_new_tokens):
        rows = [b for b in range(B) if active[b]]
        logits = model.prefill_text(cache, [pending[b] if active[b] else [] for b in range(B)])
        logp = token_logprobs(logits[rows], temperature)
        toks = draw_tokens(logp, temperature, [generators[b] for b in rows])
        chosen = logp.gather(1, toks[:, None]).squeeze(1)
        for j, b in enumerate(rows):
            tok = int(toks[j])
            ids[b].append(tok)
            lps[b].append(float(chosen[j]))
            pending[b] = [tok]
            if tok == sp.im_end:
                reason[b], active[b] = "eos", False
            elif stop is not None and stop.hit(ids[b]):
                reason[b], active[b] = "stop_string", False
        if not any(active):
            break
    # the last sampled token is not in the cache yet; close every piece with <|im_end|>
    final = [pending[b] + ([] if reason[b] == "eos" else [sp.im_end]) for b in range(B)]
    model.prefill_text(cache, final, logits=None)
    out = []
    for b in range(B):
        ctx = [sp.im_start] + ids[b] + ([] if reason[b] == "eos" else [sp.im_end])
        out.append(TextSample(ctx, ids[b], lps[b], reason[b]))
    return out
