"""IRGL conversations -> sample segments -> token-budget packed micro-batches (`PackedSequence`).

One conversation becomes one sample: `[system]`, the user prompt, then the assistant parts in order. Each text
piece is `<|im_start|> text <|im_end|>` (a causal split, CE on its next tokens when `need_loss`). An image part
becomes, in this order: a noised VAE block with a velocity target (`need_loss`), a clean VAE block at t = 0
(`need_vae`), a ViT block (`need_vit`). The noised block does not advance the RoPE position, so a generated image
that is later a condition shares its position with its clean copy; nothing after a noised block can see it.

Condition dropout (per sample, per condition): text parts without loss (`text_cond_dropout`), ViT blocks
(`vit_cond_dropout`), clean VAE blocks (`vae_cond_dropout`), the user prompt (`prompt_dropout`), both blocks of
a condition image at once (`image_cond_dropout`), the texts of a generated image's round (`think_cfg_dropout`). A dropped block
is simply absent, as the image-free CFG branch is at inference. With `mask_text_after_dropped_image`, text after
a dropped image condition (assistant parts and later user turns) keeps its tokens (context for the images that
follow) but trains no CE: inference always reads a condition image whole, and a reflection trained without its
image learns to guess. Noise, timesteps and dropout are drawn from a
generator seeded by (seed, sample uid), so a sample is encoded identically whatever micro-batch it lands in.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from irg_rl.data.format import Conversation, DataFormatError, to_rgb
from irg_rl.models.packing import PackedSequence, PackedSequenceBuilder, SpecialTokenIds
from irg_rl.train.sft.config import PackingSection
from irg_rl.train.sft.losses import noise_latents, sample_timesteps
from irg_rl.train.sft.sampler import MixedSampler, RawSample


class SampleEncoder(Protocol):
    """What packing needs from the model side: a tokenizer, the VAE and the ViT patchifier."""

    # special token ids of the tokenizer
    special: SpecialTokenIds

    def encode_text(self, text: str) -> list[int]:
        """Token ids of `text` (no special tokens added)."""

    def vae_tokens(self, image: Image.Image) -> tuple[torch.Tensor, tuple[int, int]]:
        """Clean latent tokens `[h*w, P]` of an RGB image and the latent grid `(h, w)`."""

    def vit_patches(self, image: Image.Image) -> tuple[torch.Tensor, tuple[int, int]]:
        """ViT patches `[h*w, 3*p*p]` of an RGB image and the patch grid `(h, w)`."""


@dataclass
class PackingOptions(PackingSection):
    """The data section's packing settings (PackingSection, their one home) plus the flow-matching shift and the
    seed of noise and dropout."""

    # training timestep shift
    timestep_shift: float = 4.0
    # seed of noise and dropout
    seed: int = 0

    @classmethod
    def from_data(cls, data: PackingSection, timestep_shift: float, seed: int) -> PackingOptions:
        """The packing fields of a `data:` section (a DataSection) with the loss's shift and the run's seed."""
        own = {f.name: getattr(data, f.name) for f in dataclasses.fields(PackingSection)}
        return cls(**own, timestep_shift=timestep_shift, seed=seed)


@dataclass
class Segment:
    """One split of a sample, ready for `PackedSequenceBuilder`."""

    # text | vae | vit
    kind: str
    # text: token ids (with im_start/im_end); vae/vit: None
    ids: list[int] | None = None
    # text: CE on next tokens
    loss: bool = False
    # vae: tokens fed in [n, P] (x_t if noised); vit: patches [n, 3*p*p]
    tokens: torch.Tensor | None = None
    # image grid (h, w)
    grid_hw: tuple[int, int] = (0, 0)
    # vae: flow time (0 for clean)
    t: float = 0.0
    # vae: noised block with a velocity target
    noised: bool = False
    # vae noised: velocity target eps - x0 [n, P]
    target: torch.Tensor | None = None

    @property
    def num_tokens(self) -> int:
        return len(self.ids) if self.kind == "text" else self.tokens.shape[0] + 2


@dataclass
class EncodedSample:
    """A conversation turned into segments, with its bookkeeping."""

    # learning mode
    mode: str
    # sample uid (seeds its noise)
    uid: int
    # the splits in order
    segments: list[Segment] = field(default_factory=list)

    @property
    def num_tokens(self) -> int:
        return sum(s.num_tokens for s in self.segments)

    @property
    def num_ce(self) -> int:
        return sum(len(s.ids) - 1 for s in self.segments if s.kind == "text" and s.loss)

    @property
    def num_mse(self) -> int:
        return sum(s.tokens.shape[0] for s in self.segments if s.kind == "vae" and s.noised)


class ImagePartError(ValueError):
    """An image part cannot be decoded; `field_path` names the part (e.g. conversation[1].content[2])."""

    def __init__(self, field_path: str, problem: str):
        self.field_path, self.problem = field_path, problem
        super().__init__(f"field '{field_path}': {problem}")


def _decode(part_bytes: bytes, field_path: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(part_bytes))
        image.load()
        return to_rgb(image)
    except Exception as exc:  # PIL raises many types for corrupt data
        raise ImagePartError(field_path, f"cannot decode image ({type(exc).__name__}: {exc})") from None


def encode_conversation(
    conv: Conversation, mode: str, uid: int, enc: SampleEncoder, opts: PackingOptions, where: str = "<sample>"
) -> EncodedSample:
    """Turn one conversation into segments (noise, timesteps and dropout drawn from (opts.seed, uid))."""
    gen = torch.Generator().manual_seed(int(opts.seed) * 1_000_003 + int(uid))
    coin = np.random.default_rng([int(opts.seed), int(uid)])
    sp = enc.special
    out = EncodedSample(mode, uid)

    def text(s: str, loss: bool) -> Segment:
        return Segment("text", ids=[sp.im_start, *enc.encode_text(s), sp.im_end], loss=loss)

    dropped = _round_text_dropout(conv, opts.think_cfg_dropout, coin)
    # set once an image condition is dropped: later text then trains no loss (opts.mask_text_after_dropped_image)
    blind = False

    def trains(need_loss: bool) -> bool:
        return need_loss and not (blind and opts.mask_text_after_dropped_image)

    if opts.system_prompt:
        out.segments.append(text(opts.system_prompt, False))
    for ti, turn in enumerate(conv):
        if turn.role == "user":
            if turn.need_loss or (coin.random() >= opts.prompt_dropout and (ti, -1) not in dropped):
                out.segments.append(text(turn.content, trains(turn.need_loss)))
            continue
        for pi, part in enumerate(turn.content):
            here = f"conversation[{ti}].content[{pi}]"
            if (ti, pi) in dropped:
                continue
            if part.type == "text":
                if part.need_loss or coin.random() >= opts.text_cond_dropout:
                    out.segments.append(text(part.content, trains(part.need_loss)))
                continue
            if not (part.need_loss or part.need_vae or part.need_vit):
                continue  # an image nobody uses (all flags false) costs nothing
            image = _decode(part.content, here)
            keep_cond = coin.random() >= opts.image_cond_dropout
            shown = 0  # condition blocks of this image kept
            if part.need_loss or (part.need_vae and keep_cond):
                x0, grid = enc.vae_tokens(image)
                x0 = x0.float()
                if part.need_loss:
                    t = sample_timesteps(1, opts.timestep_shift, gen)
                    eps = torch.randn(x0.shape, generator=gen)
                    x_t, target = noise_latents(x0, t.expand(x0.shape[0]), eps)
                    out.segments.append(
                        Segment("vae", tokens=x_t, grid_hw=grid, t=float(t), noised=True, target=target)
                    )
                if part.need_vae and keep_cond and coin.random() >= opts.vae_cond_dropout:
                    out.segments.append(Segment("vae", tokens=x0, grid_hw=grid))
                    shown += 1
            if part.need_vit and keep_cond and coin.random() >= opts.vit_cond_dropout:
                patches, grid = enc.vit_patches(image)
                out.segments.append(Segment("vit", tokens=patches, grid_hw=grid))
                shown += 1
            blind = blind or shown < int(part.need_vae) + int(part.need_vit)
    if not out.segments:
        raise ValueError(f"{where}: the conversation produced no tokens")
    return out


def _round_text_dropout(conv: Conversation, p: float, coin: np.random.Generator) -> set[tuple[int, int]]:
    """(turn, part) indices to drop, part -1 = the user prompt: for each generated image chosen with prob `p`,
    the text parts since the previous image (and, before the first image, the user prompt). This trains what
    the engine's text-CFG branch sees: round 1 = system only; round k = everything except think_k."""
    if p <= 0:
        return set()
    drop: set[tuple[int, int]] = set()
    since: list[tuple[int, int]] = []
    seen_image = False
    for ti, turn in enumerate(conv):
        if turn.role == "user":
            since.append((ti, -1))
            continue
        for pi, part in enumerate(turn.content):
            if part.type == "text":
                since.append((ti, pi))
                continue
            if part.need_loss and coin.random() < p:
                drop.update(since if not seen_image else [x for x in since if x[1] != -1])
            since, seen_image = [], True
    return drop


