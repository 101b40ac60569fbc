"""Our BAGEL modules against independent implementations (transformers) and the official code's conventions.

See docs/faithfulness.md for the item-by-item audit. The LLM is checked against `transformers` Qwen3 (per-head
q/k RMSNorm before RoPE, like BAGEL's `PackedAttentionMoT`; Qwen2's q/k/v biases = Qwen3 with `attention_bias`
and a zero o_proj bias). The MoT routing with distinct experts is checked against a reference assembled from two
Qwen3 models (one per expert) following the official routing rule: every VAE token (clean or noised) uses the
`*_moe_gen` weights, every text / marker / ViT token the understanding weights. The SigLIP tower is checked
against `transformers.SiglipVisionModel` (conv patch embedding -> our linear one). fp32, atol 1e-5.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from _model_helpers import SPECIAL, random_model
from transformers import Qwen3Config, Qwen3ForCausalLM, SiglipVisionConfig, SiglipVisionModel
from transformers.models.qwen3.modeling_qwen3 import apply_rotary_pos_emb, eager_attention_forward

from irg_rl.models import BagelModel, PackedSequenceBuilder, build_attention_mask
from irg_rl.models.configs import LLMConfig, micro
from irg_rl.models.embeddings import flattened_position_ids, sincos_2d_table, timestep_features
from irg_rl.models.patchify import patchify
from irg_rl.models.siglip import SiglipVisionModel as OurSiglip
from irg_rl.models.vae.flux_ae import FluxAEConfig, FluxAutoencoder

torch.set_num_threads(1)
ATOL = 1e-5


# ---- helpers ---------------------------------------------------------------------------------------------


def _qwen3_like(model: BagelModel, gen: bool = False) -> Qwen3ForCausalLM:
    """A transformers Qwen3 carrying our und (or gen) expert's weights; o_proj bias zero (Qwen2 has none)."""
    c = model.config.llm
    cfg = Qwen3Config(
        vocab_size=c.vocab_size,
        hidden_size=c.hidden_size,
        intermediate_size=c.intermediate_size,
        num_hidden_layers=c.num_hidden_layers,
        num_attention_heads=c.num_attention_heads,
        num_key_value_heads=c.num_key_value_heads,
        head_dim=c.head_dim,
        hidden_act=c.hidden_act,
        max_position_embeddings=c.max_position_embeddings,
        rms_norm_eps=c.rms_norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": c.rope_theta},
        attention_bias=True,
        tie_word_embeddings=False,
    )
    cfg._attn_implementation = "eager"
    hf = Qwen3ForCausalLM(cfg).eval()
    ours = model.language_model.state_dict()
    sd = {}
    for name in hf.state_dict():
        if name.endswith("o_proj.bias"):
            sd[name] = torch.zeros(c.hidden_size)
            continue
        src = name
        if gen and ".mlp." in name:
            src = name.replace(".mlp.", ".mlp_moe_gen.")
        elif gen and name.startswith("model.layers."):
            head, _, leaf = name.rpartition(".")  # e.g. model.layers.0.self_attn.q_proj . weight
            mod, _, last = head.rpartition(".")
            src = f"{mod}.{last}_moe_gen.{leaf}"
        elif gen and name == "model.norm.weight":
            src = "model.norm_moe_gen.weight"
        sd[name] = ours[src]
    hf.load_state_dict(sd)
    return hf


def _additive(mask: torch.Tensor) -> torch.Tensor:
    """bool [L, L] (True = may attend) -> additive float mask [1, 1, L, L]."""
    return torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))[None, None]


def _mixed_sequence(model: BagelModel, gen: torch.Generator):
    """text, ViT image, clean VAE image, noised VAE image (its clean copy shares the RoPE id), text."""
    cfg = model.config
    P = cfg.patch_latent_dim
    b = PackedSequenceBuilder(SPECIAL, cfg.max_latent_size, cfg.vit_max_num_patch_per_side)
    b.add_text([1, 5, 6, 7, 2])
    b.add_vit_image(torch.randn(4, cfg.vit.patch_dim, generator=gen), (2, 2))
    b.add_vae_image(torch.randn(6, P, generator=gen), (2, 3))
    b.add_text([1, 8, 9, 2], loss=True)
    b.add_vae_image(torch.randn(4, P, generator=gen), (2, 2), t=0.7, noised=True)
    b.add_text([1, 10, 2], loss=True)
    return b.build()


