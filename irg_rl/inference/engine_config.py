"""Typed settings of the IRG engine: per-turn guidance and thinking, the image sampler, the SDE window.

`IRGSamplingConfig` is the `sampling:` section of a recipe (every field documented above it); `EngineConfig` is
the recipe of `scripts/generate.py` and the rollout bench (model + sampling + task). Defaults follow the
official IRG evaluation settings: temperature 0.3, text CFG 4.0, image CFG 2.0, global
renorm with CFG on t in (0.4, 1] for turn 1, per-token ("text_channel") renorm with CFG everywhere for turn 2,
timestep shift 3.0. Steps: BAGEL's `num_timesteps=50` is a 50-point grid, i.e. 49 Euler steps.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from irg_rl.config import ConfigError
from irg_rl.data.task_plugin import TaskSection
from irg_rl.models.configs import ModelRecipe

from .verdict import ON_KEEP, compile_pattern

RENORM_TYPES = ("global", "channel", "text_channel")
MODES = ("euler", "sde")

# Our wording of the IRG system prompt (the paper's wording is a recipe setting, not a constant).
IRG_SYSTEM_PROMPT = (
    "You are an image generation assistant that thinks before drawing. Before each image, write a plan inside "
    "<think> ... </think>: the objects, their attributes, counts and layout. After an image is shown to you, "
    "write an improvement think: first an initial analysis of the shortcomings of the previous image, then the "
    "sections 'Detailed Explanation of Required Improvements', 'Step-by-Step Modification Guidance' and "
    "'Final Comprehensive Prompt for the Improved Image', and then generate the improved image."
)


@dataclass
class TurnConfig:
    """Thinking and guidance of one round (think_k then image_k)."""

    # sampling temperature of the think text (0 = greedy)
    temperature: float = 0.3
    # most think tokens sampled before the piece is closed (truncated thinks are flagged)
    max_think_tokens: int = 4096
    # text CFG scale s_text (<= 1 disables all guidance, as in BAGEL)
    cfg_text_scale: float = 4.0
    # image CFG scale s_img (turn 2 only; <= 1 disables the image branch)
    cfg_img_scale: float = 2.0
    # guidance is applied on steps whose time t satisfies lo < t <= hi
    cfg_interval: list[float] = field(default_factory=lambda: [0.0, 1.0])
    # renormalisation after guidance: global (per image) | channel (per token) | text_channel (text CFG only)
    cfg_renorm_type: str = "global"
    # lower clamp of the renorm factor (BAGEL default 0)
    cfg_renorm_min: float = 0.0

    def validate(self, section: str) -> None:
        if self.temperature < 0:
            raise ConfigError(f"{section}.temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if self.max_think_tokens < 1:
            raise ConfigError(f"{section}.max_think_tokens must be >= 1, got {self.max_think_tokens}")
        if self.cfg_renorm_type not in RENORM_TYPES:
            raise ConfigError(
                f"{section}.cfg_renorm_type must be one of {RENORM_TYPES}, got {self.cfg_renorm_type!r}"
            )
        iv = list(self.cfg_interval)
        if len(iv) != 2 or not 0.0 <= iv[0] <= iv[1] <= 1.0:
            raise ConfigError(f"{section}.cfg_interval must be [lo, hi] with 0 <= lo <= hi <= 1, got {iv}")


def _turn1() -> TurnConfig:
    return TurnConfig(cfg_img_scale=1.0, cfg_interval=[0.4, 1.0], cfg_renorm_type="global")


def _turn2() -> TurnConfig:
    return TurnConfig(cfg_img_scale=2.0, cfg_interval=[0.0, 1.0], cfg_renorm_type="text_channel")


# sampling.parity values (see IRGSamplingConfig.parity)
PARITIES = ("none", "irg")


@dataclass
class IRGSamplingConfig:
    """How the engine samples trajectories (the `sampling:` section of a recipe)."""

    # system prompt put first in every context ("" = none); the IRG wording asks for plans and reflections
    system_prompt: str = IRG_SYSTEM_PROMPT
    # rounds of think -> image: 2 = IRG, 1 = the "think" baseline
    rounds: int = 2
    # sample think texts; false = no thinking (rounds=1, think=false is the plain text-to-image baseline)
    think: bool = True
    # stop a think early when its text ends with one of these (the piece is then closed with <|im_end|>)
    stop_strings: list[str] = field(default_factory=lambda: ["</think>"])
    # round 1 settings (think_1, image_1)
    turn1: TurnConfig = field(default_factory=_turn1)
    # round 2 settings (think_2, image_2)
    turn2: TurnConfig = field(default_factory=_turn2)
    # denoising steps per image (BAGEL's 50-point grid = 49 steps)
    steps: int = 49
    # timestep shift of the sampling grid t' = s t / (1 + (s - 1) t)
    timestep_shift: float = 3.0
    # image side in pixels (must be a multiple of the model's latent downsample)
    resolution: int = 1024
    # stochastic steps per image in mode "sde" (Flow-GRPO-Fast window); 0 = none
    sde_window_size: int = 2
    # first stochastic step; null = drawn uniformly per generate() call from [0, sde_window_max_start]
    sde_window_start: int | None = None
    # latest allowed window start when it is drawn (null = steps - sde_window_size)
    sde_window_max_start: int | None = None
    # SDE noise level a in std_t = a sqrt(t / (1 - t)) (Flow-GRPO uses 0.7)
    noise_level: float = 0.7
    # which images use the SDE window in mode "sde" (1, 2)
    sde_turns: list[int] = field(default_factory=lambda: [1, 2])
    # trajectories sampled per prompt (G)
    samples_per_prompt: int = 1
    # base seed: trajectory k of prompt p uses seed + 1000003 * p + k for its noise and tokens
    seed: int = 0
    # the G samples of a prompt start each image from the same x_1 (their tokens and SDE steps still differ), so
    # reward differences inside a group come from what the policy sampled, not from the starting noise
    # (branching at the SDE window as in TempFlow-GRPO); off = each trajectory draws its own x_1
    group_initial_noise: bool = False
    # IRG only: each round-1 sample (think_1 + image_1) is continued by this many round-2 samples (think_2 +
    # image_2); the G samples of a prompt are G / round2_branches first rounds x round2_branches continuations,
    # sample index = first-round index * round2_branches + branch. 1 = every trajectory its own first round.
    # Gives GRPO a round-2 baseline conditioned on image_1 (grpo.credit.round_2_baseline: image_1)
    round2_branches: int = 1
    # regular expression (case-insensitive) that finds a keep verdict in think_2 ("" = verdicts are not read);
    # verdicts are recorded per trajectory and reported (verdict confusion against the image_1 reward)
    keep_pattern: str = ""
    # regular expression of a revise verdict ("" = anything without a keep verdict is revise); a reflection that
    # matches neither or both has no verdict ("none"), which acts as revise and is counted
    revise_pattern: str = ""
    # what a keep verdict does: "refine" = sample image_2 anyway (the IRG paper); "stop" = end the trajectory
    # after think_2 with image_2 := image_1 exactly (no second image sampled; needs keep_pattern; no effect
    # without a reflection, i.e. rounds 1 or think false)
    on_keep: str = "refine"
    # "none": the engine's own sampling (sampled think ids stay in the context, pixels rounded; what RL needs:
    # re-scoring reads exactly the recorded ids); "irg": the IRG research code's evaluation path, for comparing
    # with published numbers: each think is decoded to text and re-tokenized into the context, and decoded
    # pixels are truncated to uint8 (evaluation only; RL recipes refuse it)
    parity: str = "none"
    # read the system prompt from this text file instead of system_prompt ("" = off); "checkpoint" = the
    # model directory's system_prompt.txt (resolved when the model is loaded)
    system_prompt_file: str = ""

    def turn(self, k: int) -> TurnConfig:
        return self.turn1 if k == 1 else self.turn2

    def validate(self, section: str = "sampling") -> None:
        if self.rounds not in (1, 2):
            raise ConfigError(f"{section}.rounds must be 1 (think baseline) or 2 (IRG), got {self.rounds}")
        if self.steps < 1:
            raise ConfigError(f"{section}.steps must be >= 1, got {self.steps}")
        if self.parity not in PARITIES:
            raise ConfigError(f"{section}.parity must be one of {PARITIES}, got {self.parity!r}")
        if not self.timestep_shift > 0:
            raise ConfigError(f"{section}.timestep_shift must be > 0, got {self.timestep_shift}")
        if self.resolution < 1:
            raise ConfigError(f"{section}.resolution must be >= 1, got {self.resolution}")
        if self.sde_window_size < 0:
            raise ConfigError(f"{section}.sde_window_size must be >= 0, got {self.sde_window_size}")
        if self.sde_window_start is not None and not (
            0 <= self.sde_window_start <= self.steps - min(self.sde_window_size, self.steps)
        ):
            raise ConfigError(
                f"{section}.sde_window_start={self.sde_window_start} does not fit a window of "
                f"{self.sde_window_size} in {self.steps} steps; set it in [0, steps - sde_window_size] or null"
            )
        if self.sde_window_max_start is not None and self.sde_window_max_start < 0:
            raise ConfigError(
                f"{section}.sde_window_max_start must be >= 0 or null, got {self.sde_window_max_start}"
            )
        if self.noise_level < 0:
            raise ConfigError(f"{section}.noise_level must be >= 0, got {self.noise_level}")
        if any(k not in (1, 2) for k in self.sde_turns):
            raise ConfigError(f"{section}.sde_turns may only hold 1 and 2, got {self.sde_turns}")
        if self.samples_per_prompt < 1:
            raise ConfigError(f"{section}.samples_per_prompt must be >= 1, got {self.samples_per_prompt}")
        if self.round2_branches < 1:
            raise ConfigError(f"{section}.round2_branches must be >= 1, got {self.round2_branches}")
        self._validate_verdict(section)
        self.turn1.validate(f"{section}.turn1")
        self.turn2.validate(f"{section}.turn2")

    def _validate_verdict(self, section: str) -> None:
        if self.on_keep not in ON_KEEP:
            raise ConfigError(f"{section}.on_keep must be one of {ON_KEEP}, got {self.on_keep!r}")
        if self.on_keep == "stop" and not self.keep_pattern:
            raise ConfigError(
                f"{section}.on_keep: stop needs {section}.keep_pattern (a regular expression of the keep verdict)"
            )
        for key in ("keep_pattern", "revise_pattern"):
            try:
                compile_pattern(getattr(self, key))
            except re.error as err:
                raise ConfigError(f"{section}.{key}: not a valid regular expression ({err})") from None

    @property
    def reads_verdict(self) -> bool:
        """True when think_2's verdict is parsed (a keep pattern is set and there is a reflection)."""
        return bool(self.keep_pattern) and self.rounds == 2 and self.think

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> IRGSamplingConfig:
        data = dict(data)
        t1, t2 = TurnConfig(**data.pop("turn1")), TurnConfig(**data.pop("turn2"))
        return cls(**data, turn1=t1, turn2=t2)


