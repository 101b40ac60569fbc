"""Conversation -> packed sequence for each of the six IRGL modes, hand-checked on a small example."""

import numpy as np
import pytest
import torch

from irg_rl.data import modes as M
from irg_rl.data.format import Turn, image_part, text_part
from irg_rl.models.configs import tiny
from irg_rl.models.packing import build_attention_mask
from irg_rl.models.tokenizer import train_tokenizer
from irg_rl.tasks.shapes import ShapesWorldConfig, generate_prompts
from irg_rl.tasks.shapes.data_builder import make_example, mode_conversations
from irg_rl.tasks.shapes.grid_codec import GridCodec
from irg_rl.train.sft.conversation_packing import (
    PackingOptions,
    append_sample,
    build_micro_batch,
    encode_conversation,
)
from irg_rl.train.sft.sampler import MixedSampler
from irg_rl.train.sft.setup import ModelSampleEncoder

WORLD = ShapesWorldConfig()
CFG = tiny()
NO_DROP = PackingOptions(vae_cond_dropout=0.0, timestep_shift=3.0)


@pytest.fixture(scope="module")
def enc():
    tok = train_tokenizer(["a red circle", "plan: draw it", "the image lacks a circle"] * 3, vocab_size=300)
    return ModelSampleEncoder(tok, GridCodec(WORLD, dim=CFG.vae_latent_channels), CFG)


@pytest.fixture(scope="module")
def example():
    meta = generate_prompts(WORLD, 1, seed=3, split="train")[0]
    return make_example(meta, WORLD, np.random.default_rng(0), correct=False)


def _pack(enc, conv, opts=NO_DROP, uid=0, mode=M.IMPROVING_FULL):
    from irg_rl.models.packing import PackedSequenceBuilder

    sample = encode_conversation(conv, mode, uid, enc, opts)
    b = PackedSequenceBuilder(enc.special, CFG.max_latent_size, CFG.vit_max_num_patch_per_side)
    append_sample(b, sample)
    return sample, b.build()


# attention mode of each split and where the losses are, per mode (image_1 is a corruption: no loss on it)
EXPECTED = {
    M.INITIAL_THINKING_UNDERSTANDING: (["causal", "full", "full", "causal"], "t1", 0),
    M.INITIAL_THINKING_GENERATION: (["causal", "causal"], "t1", 0),
    M.INITIAL_FULL: (["causal", "causal", "noise"], "t1", 16),
    M.IMPROVING_THINKING_UNDERSTANDING: (["causal", "full", "full", "full", "full", "causal"], "t2", 0),
    M.IMPROVING_THINKING_GENERATION: (["causal", "causal", "full", "full", "causal"], "t2", 0),
    M.IMPROVING_FULL: (["causal", "causal", "full", "full", "causal", "noise"], "t2", 16),
}


@pytest.mark.parametrize("mode", M.MODES)
def test_each_mode_has_the_right_blocks_and_loss_masks(enc, example, mode):
    conv = mode_conversations(example)[mode]
    sample, seq = _pack(enc, conv, mode=mode)
    modes, target, n_mse = EXPECTED[mode]
    assert seq.attn_modes == modes
    target_ids = enc.encode_text(example.think_1 if target == "t1" else example.think_2) + [
        enc.special.im_end
    ]
    # CE: exactly the target text's next tokens (its tokens and <|im_end|>), nothing from prompt or conditions
    assert seq.ce_labels.tolist() == target_ids
    assert (seq.mse_indexes.numel() if seq.mse_indexes is not None else 0) == n_mse
    # image blocks: 16 latent/ViT tokens (4x4 grid, 32 px / patch 8) between two markers
    assert all(n == 18 for n, m in zip(seq.split_lens, seq.attn_modes, strict=True) if m != "causal")
    # a noised block's tokens are the velocity targets' inputs: x_t = (1 - t) x0 + t eps with target eps - x0
    if n_mse:
        x0, _ = enc.vae_tokens(conv[1].content[-1].pil())
        seg = [s for s in sample.segments if s.noised][0]
        eps = seg.target + x0
        assert torch.allclose(seg.tokens, (1 - seg.t) * x0 + seg.t * eps, atol=1e-5)