def _inputs(model: BagelModel, seq) -> tuple[torch.Tensor, torch.Tensor]:
    """The LLM input embeddings [L, H] of a packed sequence and its is_gen mask [L] (official rule)."""
    x = torch.zeros(seq.length, model.config.llm.hidden_size)
    x[seq.text_indexes] = model.embed_text(seq.text_ids)
    x[seq.vit_indexes] = model.embed_vit(seq.vit_patches, seq.vit_pos_ids, seq.vit_seqlens)
    x[seq.vae_indexes] = model.embed_latents(seq.vae_tokens, seq.vae_timesteps, seq.vae_pos_ids)
    is_gen = torch.zeros(seq.length, dtype=torch.bool)
    is_gen[seq.vae_indexes] = True
    return x, is_gen


# ---- LLM vs transformers Qwen3 -----------------------------------------------------------------------------


@pytest.mark.parametrize("act", ["silu", "gelu_pytorch_tanh"])
@torch.no_grad()
def test_text_llm_matches_qwen3(act):
    """Text-only tokens use only the und expert: logits equal Qwen3's, packed and cached (hidden_act honoured)."""
    cfg = micro()
    cfg.llm.hidden_act = act
    torch.manual_seed(0)
    model = BagelModel(cfg, SPECIAL)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.rand_like(p) + 0.5 if "norm" in name else torch.randn_like(p) * 0.2)
    model.eval()
    hf = _qwen3_like(model)
    ids = [1, 9, 17, 33, 5, 60, 2, 11]
    ref = hf(input_ids=torch.tensor([ids])).logits[0]

    b = PackedSequenceBuilder(SPECIAL, cfg.max_latent_size, cfg.vit_max_num_patch_per_side)
    b.add_text(ids, loss=True, last_label=0)
    out = model.forward_packed(b.build())
    torch.testing.assert_close(out.ce_logits, ref, atol=ATOL, rtol=0)

    cache = model.new_cache(1)
    cached = model.prefill_text(cache, [ids[:5]], logits="all")[0]
    step = model.prefill_text(cache, [ids[5:]], logits="all")[0]
    torch.testing.assert_close(torch.cat([cached, step]), ref, atol=ATOL, rtol=0)


@torch.no_grad()
def test_equal_experts_mixed_sequence_matches_qwen3():
    """With gen == und weights, a text+ViT+VAE packed sample equals Qwen3 fed the same embeddings, BAGEL's mask
    (causal text, full image blocks, hidden noised block) and BAGEL's position ids (one per image)."""
    model = random_model(seed=1)
    model.language_model.init_moe_from_und()
    seq = _mixed_sequence(model, torch.Generator().manual_seed(0))
    hidden = model.forward_packed(seq, return_hidden=True).hidden
    x, _ = _inputs(model, seq)
    mask = build_attention_mask(seq.split_lens, seq.attn_modes, seq.sample_lens)
    hf = _qwen3_like(model)
    ref = hf.model(
        inputs_embeds=x[None],
        attention_mask={"full_attention": _additive(mask)},
        position_ids=seq.position_ids[None],
    ).last_hidden_state[0]
    torch.testing.assert_close(hidden, ref, atol=ATOL, rtol=0)
    # the position ids are the official ones: every image block shares one id, noised blocks do not advance
    assert seq.position_ids.tolist() == [0, 1, 2, 3, 4] + [5] * 6 + [6] * 8 + [7, 8, 9, 10] + [11] * 6 + [
        11,
        12,
        13,
    ]