def append_sample(builder: PackedSequenceBuilder, sample: EncodedSample) -> None:
    """Add one encoded sample to a builder (closing it as its own attention island)."""
    for s in sample.segments:
        if s.kind == "text":
            builder.add_text(s.ids, loss=s.loss)
        elif s.kind == "vit":
            builder.add_vit_image(s.tokens, s.grid_hw)
        else:
            builder.add_vae_image(s.tokens, s.grid_hw, t=s.t, noised=s.noised, target=s.target)
    builder.end_sample()


@dataclass
class MicroBatch:
    """A packed micro-batch with the per-sample bookkeeping needed for per-mode losses."""

    # the packed sequence
    seq: PackedSequence
    # learning mode of each sample, in order
    modes: list[str]
    # CE positions of each sample (they are contiguous in seq.ce_indexes, in sample order)
    ce_counts: list[int]
    # MSE token positions of each sample (contiguous in seq.mse_indexes)
    mse_counts: list[int]
    # samples dropped for exceeding max_tokens_per_sample while building this batch
    dropped: int = 0

    @property
    def num_tokens(self) -> int:
        return self.seq.length

    @property
    def num_ce(self) -> int:
        return sum(self.ce_counts)

    @property
    def num_mse(self) -> int:
        return sum(self.mse_counts)