def tiny_sampling() -> IRGSamplingConfig:
    """Settings for the embedded default (tiny model, ShapesWorld 32 px): short thinks, 20 steps, CFG 3."""
    # ShapesWorld thinks reach ~60 tokens (plan) and ~240 (four-part reflection) with the embedded tokenizer
    t1 = TurnConfig(max_think_tokens=80, cfg_text_scale=3.0, cfg_img_scale=1.0, cfg_interval=[0.4, 1.0])
    t2 = TurnConfig(
        max_think_tokens=280,
        cfg_text_scale=3.0,
        cfg_img_scale=2.0,
        cfg_interval=[0.0, 1.0],
        cfg_renorm_type="text_channel",
    )
    # the ShapesWorld SFT data carry no system prompt (data.system_prompt: ""), so neither does sampling
    return IRGSamplingConfig(turn1=t1, turn2=t2, steps=20, resolution=32, system_prompt="")


@dataclass
class EngineConfig:
    """Recipe of `scripts/generate.py` and the rollout bench: which model, how to sample, which task."""

    # the model: a preset (random init) or a BAGEL-layout checkpoint directory
    model: ModelRecipe = field(default_factory=ModelRecipe)
    # sampling settings (defaults: the embedded tiny setting)
    sampling: IRGSamplingConfig = field(default_factory=tiny_sampling)
    # the task plug-in (tokenizer texts and fresh VAE of a randomly initialised preset)
    task: TaskSection = field(default_factory=TaskSection)
    # seed of a random initialisation
    init_seed: int = 0

    def validate(self) -> None:
        self.sampling.validate("sampling")