def _reference_mot(model: BagelModel, x, is_gen, position_ids, mask) -> torch.Tensor:
    """The official MoT forward (per-token expert choice for every norm / projection / MLP, one shared attention),
    assembled from two transformers Qwen3 models holding our und and gen weights."""
    und, gen = _qwen3_like(model).model, _qwen3_like(model, gen=True).model
    c = model.config.llm
    hq, hk, d = c.num_attention_heads, c.num_key_value_heads, c.head_dim

    def pick(yu: torch.Tensor, yg: torch.Tensor) -> torch.Tensor:
        return torch.where(is_gen.view(-1, *[1] * (yu.dim() - 1)), yg, yu)

    def qkv(layer, h):
        a = layer.self_attn
        q = a.q_norm(a.q_proj(h).view(-1, hq, d))
        k = a.k_norm(a.k_proj(h).view(-1, hk, d))
        return q, k, a.v_proj(h).view(-1, hk, d)

    def ffn(layer, x):
        return layer.mlp(layer.post_attention_layernorm(x))

    cos, sin = und.rotary_emb(x[None], position_ids[None])
    for lu, lg in zip(und.layers, gen.layers, strict=True):
        h = pick(lu.input_layernorm(x), lg.input_layernorm(x))
        q, k, v = (pick(u, g) for u, g in zip(qkv(lu, h), qkv(lg, h), strict=True))
        q, k = apply_rotary_pos_emb(q.transpose(0, 1)[None], k.transpose(0, 1)[None], cos, sin)
        att, _ = eager_attention_forward(
            lu.self_attn, q, k, v.transpose(0, 1)[None], _additive(mask), scaling=d**-0.5
        )
        att = att[0].reshape(-1, hq * d)
        x = x + pick(lu.self_attn.o_proj(att), lg.self_attn.o_proj(att))
        x = x + pick(ffn(lu, x), ffn(lg, x))
    return pick(und.norm(x), gen.norm(x))


@torch.no_grad()
def test_mot_routing_with_distinct_experts_matches_official_rule():
    """Distinct experts: clean AND noised VAE tokens take the gen weights, ViT tokens and image markers the und
    weights; the final norm is per expert (norm / norm_moe_gen)."""
    model = random_model(seed=2)
    seq = _mixed_sequence(model, torch.Generator().manual_seed(1))
    hidden = model.forward_packed(seq, return_hidden=True).hidden
    x, is_gen = _inputs(model, seq)
    mask = build_attention_mask(seq.split_lens, seq.attn_modes, seq.sample_lens)
    ref = _reference_mot(model, x, is_gen, seq.position_ids, mask)
    torch.testing.assert_close(hidden, ref, atol=ATOL, rtol=0)
    # and the routing matters: treating the clean VAE block as und tokens changes the result
    wrong = is_gen.clone()
    wrong[seq.vae_indexes[:6]] = False
    assert (_reference_mot(model, x, wrong, seq.position_ids, mask) - hidden).abs().max() > 1e-3


# ---- SigLIP vs transformers --------------------------------------------------------------------------------


def _hf_siglip(ours: OurSiglip, vcfg) -> SiglipVisionModel:
    """transformers SiglipVisionModel with our weights (linear patch embedding -> conv [D, C, p, p])."""
    hcfg = SiglipVisionConfig(
        hidden_size=vcfg.hidden_size,
        intermediate_size=vcfg.intermediate_size,
        num_hidden_layers=vcfg.num_layers_used,
        num_attention_heads=vcfg.num_attention_heads,
        num_channels=vcfg.num_channels,
        image_size=vcfg.image_size,
        patch_size=vcfg.patch_size,
        hidden_act=vcfg.hidden_act,
        layer_norm_eps=vcfg.layer_norm_eps,
        vision_use_head=False,
    )
    hcfg._attn_implementation = "eager"
    hf = SiglipVisionModel(hcfg).eval()
    sd = dict(ours.state_dict())
    w = sd["vision_model.embeddings.patch_embedding.weight"]
    p, C = vcfg.patch_size, vcfg.num_channels
    # the official convert_conv2d_to_linear flattens the conv kernel as (py, px, c): invert that here
    sd["vision_model.embeddings.patch_embedding.weight"] = w.reshape(-1, p, p, C).permute(0, 3, 1, 2)
    missing, unexpected = hf.load_state_dict(
        {k.removeprefix("vision_model."): v for k, v in sd.items()}, strict=False
    )
    assert not unexpected and all("position_ids" in k for k in missing), (missing, unexpected)
    return hf