def build_micro_batch(
    sampler: MixedSampler,
    enc: SampleEncoder,
    opts: PackingOptions,
    max_latent_size: int,
    vit_max: int,
    interpolate_pos: bool = False,
) -> MicroBatch:
    """Draw samples until the token budget (or the fixed sample count) is met and pack them.

        Mandatory modes (and a sample held back from the previous micro-batch) open the batch. A sample that would
        push the batch past `max_tokens` is held back for the next one; samples longer than `max_tokens_per_sample`
        are dropped and counted. An image part that cannot be decoded raises naming the file, row and part, or, when the
    sampler skips bad rows (`data.on_error: skip`), is skipped and counted in its stats.
    """
    builder = PackedSequenceBuilder(enc.special, max_latent_size, vit_max, interpolate_pos)
    chosen: list[EncodedSample] = []
    total, dropped = 0, 0
    queue: list[RawSample] = sampler.micro_batch_start()

    def encode(raw: RawSample) -> EncodedSample | None:
        """The encoded sample; None when its image is corrupt and the sampler skips bad rows (counted)."""
        where = f"{raw.file}: row {raw.row}"
        try:
            return encode_conversation(raw.conversation, raw.mode, raw.uid, enc, opts, where)
        except ImagePartError as exc:
            err = DataFormatError(raw.file, raw.row, exc.field_path, exc.problem)
            if getattr(sampler, "on_error", "raise") != "skip":
                raise err from None
            sampler.stats.skipped += 1
            if len(sampler.stats.errors) < 20:
                sampler.stats.errors.append(str(err))
            return None
        except ValueError as exc:
            raise DataFormatError(raw.file, raw.row, "conversation", str(exc)) from None

    fixed = opts.samples_per_micro_batch
    while True:
        if fixed > 0 and len(chosen) >= fixed:
            break
        if fixed <= 0 and total >= opts.expected_tokens_per_step:
            break
        raw = queue.pop(0) if queue else sampler.next_sample()
        sample = encode(raw)
        if sample is None:
            continue
        n = sample.num_tokens
        if n > opts.max_tokens_per_sample:
            dropped += 1
            if dropped > 1000:
                raise ValueError(
                    f"1000 samples in a row exceed data.max_tokens_per_sample={opts.max_tokens_per_sample} "
                    f"(last: {n} tokens, {raw.file} row {raw.row}); raise it"
                )
            continue
        if fixed <= 0 and chosen and total + n > opts.max_tokens_per_step:
            sampler.hold(raw)
            break
        chosen.append(sample)
        total += n
    for raw in queue:  # opened-with samples that did not fit a fixed-size batch wait for the next one
        sampler.hold(raw)
    for s in chosen:
        append_sample(builder, s)
    return MicroBatch(
        seq=builder.build(),
        modes=[s.mode for s in chosen],
        ce_counts=[s.num_ce for s in chosen],
        mse_counts=[s.num_mse for s in chosen],
        dropped=dropped,
    )