def test_generated_image_reused_as_condition_hand_checked(enc):
    """prompt | think_1 | image_1 (loss + vae + vit) | think_2 (loss) | image_2 (loss): masks and positions."""
    img = np.zeros((32, 32, 3), np.uint8)
    conv = [
        Turn("user", "a red circle"),
        Turn(
            "assistant",
            [
                text_part("plan", need_loss=False),
                image_part(img, need_loss=True, need_vae=True, need_vit=True),
                text_part("lacks"),
                image_part(img, need_loss=True),
            ],
        ),
    ]
    _, seq = _pack(enc, conv)
    assert seq.attn_modes == ["causal", "causal", "noise", "full", "full", "causal", "noise"]
    starts = np.cumsum([0, *seq.split_lens])
    user, plan, noise1, clean1, vit1, lacks, noise2 = (range(starts[i], starts[i + 1]) for i in range(7))
    mask = build_attention_mask(seq.split_lens, seq.attn_modes, seq.sample_lens)
    # the noised image_1 sees the prefix and itself (both directions inside the block)
    assert mask[noise1[0], plan[-1]] and mask[noise1[0], noise1[-1]]
    # nothing after a noised block sees it: not its clean copy, not the reflection, not image_2
    for later in (clean1, vit1, lacks, noise2):
        assert not mask[later[0]][list(noise1)].any()
    # the clean copy and the ViT block are bidirectional inside and visible to what follows
    assert mask[clean1[0], clean1[-1]] and mask[lacks[0], clean1[3]] and mask[lacks[0], vit1[3]]
    assert mask[noise2[0], clean1[3]] and mask[noise2[0], lacks[-1]]
    # text is causal
    assert mask[lacks[2], lacks[1]] and not mask[lacks[1], lacks[2]]
    # RoPE: the clean copy shares the noised image's position; the ViT block comes one later
    pos = seq.position_ids
    assert pos[noise1[0]] == pos[noise1[-1]] == pos[clean1[0]] == pos[clean1[-1]] == plan[-1] + 1
    assert pos[vit1[0]] == pos[clean1[0]] + 1 and pos[lacks[0]] == pos[vit1[0]] + 1
    # losses: CE on "lacks" only, MSE on both noised blocks
    assert set(seq.ce_indexes.tolist()) == set(list(lacks)[:-1])
    assert seq.mse_indexes.tolist() == [*list(noise1)[1:-1], *list(noise2)[1:-1]]


def test_condition_dropout_per_kind(enc, example):
    conv = mode_conversations(example)[M.IMPROVING_FULL]
    all_drop = PackingOptions(
        vae_cond_dropout=1.0, vit_cond_dropout=1.0, text_cond_dropout=1.0, prompt_dropout=1.0
    )
    _, seq = _pack(enc, conv, all_drop)
    # only targets remain: think_2 (loss) and the noised image_2
    assert seq.attn_modes == ["causal", "noise"]
    vae_only = PackingOptions(vae_cond_dropout=1.0)
    _, seq = _pack(enc, conv, vae_only)
    assert seq.attn_modes == ["causal", "causal", "full", "causal", "noise"]  # ViT of image_1 kept


def test_paper_dropout_defaults():
    opts = PackingOptions()
    assert (opts.text_cond_dropout, opts.vit_cond_dropout, opts.vae_cond_dropout) == (0.0, 0.0, 0.3)