@torch.no_grad()
def test_siglip_navit_matches_transformers():
    model = random_model(seed=3)
    vcfg = model.config.vit
    ours = model.vit_model
    hf = _hf_siglip(ours, vcfg)
    p, side = vcfg.patch_size, vcfg.image_size // vcfg.patch_size
    assert model.config.vit_max_num_patch_per_side == side
    gen = torch.Generator().manual_seed(0)
    full = torch.rand(3, vcfg.image_size, vcfg.image_size, generator=gen) * 2 - 1
    small = torch.rand(3, 2 * p, 3 * p, generator=gen) * 2 - 1

    ref_full = hf(pixel_values=full[None]).last_hidden_state[0]
    got_full = ours(patchify(full, p), flattened_position_ids(side, side, side), [side * side])
    torch.testing.assert_close(got_full, ref_full, atol=ATOL, rtol=0)

    # NaViT: a smaller image uses the top-left rows of the position table and attends only to itself
    emb = hf.embeddings
    pos_small = flattened_position_ids(2, 3, side)
    x = emb.patch_embedding(small[None]).flatten(2).transpose(1, 2) + emb.position_embedding(pos_small)[None]
    ref_small = hf.post_layernorm(hf.encoder(inputs_embeds=x).last_hidden_state)[0]
    packed = ours(
        torch.cat([patchify(full, p), patchify(small, p)]),
        torch.cat([flattened_position_ids(side, side, side), pos_small]),
        [side * side, 6],
    )
    torch.testing.assert_close(packed, torch.cat([ref_full, ref_small]), atol=ATOL, rtol=0)


@torch.no_grad()
def test_vit_embedding_is_connector_gelu_tanh_plus_fixed_pos_embed():
    model = random_model(seed=4)
    patches = torch.randn(4, model.config.vit.patch_dim)
    pos = flattened_position_ids(2, 2, model.config.vit_max_num_patch_per_side)
    feats = model.vit_model(patches, pos, [4])
    c = model.connector
    ref = c.fc2(F.gelu(c.fc1(feats), approximate="tanh")) + model.vit_pos_embed.pos_embed[pos]
    torch.testing.assert_close(model.embed_vit(patches, pos, [4]), ref, atol=ATOL, rtol=0)


# ---- embeddings, patchify, latent path -------------------------------------------------------------------


def test_timestep_features_are_cos_then_sin_of_raw_t():
    t = torch.tensor([0.0, 0.3, 1.0])
    f = timestep_features(t, dim=8)
    for i, tv in enumerate(t.tolist()):
        freqs = [math.exp(-math.log(10000.0) * k / 4) for k in range(4)]
        ref = [math.cos(tv * w) for w in freqs] + [math.sin(tv * w) for w in freqs]
        torch.testing.assert_close(f[i], torch.tensor(ref), atol=1e-6, rtol=0)


