"""The preallocated KV cache: in-place appends past the capacity equal a cat-built cache; forks never alias."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from _model_helpers import random_model

from irg_rl.models import KVCache
from irg_rl.models.mot_layer import Routing

torch.set_num_threads(1)
GRID = (2, 2)
PROMPTS = [[1, 5, 6, 7, 2], [1, 9, 10, 11, 12, 13, 2, 8, 8]]  # ragged rows


class CatCache:
    """Reference for one sample: per-layer K/V grown with torch.cat, causal attention over the whole prefix."""

    def __init__(self):
        self.keys: dict[int, torch.Tensor] = {}
        self.values: dict[int, torch.Tensor] = {}

    def __call__(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q [L, Hq, D], k/v [L, Hkv, D] -> [L, Hq, D]."""
        q, k, v = (x.transpose(0, 1)[None] for x in (q, k, v))
        past = self.keys[layer].shape[2] if layer in self.keys else 0
        self.keys[layer] = k if layer not in self.keys else torch.cat([self.keys[layer], k], dim=2)
        self.values[layer] = v if layer not in self.values else torch.cat([self.values[layer], v], dim=2)
        L, n = q.shape[2], self.keys[layer].shape[2]
        mask = torch.arange(n)[None, :] <= past + torch.arange(L)[:, None]
        out = F.scaled_dot_product_attention(
            q, self.keys[layer], self.values[layer], attn_mask=mask, enable_gqa=True
        )
        return out[0].transpose(0, 1)


def _cat_build(model, ids: list[int]) -> tuple[CatCache, torch.Tensor]:
    """One forward over `ids` with the cat-built cache -> (cache, logits [L, V])."""
    ref = CatCache()
    x = model.embed_text(torch.tensor(ids))
    hidden = model.language_model.model(x, torch.arange(len(ids)), Routing(None, None), ref)
    return ref, model.lm_head(hidden)


def test_single_token_appends_past_capacity_equal_cat_build():
    model = random_model()
    g = torch.Generator().manual_seed(3)
    steps = 80  # past the first growth (64 slots) with the longer row
    new = torch.randint(5, model.config.llm.vocab_size, (2, steps), generator=g)
    with torch.no_grad():
        cache = model.new_cache(2, capacity=4)
        model.prefill_text(cache, PROMPTS, logits=None)
        caps = {cache.capacity}
        logits = []
        for s in range(steps):
            logits.append(model.prefill_text(cache, new[:, s : s + 1]))
            caps.add(cache.capacity)
        logits = torch.stack(logits, 1)  # [2, steps, V]
        assert sorted(caps) == [64, 128]  # grown twice: the appends crossed a full buffer
        for b in range(2):
            ids = PROMPTS[b] + new[b].tolist()
            ref, ref_logits = _cat_build(model, ids)
            n = len(ids)
            assert int(cache.lens[b]) == n == int(cache.rope[b])
            for layer in range(model.config.llm.num_hidden_layers):
                torch.testing.assert_close(
                    cache.keys[layer][b, :, :n], ref.keys[layer][0], atol=1e-5, rtol=1e-5
                )
                torch.testing.assert_close(
                    cache.values[layer][b, :, :n], ref.values[layer][0], atol=1e-5, rtol=1e-5
                )
            # the logits after token t predict token t + 1: rows len(prompt) - 1 + s of the one-shot build
            start = len(PROMPTS[b])
            torch.testing.assert_close(logits[b], ref_logits[start : start + steps], atol=1e-5, rtol=1e-5)


def test_clone_select_cat_do_not_alias():
    model = random_model()
    with torch.no_grad():
        base = model.new_cache(2)
        model.prefill_text(base, PROMPTS, logits=None)
        base.reserve(16)  # room in place: a shared buffer would be overwritten by the next append
        fork, rep = base.clone(), base.select([1, 0])
        both = KVCache.cat([base, fork])
        snaps = [[k.clone() for k in c.keys] for c in (fork, rep, both)]
        model.prefill_text(base, [[20, 21], [22]], logits=None)
        model.prefill_text(fork, [[30], [31, 32, 33]], logits=None)
        for c, snap in zip((rep, both), snaps[1:], strict=True):
            for k, k0 in zip(c.keys, snap, strict=True):
                assert torch.equal(k, k0)
        for k, k0 in zip(fork.keys, snaps[0], strict=True):  # the fork's prefixes survive its own appends
            for b, n in enumerate(map(len, PROMPTS)):
                assert torch.equal(k[b, :, :n], k0[b, :, :n])
        # each branch continues exactly as a fresh cache with the same tokens
        for branch, added in ((base, [[20, 21], [22]]), (fork, [[30], [31, 32, 33]])):
            fresh = model.new_cache(2)
            model.prefill_text(fresh, [p + t for p, t in zip(PROMPTS, added, strict=True)], logits=None)
            torch.testing.assert_close(
                model.prefill_text(branch, [[7], [7]]),
                model.prefill_text(fresh, [[7], [7]]),
                atol=1e-5,
                rtol=1e-5,
            )


def test_shared_prefix_view_survives_velocity_calls():
    """A read-only view sharing the parent's buffers: predict_velocity on it restores the slots it borrows."""
    model = random_model()
    g = torch.Generator().manual_seed(1)
    P = model.config.patch_latent_dim
    x_t = torch.randn(2, GRID[0] * GRID[1], P, generator=g)
    with torch.no_grad():
        parent = model.new_cache(2)
        model.prefill_text(parent, PROMPTS, logits=None)
        parent.reserve(32)
        view = KVCache(list(parent.keys), list(parent.values), parent.lens.clone(), parent.rope.clone())
        model.prefill_text(parent, [[40, 41, 42], [43]], logits=None)  # lands in the view's free slots
        assert parent.keys[0].data_ptr() == view.keys[0].data_ptr()
        before = [k.clone() for k in parent.keys] + [v.clone() for v in parent.values]
        v_view = model.predict_velocity(view, x_t, 0.5, GRID)
        v_parent = model.predict_velocity(parent, x_t, 0.5, GRID)
        after = list(parent.keys) + list(parent.values)
        for t0, t1 in zip(before, after, strict=True):
            assert torch.equal(t0, t1)
        assert not torch.allclose(v_view, v_parent)  # the view does not see the parent's later text
        solo = model.new_cache(2)
        model.prefill_text(solo, PROMPTS, logits=None)
        torch.testing.assert_close(v_view, model.predict_velocity(solo, x_t, 0.5, GRID), atol=1e-5, rtol=1e-5)
        # a trimmed copy has no room for the block: read by concatenation, not grown
        trimmed = solo.clone()
        cap = trimmed.capacity
        v_trimmed = model.predict_velocity(trimmed, x_t, 0.5, GRID)
        assert trimmed.capacity == cap == int(trimmed.lens.max())
        torch.testing.assert_close(v_view, v_trimmed, atol=1e-5, rtol=1e-5)


def test_reserve_allocates_once():
    model = random_model()
    with torch.no_grad():
        cache = model.new_cache(2)
        model.prefill_text(cache, PROMPTS, logits=None)
        cache.reserve(100)
        assert cache.capacity >= int(cache.lens.max()) + 100
        ptr = cache.keys[0].data_ptr()
        for _ in range(100):
            model.prefill_text(cache, [[5], [6]], logits=None)
        assert cache.keys[0].data_ptr() == ptr
