"""Reflection rewards: the format of think_2, improvement r(image_2) - r(image_1), no regression, and the verdict.

These measure a reflection by what it does: `improvement` and `no_regression` wrap any base
reward (a registered name with args, a spec dict, or a Reward object) and score both rounds in one batched call.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch

from irg_rl.inference.verdict import verdict_agreement
from rewards.contract import Reward, RewardBatch, RewardOutput, nan_output
from rewards.reflection_terms import improvement, no_regression
from rewards.spec import RewardSpec

__all__ = [
    "REFLECTION_HEADINGS",
    "reflection_parts",
    "ReflectionFormatReward",
    "ImprovementReward",
    "NoRegressionReward",
    "VerdictReward",
    "verdict_agreement",
]

# the three section headings after the initial analysis, in order (the wording the IRG system prompt asks for)
REFLECTION_HEADINGS = (
    "Detailed Explanation of Required Improvements",
    "Step-by-Step Modification Guidance",
    "Final Comprehensive Prompt for the Improved Image",
)

_THINK_TAGS = re.compile(r"</?think>", re.IGNORECASE)


def _heading_pattern(heading: str) -> re.Pattern:
    words = r"[\s\-]+".join(re.escape(w) for w in re.split(r"[\s\-]+", heading))
    return re.compile(words, re.IGNORECASE)


def reflection_parts(
    text: str, headings: tuple[str, ...] = REFLECTION_HEADINGS, min_section_chars: int = 10
) -> dict:
    """Which of the four parts a reflection has, in order: an initial analysis then each heading with content.

    Headings match case-insensitively anywhere in a line (markdown `#`, `**` and numbering are fine). Returns
    {"analysis": bool, "sections": [bool, ...], "in_order": bool, "parts": int (0..4)}.
    """
    body = _THINK_TAGS.sub("", text)
    positions = []
    for h in headings:
        m = _heading_pattern(h).search(body)
        positions.append(None if m is None else (m.start(), m.end()))
    found = [p for p in positions if p is not None]
    in_order = all(a[0] < b[0] for a, b in zip(found, found[1:], strict=False))
    first = min((p[0] for p in found), default=len(body))
    analysis = len(re.sub(r"[\W_]+", "", body[:first])) >= min_section_chars
    sections = []
    for i, p in enumerate(positions):
        if p is None:
            sections.append(False)
            continue
        later = [q[0] for q in positions[i + 1 :] if q is not None and q[0] > p[1]]
        end = min(later, default=len(body))
        sections.append(len(re.sub(r"[\W_]+", "", body[p[1] : end])) >= min_section_chars)
    parts = int(analysis) + sum(sections) if in_order else int(analysis)
    return {"analysis": analysis, "sections": sections, "in_order": in_order, "parts": parts}


class ReflectionFormatReward(Reward):
    """think_2 format: fraction of the four reflection parts present in order; 0 if its length is out of bounds."""

    name = "reflection_format"

    def __init__(self, min_chars: int = 80, max_chars: int = 6000, min_section_chars: int = 10) -> None:
        super().__init__()
        if not 0 <= min_chars < max_chars:
            raise ValueError(
                f"reflection_format: need 0 <= min_chars < max_chars, got {min_chars}, {max_chars}"
            )
        self.min_chars = min_chars
        self.max_chars = max_chars
        self.min_section_chars = min_section_chars

    def score(self, batch: RewardBatch) -> RewardOutput:
        if batch.think_2 is None:
            return nan_output(len(batch), "no think_2 in this batch (one-round trajectories)")
        scores, details = [], []
        for text in batch.think_2:
            info = reflection_parts(text or "", min_section_chars=self.min_section_chars)
            n = len(_THINK_TAGS.sub("", text or "").strip())
            info["chars"] = n
            info["length_ok"] = self.min_chars <= n <= self.max_chars
            scores.append(info["parts"] / 4.0 if info["length_ok"] else 0.0)
            details.append(info)
        return RewardOutput(scores=torch.tensor(scores), details=details)


def _build_base(base: Reward | RewardSpec | dict | str, base_args: dict | None) -> Reward:
    if isinstance(base, Reward):
        return base
    from rewards.registry import build_reward

    spec = RewardSpec.coerce(base, where="base reward")
    if base_args:
        spec = RewardSpec(**{**spec.__dict__, "args": {**spec.args, **base_args}})
    return build_reward(spec)


def _score_both_rounds(base: Reward, batch: RewardBatch) -> tuple[torch.Tensor, torch.Tensor, list, list]:
    """Base scores of image_2 and image_1 from one batched call. Returns (r2 [B], r1 [B], details2, details1)."""
    n = len(batch)
    both = RewardBatch.concat([batch, batch.replace(images=batch.images_1)])
    out = base(both)
    return out.scores[:n], out.scores[n:], out.details[:n], out.details[n:]


class ImprovementReward(Reward):
    """r(image_2) - r(image_1) under a base reward; NaN without image_1 or where the base is NaN."""

    name = "improvement"

    def __init__(self, base: Any = "shapes", base_args: dict | None = None) -> None:
        super().__init__()
        self.base = _build_base(base, base_args)

    def score(self, batch: RewardBatch) -> RewardOutput:
        if batch.images_1 is None:
            return nan_output(len(batch), "no images_1 in this batch (one-round trajectories)")
        r2, r1, d2, d1 = _score_both_rounds(self.base, batch)
        details = [
            {"base": self.base.name, "r1": _f(a), "r2": _f(b), "image_1": x, "image_2": y}
            for a, b, x, y in zip(r1, r2, d1, d2, strict=True)
        ]
        return RewardOutput(scores=improvement(r1, r2), details=details)


class NoRegressionReward(Reward):
    """Penalty -(r1 - r2)+ when image_1 was already correct (r1 >= threshold); NaN when image_1 was not correct."""

    name = "no_regression"

    def __init__(self, base: Any = "shapes", base_args: dict | None = None, threshold: float = 1.0) -> None:
        super().__init__()
        self.base = _build_base(base, base_args)
        self.threshold = threshold

    def score(self, batch: RewardBatch) -> RewardOutput:
        if batch.images_1 is None:
            return nan_output(len(batch), "no images_1 in this batch (one-round trajectories)")
        r2, r1, _, _ = _score_both_rounds(self.base, batch)
        correct = r1 >= self.threshold
        scores = no_regression(r1, r2, self.threshold)
        details = [
            {"base": self.base.name, "r1": _f(a), "r2": _f(b), "image_1_correct": bool(c)}
            for a, b, c in zip(r1, r2, correct, strict=True)
        ]
        return RewardOutput(scores=scores, details=details)


class VerdictReward(Reward):
    """Agreement of think_2's keep / revise verdict with a base reward's judgement of image_1 (1 agree, 0 not).

    The verdict is read from think_2 with `keep_pattern` / `revise_pattern` (regular expressions, case-insensitive;
    the rules of `irg_rl.inference.verdict`); image_1 counts as right where the base reward is >= `threshold`.
    NaN without think_2 / images_1.
    """

    name = "verdict"

    def __init__(
        self,
        keep_pattern: str,
        revise_pattern: str = "",
        base: Any = "shapes",
        base_args: dict | None = None,
        threshold: float = 1.0,
    ) -> None:
        super().__init__()
        from irg_rl.inference.verdict import compile_pattern

        if not keep_pattern:
            raise ValueError(
                "verdict reward: keep_pattern is required (a regular expression of the keep verdict)"
            )
        compile_pattern(keep_pattern), compile_pattern(revise_pattern)  # fail early on a bad pattern
        self.keep_pattern, self.revise_pattern = keep_pattern, revise_pattern
        self.base = _build_base(base, base_args)
        self.threshold = threshold

    def score(self, batch: RewardBatch) -> RewardOutput:
        from irg_rl.inference.verdict import parse_verdicts

        if batch.images_1 is None or batch.think_2 is None:
            return nan_output(len(batch), "no images_1 / think_2 in this batch (one-round trajectories)")
        out = self.base(batch.replace(images=batch.images_1))
        verdicts = parse_verdicts(batch.think_2, self.keep_pattern, self.revise_pattern)
        scores = verdict_agreement(verdicts, out.scores, self.threshold)
        details = [
            {"base": self.base.name, "r1": _f(r), "verdict": v, "image_1_right": bool(r >= self.threshold)}
            for r, v in zip(out.scores, verdicts, strict=True)
        ]
        return RewardOutput(scores=scores, details=details)


def _f(x: torch.Tensor) -> float | None:
    v = float(x)
    return None if math.isnan(v) else v
