"""Incremental KV-cached inference equals the full packed forward; cache fork/select/cat behave."""

from __future__ import annotations

import torch
from _model_helpers import SPECIAL, random_model

from irg_rl.models import KVCache, PackedSequenceBuilder, patchify

torch.set_num_threads(1)
GRID = (2, 2)


def _content(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    P = cfg.patch_latent_dim
    n = GRID[0] * GRID[1]
    img_px = cfg.vit.patch_size * 2
    return {
        "text1": [[1, 5, 6, 7, 2], [1, 9, 10, 11, 12, 13, 2]],
        "vit": [torch.rand(3, img_px, img_px, generator=g) * 2 - 1, None],
        "vae": [torch.randn(n, P, generator=g), torch.randn(n, P, generator=g)],
        "text2": [[1, 20, 21, 2], [1, 22, 2]],
        "x_t": torch.randn(2, n, P, generator=g),
        "t": torch.tensor([0.3, 0.8]),
        "text3": [[1, 30, 31, 32], [1, 33]],
    }


def _packed(model, c):
    cfg = model.config
    b = PackedSequenceBuilder(SPECIAL, cfg.max_latent_size, cfg.vit_max_num_patch_per_side)
    for s in range(2):
        b.add_text(c["text1"][s])
        if c["vit"][s] is not None:
            img = c["vit"][s]
            p = cfg.vit.patch_size
            b.add_vit_image(patchify(img, p), (img.shape[1] // p, img.shape[2] // p))
        b.add_vae_image(c["vae"][s], GRID)
        b.add_text(c["text2"][s])
        b.add_vae_image(c["x_t"][s], GRID, t=float(c["t"][s]), noised=True)
        b.add_text(c["text3"][s])
        b.end_sample()
    return b.build()


def _text_positions(seq, sample, piece):
    """Sequence positions of the `piece`-th text split of `sample`."""
    start = sum(seq.sample_lens[:sample])
    end = start + seq.sample_lens[sample]
    acc, texts = 0, []
    for n, mode in zip(seq.split_lens, seq.attn_modes, strict=False):
        if mode == "causal" and start <= acc < end:
            texts.append((acc, n))
        acc += n
    a, n = texts[piece]
    return torch.arange(a, a + n)


def _cached(model, c):
    cache = model.new_cache(2)
    out = {"text1": model.prefill_text(cache, c["text1"], logits="all")}
    model.prefill_vit(cache, c["vit"])
    model.prefill_vae(cache, c["vae"], GRID)
    out["text2"] = model.prefill_text(cache, c["text2"], logits="all")
    out["v"] = model.predict_velocity(cache, c["x_t"], c["t"], GRID)
    out["text3"] = model.prefill_text(cache, c["text3"], logits="all")
    return out, cache


def test_cached_equals_packed_fp32():
    model = random_model()
    c = _content(model)
    seq = _packed(model, c)
    with torch.no_grad():
        full = model.forward_packed(seq, return_hidden=True)
        cached, _ = _cached(model, c)
    logits = model.lm_head(full.hidden)
    for piece, key in enumerate(["text1", "text2", "text3"]):
        for s in range(2):
            pos = _text_positions(seq, s, piece)
            torch.testing.assert_close(cached[key][s, : len(pos)], logits[pos], atol=1e-5, rtol=1e-5)
    n = GRID[0] * GRID[1]
    v_full = model.velocity_head(full.hidden[seq.mse_indexes]).view(2, n, -1)
    torch.testing.assert_close(cached["v"], v_full, atol=1e-5, rtol=1e-5)
    assert cached["v"].abs().max() > 1e-3  # a non-trivial comparison


def test_token_by_token_decode_equals_prefill():
    model = random_model()
    c = _content(model)
    with torch.no_grad():
        a = model.new_cache(2)
        model.prefill_text(a, c["text1"], logits=None)
        whole = model.prefill_text(a, [[5, 6, 7], [8, 9, 10]], logits="all")
        b = model.new_cache(2)
        model.prefill_text(b, c["text1"], logits=None)
        steps = [model.prefill_text(b, [[x], [y]]) for x, y in zip([5, 6, 7], [8, 9, 10], strict=False)]
    torch.testing.assert_close(torch.stack(steps, 1), whole, atol=1e-5, rtol=1e-5)
    assert torch.equal(a.lens, b.lens) and torch.equal(a.rope, b.rope)


def test_skipped_samples_and_varied_lengths():
    """A sample with no new tokens keeps its cache; per-sample lengths differ."""
    model = random_model()
    with torch.no_grad():
        cache = model.new_cache(2)
        model.prefill_text(cache, [[1, 5, 6], [1, 7]], logits=None)
        before = [k.clone() for k in cache.keys]
        lens = cache.lens.clone()
        model.prefill_text(cache, [[8, 9], []], logits=None)
        assert cache.lens.tolist() == [lens[0] + 2, lens[1]]
        for k0, k1 in zip(before, cache.keys, strict=False):
            torch.testing.assert_close(k1[1, :, : lens[1]], k0[1, :, : lens[1]])
        # sample 1 alone must match a batch-1 cache with the same tokens
        solo = model.new_cache(1)
        model.prefill_text(solo, [[1, 7]], logits=None)
        l_batch = model.prefill_text(cache, [[5], [5]])
        l_solo = model.prefill_text(solo, [[5]])
    torch.testing.assert_close(l_batch[1], l_solo[0], atol=1e-5, rtol=1e-5)


def test_fork_select_and_cat():
    model = random_model()
    c = _content(model)
    with torch.no_grad():
        base = model.new_cache(2)
        model.prefill_text(base, c["text1"], logits=None)
        fork = base.clone()
        model.prefill_vae(base, c["vae"], GRID)  # only the main branch sees the image
        v_main = model.predict_velocity(base, c["x_t"], c["t"], GRID)
        v_fork = model.predict_velocity(fork, c["x_t"], c["t"], GRID)
        assert not torch.allclose(v_main, v_fork)
        both = KVCache.cat([base, fork])
        v_both = model.predict_velocity(
            both, torch.cat([c["x_t"], c["x_t"]]), torch.cat([c["t"], c["t"]]), GRID
        )
        torch.testing.assert_close(v_both, torch.cat([v_main, v_fork]), atol=1e-5, rtol=1e-5)
        rep = base.select(torch.tensor([1, 1, 0]))
        v_rep = model.predict_velocity(rep, c["x_t"][[1, 1, 0]], c["t"][[1, 1, 0]], GRID)
        torch.testing.assert_close(v_rep, v_main[[1, 1, 0]], atol=1e-5, rtol=1e-5)
        # predict_velocity never writes
        assert torch.equal(base.lens, rep.lens[[2, 0]])


def test_bf16_runs_and_tracks_fp32():
    m32 = random_model()
    m16 = random_model(dtype=torch.bfloat16)
    c = _content(m32)
    with torch.no_grad():
        o32, _ = _cached(m32, c)
        o16, _ = _cached(m16, c)
        full16 = m16.forward_packed(_packed(m16, c))
    assert o16["v"].dtype == torch.bfloat16 and full16.velocity.dtype == torch.bfloat16
    err = (o16["v"].float() - o32["v"]).abs().max() / o32["v"].abs().max()
    assert err < 0.1
