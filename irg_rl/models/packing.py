"""Packed sequences: many samples laid end to end in one 1-D token sequence, and their attention rules.

A sample is a list of *splits*, each with an attention mode:
- `causal`: text; each token sees everything before it in its sample;
- `full`: a ViT image or a clean VAE image (with its <|vision_start|>/<|vision_end|> markers); bidirectional
  inside the block, causal towards the past;
- `noise`: a noised VAE image (a flow-matching target); like `full`, but no token outside the block may attend
  to it (so later text and images never see noised latents).
Samples never see each other. RoPE: text advances one position per token; every token of an image (markers
included) shares one position; a clean image or ViT image advances the position by one afterwards, a noised
image does not (so its clean copy, if one follows, shares the position).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import torch

from .embeddings import flattened_position_ids

ATTN_MODES = ("causal", "full", "noise")


@dataclass
class SpecialTokenIds:
    """Ids of BAGEL's four special tokens (and padding) in a given tokenizer."""

    # <|im_start|>: opens every text piece (BAGEL's bos)
    im_start: int
    # <|im_end|>: closes every text piece (BAGEL's eos; ends generation)
    im_end: int
    # <|vision_start|>: first token of every image block
    vision_start: int
    # <|vision_end|>: last token of every image block
    vision_end: int
    # padding id (only fills unused slots; never attended)
    pad: int = 0