def test_encoding_depends_only_on_sample_uid(enc, example):
    conv = mode_conversations(example)[M.IMPROVING_FULL]
    opts = PackingOptions(vae_cond_dropout=0.5, timestep_shift=3.0, seed=7)
    a, _ = _pack(enc, conv, opts, uid=11)
    _pack(enc, conv, opts, uid=12)
    b, _ = _pack(enc, conv, opts, uid=11)
    assert [s.kind for s in a.segments] == [s.kind for s in b.segments]
    assert all(
        torch.equal(x.tokens, y.tokens)
        for x, y in zip(a.segments, b.segments, strict=True)
        if x.kind != "text"
    )


def test_token_budget_packing(tmp_path, enc):
    from irg_rl.data.format import write_mode_shard

    convs = [
        [Turn("user", "a red circle"), Turn("assistant", [text_part("plan " * (i + 1))])] for i in range(6)
    ]
    write_mode_shard(tmp_path, M.INITIAL_THINKING_GENERATION, convs)
    sampler = MixedSampler(tmp_path, {M.INITIAL_THINKING_GENERATION: 1.0}, shuffle_files=False)
    lens = [encode_conversation(c, "m", 0, enc, NO_DROP).num_tokens for c in convs]
    opts = PackingOptions(
        expected_tokens_per_step=lens[0] + 1,
        max_tokens_per_step=lens[0] + lens[1],
        max_tokens_per_sample=lens[4],
    )
    b1 = build_micro_batch(sampler, enc, opts, CFG.max_latent_size, CFG.vit_max_num_patch_per_side)
    assert b1.seq.sample_lens == lens[:2]  # the second sample fits under max_tokens_per_step
    b2 = build_micro_batch(sampler, enc, opts, CFG.max_latent_size, CFG.vit_max_num_patch_per_side)
    assert b2.seq.sample_lens == [
        lens[2]
    ]  # the fourth would cross max_tokens_per_step: held for the next batch
    b3 = build_micro_batch(sampler, enc, opts, CFG.max_latent_size, CFG.vit_max_num_patch_per_side)
    assert b3.seq.sample_lens[0] == lens[3]
    b4 = build_micro_batch(sampler, enc, opts, CFG.max_latent_size, CFG.vit_max_num_patch_per_side)
    assert b4.seq.sample_lens == [lens[4]]
    # the last sample is longer than max_tokens_per_sample: dropped and counted; the stream wraps to row 0
    b5 = build_micro_batch(sampler, enc, opts, CFG.max_latent_size, CFG.vit_max_num_patch_per_side)
    assert b5.dropped == 1 and b5.seq.sample_lens[0] == lens[0]


def test_round_text_dropout_trains_the_text_cfg_branches(enc, example):
    opts = PackingOptions(vae_cond_dropout=0.0, think_cfg_dropout=1.0)
    # round 1 (text-CFG = system only): prompt and think_1 are dropped, the generated image stays
    _, seq = _pack(enc, mode_conversations(example)[M.INITIAL_FULL], opts, mode=M.INITIAL_FULL)
    assert seq.attn_modes == ["noise"] and seq.ce_indexes is None
    # round 2 (text-CFG = everything except think_2): only think_2 is dropped
    _, seq = _pack(enc, mode_conversations(example)[M.IMPROVING_FULL], opts)
    assert seq.attn_modes == ["causal", "causal", "full", "full", "noise"] and seq.ce_indexes is None


def test_image_cond_dropout_removes_both_condition_blocks_but_keeps_the_target(enc):
    img = np.zeros((32, 32, 3), np.uint8)
    conv = [
        Turn("user", "a red circle"),
        Turn("assistant", [image_part(img, need_loss=True, need_vae=True, need_vit=True), text_part("ok")]),
    ]
    _, seq = _pack(enc, conv, PackingOptions(vae_cond_dropout=0.0, image_cond_dropout=1.0))
    assert seq.attn_modes == ["causal", "noise", "causal"]


