"""`EvalRecipe`: the typed recipe of `scripts/eval.py` (model, sampling, prompt set, reward, eval settings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from irg_rl.config import ConfigError
from irg_rl.data.task_plugin import TaskSection
from irg_rl.eval.metrics import TURNS
from irg_rl.eval.prompt_sets import prompt_set_names
from irg_rl.inference.engine_config import EngineConfig, IRGSamplingConfig, tiny_sampling
from irg_rl.models.configs import ModelRecipe
from rewards.spec import RewardSpec

__all__ = ["PromptsConfig", "EvalSettings", "EvalRecipe"]


@dataclass
class PromptsConfig:
    """Which prompts to evaluate."""

    # prompt set: a task plug-in's held-out split (shapes) | geneval | wise | tiif | genai | oneig | dpg
    set: str = "shapes"
    # the benchmark's prompt file or folder (null for a task = its generated held-out split)
    file: str | None = None
    # evaluate only the first N prompts (null = all)
    limit: int | None = None
    # loader options, e.g. {variant: long} (TIIF), {eval_path: ...} (TIIF), {language: zh} (OneIG), {num: 60} (shapes)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalSettings:
    """How the evaluation runs and what it writes."""

    # images sampled per prompt (GenEval uses 4)
    images_per_prompt: int = 1
    # turns to evaluate: no_think (one round, no thinking), think (IRG turn 1), irg (IRG turn 2)
    modes: list[str] = field(default_factory=lambda: list(TURNS))
    # prompts per engine call (memory vs speed)
    batch_size: int = 16
    # a score at or above this counts as correct when the reward gives no strict verdict itself
    strict_threshold: float = 1.0
    # device of the model: cpu | cuda | cuda:N
    device: str = "cpu"
    # output folder (scripts/eval.py --out overrides it)
    out: str = "runs/eval"
    # write report.html with plots and sample trajectories
    report: bool = True
    # sample trajectories shown in the HTML report
    report_samples: int = 12
    # torch threads for CPU runs (0 = leave torch's default)
    num_threads: int = 0

    def validate(self) -> None:
        if self.images_per_prompt < 1:
            raise ConfigError(f"eval.images_per_prompt must be >= 1, got {self.images_per_prompt}")
        if self.batch_size < 1:
            raise ConfigError(f"eval.batch_size must be >= 1, got {self.batch_size}")
        bad = [m for m in self.modes if m not in TURNS]
        if bad or not self.modes:
            raise ConfigError(f"eval.modes must be a non-empty subset of {list(TURNS)}, got {self.modes}")


@dataclass
class EvalRecipe:
    """Recipe of `scripts/eval.py`."""

    # the model: a preset (random init) or a BAGEL-layout checkpoint directory
    model: ModelRecipe = field(default_factory=ModelRecipe)
    # IRG sampling settings (the no-think baseline uses the same with rounds=1, think=false)
    sampling: IRGSamplingConfig = field(default_factory=tiny_sampling)
    # the task plug-in: its options apply to its own prompt set (prompts.set = task.name), to the default args of
    # the rewards that score it, and to the tokenizer and VAE of a random preset
    task: TaskSection = field(default_factory=TaskSection)
    # seed of a random initialisation
    init_seed: int = 0
    # which prompts
    prompts: PromptsConfig = field(default_factory=PromptsConfig)
    # reward override; empty name = the prompt set's default reward (args are merged into its defaults)
    reward: RewardSpec = field(default_factory=RewardSpec)
    # evaluation settings
    eval: EvalSettings = field(default_factory=EvalSettings)

    def validate(self) -> None:
        if self.prompts.set not in prompt_set_names():
            raise ConfigError(
                f"prompts.set must be one of {list(prompt_set_names())}, got {self.prompts.set!r}"
            )
        self.sampling.validate("sampling")
        self.eval.validate()

    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            model=self.model, sampling=self.sampling, task=self.task, init_seed=self.init_seed
        )