@dataclass
class PackedSequence:
    """One packed batch. L = total tokens. Index tensors hold positions in [0, L)."""

    # tokens per sample (sum = L)
    sample_lens: list[int]
    # tokens per split, in order (sum = L)
    split_lens: list[int]
    # attention mode per split: causal | full | noise
    attn_modes: list[str]
    # RoPE position id per token [L]
    position_ids: torch.Tensor
    # text token ids [Nt] (image markers included)
    text_ids: torch.Tensor
    # sequence positions of text tokens [Nt]
    text_indexes: torch.Tensor
    # ViT patches [Nv, 3*p*p] (normalised pixels), or None
    vit_patches: torch.Tensor | None = None
    # sequence positions of ViT tokens [Nv]
    vit_indexes: torch.Tensor | None = None
    # flattened 2-D ViT position ids [Nv]
    vit_pos_ids: torch.Tensor | None = None
    # ViT tokens per image (each image attends only to itself inside SigLIP)
    vit_seqlens: list[int] = field(default_factory=list)
    # VAE latent tokens fed to the model [Na, P]: x_t for noised blocks, x_0 for clean ones; or None
    vae_tokens: torch.Tensor | None = None
    # sequence positions of VAE tokens [Na]
    vae_indexes: torch.Tensor | None = None
    # flattened 2-D latent position ids [Na]
    vae_pos_ids: torch.Tensor | None = None
    # flow time per VAE token [Na] in [0, 1]; 0 = clean
    vae_timesteps: torch.Tensor | None = None
    # sequence positions whose next token is predicted (CE) [Nc]
    ce_indexes: torch.Tensor | None = None
    # target token id per CE position [Nc]
    ce_labels: torch.Tensor | None = None
    # sequence positions whose velocity is predicted (tokens of noised blocks) [Nm]
    mse_indexes: torch.Tensor | None = None
    # velocity targets (eps - x_0) per MSE position [Nm, P], when known
    mse_targets: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return sum(self.sample_lens)

    def to(self, device: torch.device | str) -> PackedSequence:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.to(device) if isinstance(v, torch.Tensor) else v
        return PackedSequence(**out)

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent field."""
        L = self.length
        if sum(self.split_lens) != L:
            raise ValueError(f"PackedSequence: split_lens sum {sum(self.split_lens)} != sample_lens sum {L}")
        if len(self.split_lens) != len(self.attn_modes):
            raise ValueError("PackedSequence: split_lens and attn_modes differ in length")
        bad = [m for m in self.attn_modes if m not in ATTN_MODES]
        if bad:
            raise ValueError(f"PackedSequence: unknown attn_modes {bad}; use {ATTN_MODES}")
        if self.position_ids.shape != (L,):
            raise ValueError(f"PackedSequence: position_ids shape {tuple(self.position_ids.shape)} != ({L},)")
        covered = self.text_indexes.numel()
        covered += 0 if self.vit_indexes is None else self.vit_indexes.numel()
        covered += 0 if self.vae_indexes is None else self.vae_indexes.numel()
        if covered != L:
            raise ValueError(f"PackedSequence: text+vit+vae indexes cover {covered} positions, expected {L}")
        if self.ce_indexes is not None and self.ce_labels.shape != self.ce_indexes.shape:
            raise ValueError("PackedSequence: ce_labels and ce_indexes differ in shape")


def build_attention_mask(split_lens: Sequence[int], attn_modes: Sequence[str], sample_lens: Sequence[int]):
    """Boolean mask [L, L], True where query row may attend key column (rules in the module docstring)."""
    dev = torch.device("cpu")
    split_id = torch.repeat_interleave(
        torch.arange(len(split_lens)), torch.tensor(list(split_lens), dtype=torch.long)
    )
    mode = torch.tensor([ATTN_MODES.index(m) for m in attn_modes], dtype=torch.long)[split_id]
    sample_id = torch.repeat_interleave(
        torch.arange(len(sample_lens)), torch.tensor(list(sample_lens), dtype=torch.long)
    )
    L = split_id.numel()
    pos = torch.arange(L, device=dev)
    causal = pos[:, None] >= pos[None, :]
    same_split = split_id[:, None] == split_id[None, :]
    block = same_split & (mode[:, None] > 0)
    hidden_noise = (mode[None, :] == 2) & ~same_split
    return (causal | block) & ~hidden_noise & (sample_id[:, None] == sample_id[None, :])


def sample_masks(seq: PackedSequence) -> list[torch.Tensor]:
    """Per-sample masks [Ls, Ls] (the diagonal blocks of `build_attention_mask`), without building the L x L."""
    out, s = [], 0
    for n in seq.sample_lens:
        lens, modes, acc = [], [], 0
        while acc < n:
            lens.append(seq.split_lens[s])
            modes.append(seq.attn_modes[s])
            acc += seq.split_lens[s]
            s += 1
        if acc != n:
            raise ValueError("PackedSequence: a split crosses a sample boundary")
        out.append(build_attention_mask(lens, modes, [n]))
    return out


class PackedSequenceBuilder:
    """Append text and images sample by sample, then `build()` a PackedSequence.

    Text pieces are given as full token lists (callers add <|im_start|>/<|im_end|>); image blocks get their
    <|vision_start|>/<|vision_end|> markers here. Latent tokens are already patchified rows [n, P].
    """

    def __init__(
        self,
        special: SpecialTokenIds,
        max_latent_size: int,
        vit_max_num_patch_per_side: int = 70,
        interpolate_pos: bool = False,
    ):
        self.special = special
        self.max_latent_size = max_latent_size
        self.vit_max = vit_max_num_patch_per_side
        # BagelConfig.interpolate_pos: must match the cached API's position ids (bagel.py) for the same model
        self.interpolate_pos = interpolate_pos
        self._L = 0
        self._rope = 0
        self._sample_start = 0
        self.sample_lens: list[int] = []
        self.split_lens: list[int] = []
        self.attn_modes: list[str] = []
        self.pos: list[int] = []
        self.text_ids: list[int] = []
        self.text_idx: list[int] = []
        self.vit_patches: list[torch.Tensor] = []
        self.vit_idx: list[int] = []
        self.vit_pos: list[torch.Tensor] = []
        self.vit_seqlens: list[int] = []
        self.vae_tokens: list[torch.Tensor] = []
        self.vae_idx: list[int] = []
        self.vae_pos: list[torch.Tensor] = []
        self.vae_t: list[float] = []
        self.ce_idx: list[int] = []
        self.ce_labels: list[int] = []
        self.mse_idx: list[int] = []
        self.mse_targets: list[torch.Tensor] = []
        self._has_targets: bool | None = None

    def add_text(self, ids: Sequence[int], loss: bool = False, last_label: int | None = None) -> None:
        """A causal text split. With loss, token i is trained to predict ids[i+1] (and the last one last_label)."""
        ids = [int(i) for i in ids]
        if not ids:
            raise ValueError("add_text: empty token list")
        start = self._L
        self.text_ids += ids
        self.text_idx += range(start, start + len(ids))
        self.pos += range(self._rope, self._rope + len(ids))
        if loss:
            self.ce_idx += range(start, start + len(ids) - 1)
            self.ce_labels += ids[1:]
        if last_label is not None:
            self.ce_idx.append(start + len(ids) - 1)
            self.ce_labels.append(int(last_label))
        self._rope += len(ids)
        self._close_split(len(ids), "causal")

    def _open_image(self) -> int:
        self.text_ids.append(self.special.vision_start)
        self.text_idx.append(self._L)
        return self._L + 1

    def _close_image(self, n: int, mode: str, advance: bool) -> None:
        end = self._L + 1 + n
        self.text_ids.append(self.special.vision_end)
        self.text_idx.append(end)
        self.pos += [self._rope] * (n + 2)
        if advance:
            self._rope += 1
        self._close_split(n + 2, mode)

    def add_vit_image(self, patches: torch.Tensor, grid_hw: tuple[int, int]) -> None:
        """A ViT image: patches [h*w, 3*p*p] (see `patchify`) of an h x w patch grid."""
        h, w = grid_hw
        if patches.shape[0] != h * w:
            raise ValueError(f"add_vit_image: {patches.shape[0]} patches for a {h}x{w} grid")
        first = self._open_image()
        self.vit_patches.append(patches)
        self.vit_idx += range(first, first + h * w)
        self.vit_pos.append(flattened_position_ids(h, w, self.vit_max, self.interpolate_pos))
        self.vit_seqlens.append(h * w)
        self._close_image(h * w, "full", advance=True)

    def add_vae_image(
        self,
        tokens: torch.Tensor,
        grid_hw: tuple[int, int],
        t: float = 0.0,
        noised: bool = False,
        target: torch.Tensor | None = None,
    ) -> None:
        """A VAE image: tokens [h*w, P] at flow time t. noised=True makes a `noise` block whose velocity is
        predicted (MSE positions; `target` [h*w, P] optional) and leaves the RoPE position unadvanced."""
        h, w = grid_hw
        n = h * w
        if tokens.shape[0] != n:
            raise ValueError(f"add_vae_image: {tokens.shape[0]} tokens for a {h}x{w} grid")
        if not noised and t != 0.0:
            raise ValueError("add_vae_image: a clean (condition) image must have t = 0; pass noised=True")
        first = self._open_image()
        self.vae_tokens.append(tokens)
        self.vae_idx += range(first, first + n)
        self.vae_pos.append(flattened_position_ids(h, w, self.max_latent_size, self.interpolate_pos))
        self.vae_t += [float(t)] * n
        if noised:
            self.mse_idx += range(first, first + n)
            has = target is not None
            if self._has_targets is not None and self._has_targets != has:
                raise ValueError("add_vae_image: give a target for every noised image or for none")
            self._has_targets = has
            if has:
                self.mse_targets.append(target)
        self._close_image(n, "noise" if noised else "full", advance=not noised)

    def skip_position(self) -> None:
        """Advance RoPE by one without tokens (BAGEL does this when a condition image is dropped for CFG)."""
        self._rope += 1

    def _close_split(self, n: int, mode: str) -> None:
        self.split_lens.append(n)
        self.attn_modes.append(mode)
        self._L += n

    def end_sample(self) -> None:
        n = self._L - self._sample_start
        if n == 0:
            raise ValueError("end_sample: the sample is empty")
        self.sample_lens.append(n)
        self._sample_start = self._L
        self._rope = 0

    def build(self) -> PackedSequence:
        if self._L != self._sample_start:
            self.end_sample()
        long = lambda xs: torch.tensor(xs, dtype=torch.long)  # noqa: E731
        seq = PackedSequence(
            sample_lens=list(self.sample_lens),
            split_lens=list(self.split_lens),
            attn_modes=list(self.attn_modes),
            position_ids=long(self.pos),
            text_ids=long(self.text_ids),
            text_indexes=long(self.text_idx),
        )
        if self.vit_patches:
            seq.vit_patches = torch.cat(self.vit_patches)
            seq.vit_indexes = long(self.vit_idx)
            seq.vit_pos_ids = torch.cat(self.vit_pos)
            seq.vit_seqlens = list(self.vit_seqlens)
        if self.vae_tokens:
            seq.vae_tokens = torch.cat(self.vae_tokens)
            seq.vae_indexes = long(self.vae_idx)
            seq.vae_pos_ids = torch.cat(self.vae_pos)
            seq.vae_timesteps = torch.tensor(self.vae_t, dtype=torch.float32)
        if self.ce_idx:
            seq.ce_indexes, seq.ce_labels = long(self.ce_idx), long(self.ce_labels)
        if self.mse_idx:
            seq.mse_indexes = long(self.mse_idx)
            if self.mse_targets:
                seq.mse_targets = torch.cat(self.mse_targets)
        seq.validate()
        return seq