@pytest.mark.parametrize(
    "drop",
    [{"image_cond_dropout": 1.0}, {"vae_cond_dropout": 1.0}, {"vit_cond_dropout": 1.0}],
    ids=["whole_image", "vae_block", "vit_block"],
)
def test_text_after_a_dropped_image_condition_can_train_no_loss(enc, example, drop):
    """think_1 | image_1 (vae + vit condition) | think_2 (loss) | image_2 (loss): with image_1 (or one of its
    blocks) dropped, think_2 stays as context for image_2 but its CE is masked when the option is on."""
    conv = mode_conversations(example)[M.IMPROVING_FULL]
    base = {"vae_cond_dropout": 0.0, **drop}
    _, seq_on = _pack(enc, conv, PackingOptions(**base, mask_text_after_dropped_image=True))
    _, seq_off = _pack(enc, conv, PackingOptions(**base))
    think_2 = enc.encode_text(example.think_2) + [enc.special.im_end]
    assert seq_off.ce_labels.tolist() == think_2  # the default trains the reflection without image_1
    assert seq_on.ce_indexes is None  # masked: no CE anywhere
    # same tokens, same image loss: only the text's CE differs
    assert seq_on.split_lens == seq_off.split_lens and seq_on.attn_modes == seq_off.attn_modes
    assert torch.equal(seq_on.mse_indexes, seq_off.mse_indexes)
    # nothing dropped: the option changes nothing
    _, seq_kept = _pack(enc, conv, PackingOptions(vae_cond_dropout=0.0, mask_text_after_dropped_image=True))
    assert seq_kept.ce_labels.tolist() == think_2


def test_text_before_a_dropped_image_keeps_its_loss(enc):
    img = np.zeros((32, 32, 3), np.uint8)
    conv = [
        Turn("user", "a red circle"),
        Turn(
            "assistant",
            [
                text_part("plan"),
                image_part(img, need_loss=False, need_vae=True, need_vit=True),
                text_part("lacks"),
            ],
        ),
    ]
    opts = PackingOptions(vae_cond_dropout=0.0, image_cond_dropout=1.0, mask_text_after_dropped_image=True)
    _, seq = _pack(enc, conv, opts)
    assert seq.attn_modes == ["causal", "causal", "causal"]
    assert seq.ce_labels.tolist() == enc.encode_text("plan") + [enc.special.im_end]


def test_packing_options_come_from_the_data_section():
    import dataclasses

    from irg_rl.train.sft.config import DataSection, PackingSection

    values = {
        f.name: (7 if f.type == "int" else 0.25 if f.type == "float" else "sys")
        for f in dataclasses.fields(PackingSection)
    }
    opts = PackingOptions.from_data(DataSection(root="r", **values), timestep_shift=2.5, seed=3)
    assert all(getattr(opts, k) == v for k, v in values.items()) and (opts.timestep_shift, opts.seed) == (
        2.5,
        3,
    )


@pytest.mark.parametrize("key", ["image_cond_dropout", "vae_cond_dropout", "think_cfg_dropout"])
def test_a_dropout_outside_0_1_is_refused_naming_its_key(key):
    from irg_rl.config import load_config
    from irg_rl.train.sft.config import SFTRecipe

    with pytest.raises(ValueError, match=f"data.{key} must be in"):
        load_config(SFTRecipe, "recipes/shapes/sft_stage1.yaml", [f"data.{key}=1.5"])


def test_a_later_user_turn_with_loss_is_masked_after_a_dropped_image(enc):
    img = np.zeros((32, 32, 3), np.uint8)
    conv = [
        Turn("user", "a red circle"),
        Turn("assistant", [image_part(img, need_loss=False, need_vae=True, need_vit=True)]),
        Turn("user", "lacks", need_loss=True),
    ]
    drop = {"vae_cond_dropout": 0.0, "image_cond_dropout": 1.0}
    _, masked = _pack(enc, conv, PackingOptions(**drop, mask_text_after_dropped_image=True))
    _, trained = _pack(enc, conv, PackingOptions(**drop))
    assert masked.ce_indexes is None
    assert trained.ce_labels.tolist() == enc.encode_text("lacks") + [enc.special.im_end]