def test_latent_pos_table_row_is_column_then_row_sin_then_cos():
    D, S = 16, 5
    table = sincos_2d_table(D, S)
    omega = [1.0 / 10000 ** (j / (D / 4)) for j in range(D // 4)]

    def one(pos):
        return [math.sin(pos * w) for w in omega] + [math.cos(pos * w) for w in omega]

    for r, c in [(0, 0), (1, 3), (4, 2)]:
        torch.testing.assert_close(table[r * S + c], torch.tensor(one(c) + one(r)), atol=1e-6, rtol=0)
    assert flattened_position_ids(2, 3, S).tolist() == [0, 1, 2, 5, 6, 7]


def test_latent_pos_scale_multiplies_grid_coordinates():
    # scale 2 on a 3-side grid: cell (r, c) gets the scale-1 row of cell (2r, 2c) in a 5-side grid
    D = 16
    scaled, plain = sincos_2d_table(D, 3, scale=2.0), sincos_2d_table(D, 5)
    for r, c in [(0, 0), (1, 2), (2, 1)]:
        torch.testing.assert_close(scaled[r * 3 + c], plain[(2 * r) * 5 + 2 * c], atol=1e-6, rtol=0)
    assert torch.equal(sincos_2d_table(D, 3, scale=1.0), sincos_2d_table(D, 3))


def test_patchify_rows_are_py_px_c_like_the_official_einsum():
    C, p = 3, 2
    x = torch.arange(C * 4 * 6, dtype=torch.float32).reshape(C, 4, 6)
    rows = patchify(x, p)
    for i in range(2):
        for j in range(3):
            ref = [x[c, i * p + py, j * p + px] for py in range(p) for px in range(p) for c in range(C)]
            assert rows[i * 3 + j].tolist() == [float(v) for v in ref]


@torch.no_grad()
def test_latent_embedding_is_vae2llm_plus_time_plus_pos():
    model = random_model(seed=5)
    tok = torch.randn(6, model.config.patch_latent_dim)
    t = torch.full((6,), 0.25)
    pos = flattened_position_ids(2, 3, model.config.max_latent_size)
    te = model.time_embedder.mlp
    ref = (
        model.vae2llm(tok)
        + te[2](F.silu(te[0](timestep_features(t))))
        + model.latent_pos_embed.pos_embed[pos]
    )
    torch.testing.assert_close(model.embed_latents(tok, t, pos), ref, atol=ATOL, rtol=0)


# ---- regression tests for the fixes of the audit --------------------------------------------------------


def test_rope_scaling_is_rejected_not_ignored():
    LLMConfig.from_dict({"rope_scaling": None}).validate()
    LLMConfig.from_dict({"rope_scaling": {"rope_type": "default"}}).validate()
    with pytest.raises(NotImplementedError, match="rope_scaling"):
        LLMConfig.from_dict({"rope_scaling": {"type": "yarn", "factor": 4.0}}).validate()


def test_packed_builder_follows_interpolate_pos_like_the_cached_api():
    cfg = micro()
    cfg.interpolate_pos = True
    model = BagelModel(cfg, SPECIAL)
    P = cfg.patch_latent_dim
    b = PackedSequenceBuilder(
        SPECIAL, cfg.max_latent_size, cfg.vit_max_num_patch_per_side, cfg.interpolate_pos
    )
    b.add_vit_image(torch.zeros(4, cfg.vit.patch_dim), (2, 2))
    b.add_vae_image(torch.zeros(4, P), (2, 2))
    seq = b.build()
    assert seq.vae_pos_ids.tolist() == model.latent_pos_ids((2, 2)).tolist() == [0, 4, 32, 36]
    assert seq.vit_pos_ids.tolist() == flattened_position_ids(2, 2, 4, interpolate=True).tolist()
    default = PackedSequenceBuilder(SPECIAL, cfg.max_latent_size, cfg.vit_max_num_patch_per_side)
    default.add_vae_image(torch.zeros(4, P), (2, 2))
    assert default.build().vae_pos_ids.tolist() == [0, 1, 8, 9]


@torch.no_grad()
def test_flux_encode_can_sample_the_posterior_like_the_official_code():
    torch.manual_seed(0)
    ae = FluxAutoencoder(FluxAEConfig(ch=32, ch_mult=[1, 2], num_res_blocks=1, z_channels=4)).eval()
    img = torch.rand(1, 3, 8, 8) * 2 - 1
    moments = ae.encoder(img)
    mean, logvar = moments[:, :4], moments[:, 4:]
    s, sh = ae.cfg.scale_factor, ae.cfg.shift_factor
    torch.testing.assert_close(ae.encode(img), s * (mean - sh), atol=ATOL, rtol=0)
    eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(7))
    got = ae.encode(img, sample=True, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(got, s * (mean + torch.exp(0.5 * logvar) * eps - sh), atol=ATOL, rtol=0)
    assert (got - ae.encode(img)).abs().max() > 1e-4
