"""The typed SFT recipe (`SFTRecipe`): model, data mixture and packing, losses, optimiser, freezing, training, logging.

Defaults are the IRG paper's stage-1 settings for BAGEL-7B-MoT; the ShapesWorld recipes
override sizes and step counts. `validate()` runs after loading and names the key to change on any conflict.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from irg_rl.config import MISSING
from irg_rl.data.modes import MODES, STAGE1_WEIGHTS
from irg_rl.models.configs import ModelRecipe
from irg_rl.models.kv_cache import PACKED_ATTENTION
from irg_rl.train.sections import (
    PRECISIONS,
    SCHEDULERS,
    WANDB_MODES,
    BaseTrainSection,
    FreezeSection,
    LogSection,
    OptimSection,
)

INIT_WEIGHTS = ("ema", "model")


@dataclass
class InitSection:
    """Where the starting weights come from (stage 2 starts from a stage-1 checkpoint)."""

    # checkpoint directory (BAGEL layout, or a training checkpoint) whose weights initialise the model;
    # null or "" keeps model.source's weights
    from_checkpoint: str | None = None
    # which weights of `from_checkpoint` to load: ema (ema.safetensors) or model (model.safetensors)
    weights: str = "ema"


@dataclass
class PackingSection:
    """How conversations are packed into micro-batches and which conditions are dropped (part of `data:`; the
    packer reads these fields directly, `conversation_packing.PackingOptions`)."""

    # fill each micro-batch with samples until it holds at least this many tokens
    expected_tokens_per_step: int = 40000
    # hard cap on tokens in one micro-batch; a sample that would cross it waits for the next micro-batch
    max_tokens_per_step: int = 45000
    # samples longer than this are dropped (counted in the logs)
    max_tokens_per_sample: int = 20000
    # if > 0: exactly this many samples per micro-batch instead of the token budget (fixed-batch recipes, tests)
    samples_per_micro_batch: int = 0
    # probability of dropping a text condition (a text part without loss) from a sample
    text_cond_dropout: float = 0.0
    # probability of dropping a ViT condition of an image
    vit_cond_dropout: float = 0.0
    # probability of dropping a clean-VAE condition of an image (teaches the no-image CFG branch)
    vae_cond_dropout: float = 0.3
    # probability of dropping the user prompt of a sample (text CFG branch); 0 in the paper
    prompt_dropout: float = 0.0
    # per generated image, probability of dropping the texts of its round (round 1: also the prompt): trains
    # the text-CFG branch a model from scratch needs; 0 in the paper (BAGEL's pretraining already has it)
    think_cfg_dropout: float = 0.0
    # probability of dropping a condition image entirely (clean VAE and ViT together): the image-CFG branch
    image_cond_dropout: float = 0.0
    # text parts with loss that come after a dropped image condition (the whole image, its clean-VAE block or its
    # ViT block) train no loss and stay as context: inference never reads a condition image with a block missing,
    # so text trained there learns to guess without it (the ShapesWorld reflection learned to repeat its plan)
    mask_text_after_dropped_image: bool = False
    # system prompt put before every conversation (must match what inference uses); "" = none
    system_prompt: str = ""


@dataclass
class DataSection(PackingSection):
    """Which IRGL data to read, how the six modes are mixed, and how conversations are packed (PackingSection)."""

    # dataset root holding one folder of parquet files per learning mode (official IRGL layout)
    root: str = MISSING
    # more dataset roots in the same layout, read beside root: each mode's files are root's, then these in order
    # (e.g. reflection rows on the model's own first images from scripts/make_self_reflection_data.py)
    extra_roots: list[str] = field(default_factory=list)
    # sampling weight per learning mode; modes left out (or weight 0) are not read
    mode_weights: dict[str, float] = field(default_factory=lambda: dict(STAGE1_WEIGHTS))
    # modes of which every packed micro-batch holds at least one sample (drawn first)
    mandatory_modes: list[str] = field(default_factory=list)
    # what a malformed row does: raise (stop with file/row/field) or skip (count it and go on)
    on_error: str = "raise"
    # shuffle the order of parquet files of each mode every epoch (rows stay in file order: streaming)
    shuffle_files: bool = True
    # decode-check every image while reading (slower; malformed images are caught at packing anyway)
    check_images: bool = False
    # "official": resize every image as BAGEL's data path does before the VAE (long side <= 1024, short >= 512,
    # multiple of 16) and the ViT (<= 980, >= 378, multiple of 14), PIL bicubic; "none": use images as stored
    # (each side must then be a multiple of the VAE's downsample and fit the position tables)
    image_resize: str = "none"


@dataclass
class LossSection:
    """Loss weights and the flow-matching timestep distribution."""

    # weight of the text cross-entropy (token mean over all ranks)
    ce_weight: float = 1.0
    # weight of the flow-matching MSE on noised VAE tokens
    mse_weight: float = 1.0
    # training timestep shift s in t = s*u / (1 + (s-1)*u), u = sigmoid(N(0, 1))
    timestep_shift: float = 4.0
    # stop training the text loss from this optimiser step on (-1 = never)
    disable_ce_from_step: int = -1
    # stop training the image loss from this optimiser step on (-1 = never)
    disable_mse_from_step: int = -1


@dataclass
class TrainSection(BaseTrainSection):
    """The optimisation loop, checkpoints and resume (shared settings in BaseTrainSection)."""

    # optimiser steps to run
    max_steps: int = 2000
    # save a checkpoint every this many steps (and at the end; 0 = only at the end)
    save_every: int = 500
    # log every this many steps
    log_every: int = 10
    # micro-batches per optimiser step on each process
    grad_accum: int = 1
    # how the packed forward attends over several samples: "padded" (one batched call, samples padded to the
    # longest), "per_sample" (one call per sample, no padded work; 1.04-1.08x tokens/s on the tiny model on CPU,
    # docs/benchmarks_sft.md), "auto" (per_sample on CPU, padded on GPU); equal losses either way
    packed_attention: str = "padded"
    # EMA decay per optimiser step (0 = no EMA); the EMA weights are what gets evaluated
    ema_decay: float = 0.995


@dataclass
class SFTRecipe:
    """Two-stage IRGL supervised training (one stage per recipe)."""

    # the model: preset name or checkpoint directory, plus size overrides
    model: ModelRecipe = field(default_factory=ModelRecipe)
    # initial weights (stage 2: the stage-1 checkpoint)
    init: InitSection = field(default_factory=InitSection)
    # data mixture and packing
    data: DataSection = field(default_factory=DataSection)
    # loss weights and timestep distribution
    loss: LossSection = field(default_factory=LossSection)
    # optimiser and schedule
    optim: OptimSection = field(default_factory=OptimSection)
    # frozen parts and LoRA
    freeze: FreezeSection = field(default_factory=FreezeSection)
    # training loop
    train: TrainSection = field(default_factory=TrainSection)
    # logging
    log: LogSection = field(default_factory=LogSection)

    def validate(self) -> None:
        d, t, o = self.data, self.train, self.optim
        for mode, w in d.mode_weights.items():
            if mode not in MODES:
                raise ValueError(
                    f"data.mode_weights: unknown learning mode '{mode}'; valid: {', '.join(MODES)}"
                )
            if w < 0:
                raise ValueError(f"data.mode_weights.{mode}: weight must be >= 0, got {w}")
        if not any(w > 0 for w in d.mode_weights.values()):
            raise ValueError("data.mode_weights: at least one mode needs a positive weight")
        for mode in d.mandatory_modes:
            if d.mode_weights.get(mode, 0) <= 0:
                raise ValueError(
                    f"data.mandatory_modes: '{mode}' needs a positive weight in data.mode_weights"
                )
        if self.train.packed_attention not in PACKED_ATTENTION:
            raise ValueError(
                f"train.packed_attention must be one of {PACKED_ATTENTION}, got {self.train.packed_attention!r}"
            )
        if d.image_resize not in ("none", "official"):
            raise ValueError(f"data.image_resize must be 'none' or 'official', got {d.image_resize!r}")
        if d.on_error not in ("raise", "skip"):
            raise ValueError(f"data.on_error must be 'raise' or 'skip', got {d.on_error!r}")
        if not 0 < d.expected_tokens_per_step <= d.max_tokens_per_step:
            raise ValueError("data: need 0 < expected_tokens_per_step <= max_tokens_per_step")
        if d.max_tokens_per_sample > d.max_tokens_per_step:
            raise ValueError("data.max_tokens_per_sample must be <= data.max_tokens_per_step")
        for name in (
            "text_cond_dropout",
            "vit_cond_dropout",
            "vae_cond_dropout",
            "prompt_dropout",
            "think_cfg_dropout",
            "image_cond_dropout",
        ):
            if not 0.0 <= getattr(d, name) <= 1.0:
                raise ValueError(f"data.{name} must be in [0, 1], got {getattr(d, name)}")
        if self.init.weights not in INIT_WEIGHTS:
            raise ValueError(f"init.weights must be one of {INIT_WEIGHTS}, got {self.init.weights!r}")
        if o.scheduler not in SCHEDULERS:
            raise ValueError(f"optim.scheduler must be one of {SCHEDULERS}, got {o.scheduler!r}")
        if t.mixed_precision not in PRECISIONS:
            raise ValueError(f"train.mixed_precision must be one of {PRECISIONS}, got {t.mixed_precision!r}")
        if self.log.wandb_mode not in WANDB_MODES:
            raise ValueError(f"log.wandb_mode must be one of {WANDB_MODES}, got {self.log.wandb_mode!r}")
        if t.grad_accum < 1 or t.max_steps < 1:
            raise ValueError("train.grad_accum and train.max_steps must be >= 1")
        if not 0.0 <= t.ema_decay < 1.0:
            raise ValueError(f"train.ema_decay must be in [0, 1), got {t.ema_decay}")
        if self.loss.timestep_shift <= 0:
            raise ValueError(f"loss.timestep_shift must be > 0, got {self.loss.timestep_shift}")
