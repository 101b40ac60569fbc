"""The reward contract: one batch type in, one output type out, one base class for every plug-in.

A reward is a picklable callable object with a `name`. It loads its model lazily (on the first call, never in
`__init__`) and drops the loaded model when pickled, so a reward object can be shipped to a Ray actor or a
subprocess cheaply and load there. Scores are a float tensor `[B]`; NaN means "not applicable to this sample"
(for example an OCR reward on a prompt that asks for no text) and is never replaced by a silent 0.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

__all__ = ["RewardBatch", "RewardOutput", "Reward", "RewardError", "nan_output"]


class RewardError(RuntimeError):
    """A reward could not score a batch; the message names the reward and what to fix."""


def _check_len(name: str, values: list | None, n: int) -> None:
    if values is not None and len(values) != n:
        raise ValueError(
            f"RewardBatch.{name} has {len(values)} entries but there are {n} prompts; pass one per sample"
        )


@dataclass
class RewardBatch:
    """One batch of samples to score (B = len(prompts)); optional fields are None when the rollout lacks them."""

    # the user prompts, one per sample
    prompts: list[str]
    # the final images (image_2 in a two-round IRG trajectory, the only image in a one-round one)
    images: list[Image.Image]
    # the first-round images, or None for one-round trajectories
    images_1: list[Image.Image] | None = None
    # the first-round plans (think_1), or None
    think_1: list[str] | None = None
    # the reflections written after image_1 (think_2), or None
    think_2: list[str] | None = None
    # per-sample metadata, e.g. GenEval-style {"tag", "include": [...], "exclude": [...]}; empty dicts if absent
    metadata: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.prompts)
        if not self.metadata:
            self.metadata = [{} for _ in range(n)]
        _check_len("images", self.images, n)
        for key in ("images_1", "think_1", "think_2", "metadata"):
            _check_len(key, getattr(self, key), n)
        for i, img in enumerate(self.images):
            if not isinstance(img, Image.Image):
                raise TypeError(
                    f"RewardBatch.images[{i}] is {type(img).__name__}; pass PIL.Image.Image objects"
                )

    def __len__(self) -> int:
        return len(self.prompts)

    def replace(self, **changes: Any) -> RewardBatch:
        """A copy with some fields replaced (e.g. `images=batch.images_1` to score the first round)."""
        return dataclasses.replace(self, **changes)

    def select(self, index: list[int]) -> RewardBatch:
        """The sub-batch holding the samples at `index`, in that order."""

        def pick(values: list | None) -> list | None:
            return None if values is None else [values[i] for i in index]

        return RewardBatch(
            prompts=pick(self.prompts),
            images=pick(self.images),
            images_1=pick(self.images_1),
            think_1=pick(self.think_1),
            think_2=pick(self.think_2),
            metadata=pick(self.metadata),
        )

    @staticmethod
    def concat(batches: list[RewardBatch]) -> RewardBatch:
        """Concatenate batches; an optional field is kept only if every batch has it."""

        def join(key: str) -> list | None:
            parts = [getattr(b, key) for b in batches]
            if any(p is None for p in parts):
                return None
            return [x for p in parts for x in p]

        return RewardBatch(
            prompts=join("prompts"),
            images=join("images"),
            images_1=join("images_1"),
            think_1=join("think_1"),
            think_2=join("think_2"),
            metadata=join("metadata"),
        )


@dataclass
class RewardOutput:
    """Scores for a batch: `scores` FloatTensor [B] (NaN = not applicable) and one detail dict per sample."""

    # float32 scores [B]; NaN marks samples the reward does not apply to
    scores: torch.Tensor
    # one JSON-friendly dict per sample for logging (what was seen, why NaN, sub-scores)
    details: list[dict]
    # per-component scores [B] for composite rewards (label -> tensor); empty for single rewards
    components: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.scores = torch.as_tensor(self.scores, dtype=torch.float32).detach().cpu()
        if self.scores.dim() != 1:
            raise ValueError(f"RewardOutput.scores must be 1-D [B], got shape {tuple(self.scores.shape)}")
        if len(self.details) != self.scores.numel():
            raise ValueError(
                f"RewardOutput has {self.scores.numel()} scores but {len(self.details)} detail dicts; give one per sample"
            )

    def __len__(self) -> int:
        return self.scores.numel()

    def select(self, index: list[int]) -> RewardOutput:
        """The output of the samples at `index`, in that order (scores, details and components)."""
        idx = torch.as_tensor(index, dtype=torch.long)
        return RewardOutput(
            scores=self.scores[idx],
            details=[self.details[i] for i in index],
            components={k: v[idx] for k, v in self.components.items()},
        )

    @staticmethod
    def concat(outputs: list[RewardOutput]) -> RewardOutput:
        """Concatenate outputs in order (components are concatenated where every output has them)."""
        keys = set.intersection(*(set(o.components) for o in outputs)) if outputs else set()
        return RewardOutput(
            scores=torch.cat([o.scores for o in outputs]) if outputs else torch.zeros(0),
            details=[d for o in outputs for d in o.details],
            components={k: torch.cat([o.components[k] for o in outputs]) for k in sorted(keys)},
        )


def nan_output(n: int, reason: str) -> RewardOutput:
    """All-NaN output for a batch the reward does not apply to, with the reason in every detail dict."""
    return RewardOutput(scores=torch.full((n,), math.nan), details=[{"na": reason} for _ in range(n)])


class Reward:
    """Base class of every reward plug-in.

    Subclasses set `name`, override `score(batch)` and, if they hold a model, `load()`; `self.model` loads it on
    first use. Keep constructor arguments plain (paths, names, numbers) so the object pickles small.
    """

    # registry name of the reward (also its label in logs)
    name: str = "reward"

    def __init__(self) -> None:
        self._model: Any = None
        self._loaded = False

    # ---- lazy model -------------------------------------------------------------------------------------------
    def load(self) -> Any:
        """Load and return the model (or any heavy state); called once, on first use. Default: nothing."""
        return None

    @property
    def model(self) -> Any:
        if not self._loaded:
            self._model = self.load()
            self._loaded = True
        return self._model

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        # the loaded model stays behind: the receiving process loads its own copy on first call
        state["_model"] = None
        state["_loaded"] = False
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    # ---- scoring ----------------------------------------------------------------------------------------------
    def score(self, batch: RewardBatch) -> RewardOutput:
        raise NotImplementedError(f"{type(self).__name__} must implement score(batch)")

    def __call__(self, batch: RewardBatch) -> RewardOutput:
        if not isinstance(batch, RewardBatch):
            raise TypeError(f"reward '{self.name}' expects a RewardBatch, got {type(batch).__name__}")
        if len(batch) == 0:
            return RewardOutput(scores=torch.zeros(0), details=[])
        out = self.score(batch)
        if len(out) != len(batch):
            raise RewardError(f"reward '{self.name}' returned {len(out)} scores for a batch of {len(batch)}")
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
