"""The reflection's verdict on image_1: keep it, or revise it (pure functions).

A verdict is read from the decoded think_2 text with two regular expressions set per recipe
(`sampling.keep_pattern`, `sampling.revise_pattern`):
- `keep`: the keep pattern matches and the revise pattern does not;
- `revise`: the revise pattern matches and the keep pattern does not (or, with no revise pattern set, the keep
  pattern does not match);
- `none`: no clear verdict (neither matches, or both do). It acts as revise (the trajectory is refined) and is
  counted separately, so a reflection that stops stating a verdict shows up in the logs.

With `sampling.on_keep: stop` a keep verdict ends the trajectory after think_2 (image_2 := image_1, nothing
sampled); `refine` (the IRG paper's behaviour) always samples image_2.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import lru_cache

import torch

__all__ = [
    "VERDICTS",
    "ON_KEEP",
    "compile_pattern",
    "parse_verdict",
    "parse_verdicts",
    "verdict_confusion",
    "verdict_agreement",
]

VERDICTS = ("keep", "revise", "none")
ON_KEEP = ("refine", "stop")


@lru_cache(maxsize=64)
def compile_pattern(pattern: str) -> re.Pattern | None:
    """A case-insensitive compiled pattern, or None for "" (not set). Raises re.error on a bad pattern."""
    return re.compile(pattern, re.IGNORECASE) if pattern else None


def parse_verdict(text: str, keep_pattern: str, revise_pattern: str = "") -> str:
    """'keep' | 'revise' | 'none' for one reflection text (see the module docstring for the rules)."""
    keep_re = compile_pattern(keep_pattern)
    if keep_re is None:
        raise ValueError("parse_verdict: keep_pattern is empty; set sampling.keep_pattern to read verdicts")
    revise_re = compile_pattern(revise_pattern)
    keep = keep_re.search(text or "") is not None
    if revise_re is None:
        return "keep" if keep else "revise"
    revise = revise_re.search(text or "") is not None
    if keep and not revise:
        return "keep"
    if revise and not keep:
        return "revise"
    return "none"


def parse_verdicts(texts: Sequence[str], keep_pattern: str, revise_pattern: str = "") -> list[str]:
    return [parse_verdict(t, keep_pattern, revise_pattern) for t in texts]


def verdict_confusion(verdicts: Sequence[str | None], image_1_right: Sequence[bool | None]) -> dict:
    """The verdict's confusion matrix against a verifier's judgement of image_1 (self-verification).

    verdicts: keep | revise | none | None (not read) per trajectory; image_1_right: the verifier's judgement (None =
    not scored). Pairs with either missing are skipped. "none" counts as revise (that is what it does) and is also
    counted on its own. Returns counts (`n`, `right`, `wrong`, `keep_right`, `revise_right`, `keep_wrong`,
    `revise_wrong`, `none`) and rates: `keep_given_right` = P(keep | right) and `revise_given_wrong` =
    P(revise | wrong) (the two accuracies), their errors `revise_given_right` and `keep_given_wrong`, `accuracy`
    over all pairs, `keep_share` and `none_share`. A rate whose condition never occurs is None.
    """
    if len(verdicts) != len(image_1_right):
        raise ValueError(f"verdict_confusion: {len(verdicts)} verdicts for {len(image_1_right)} judgements")
    pairs = [
        (v, bool(r)) for v, r in zip(verdicts, image_1_right, strict=True) if v is not None and r is not None
    ]
    right = [v for v, r in pairs if r]
    wrong = [v for v, r in pairs if not r]
    c = {
        "n": len(pairs),
        "right": len(right),
        "wrong": len(wrong),
        "keep_right": sum(v == "keep" for v in right),
        "revise_right": sum(v != "keep" for v in right),
        "keep_wrong": sum(v == "keep" for v in wrong),
        "revise_wrong": sum(v != "keep" for v in wrong),
        "none": sum(v == "none" for v, _ in pairs),
    }

    def rate(num: int, den: int) -> float | None:
        return num / den if den else None

    c.update(
        keep_given_right=rate(c["keep_right"], c["right"]),
        revise_given_right=rate(c["revise_right"], c["right"]),
        revise_given_wrong=rate(c["revise_wrong"], c["wrong"]),
        keep_given_wrong=rate(c["keep_wrong"], c["wrong"]),
        accuracy=rate(c["keep_right"] + c["revise_wrong"], c["n"]),
        keep_share=rate(c["keep_right"] + c["keep_wrong"], c["n"]),
        none_share=rate(c["none"], c["n"]),
    )
    return c


def verdict_agreement(
    verdicts: list[str | None], r1: torch.Tensor, threshold: float, wrong_weight: float = 1.0
) -> torch.Tensor:
    """Self-verification score `[B]`: 1 where think_2's verdict agrees with the image_1 reward, else 0; an
    agreement on a wrong image_1 (a revise that catches a mistake) scores `wrong_weight` instead of 1.

    Agreement: "keep" with r1 >= threshold, or "revise" with r1 < threshold. "none" (no clear verdict) scores 0
    whatever image_1 is: a reflection is asked to state a verdict. A verdict of None (not read) or a NaN r1 gives
    NaN (not applicable). r1: `[B]` image_1 rewards.
    """
    if len(verdicts) != r1.numel():
        raise ValueError(f"verdict_agreement: {len(verdicts)} verdicts for {r1.numel()} image_1 rewards")
    bad = [v for v in verdicts if v not in (None, "keep", "revise", "none")]
    if bad:
        raise ValueError(
            f"verdict_agreement: unknown verdict {bad[0]!r}; expected keep, revise, none or None"
        )
    out = torch.full((len(verdicts),), math.nan)
    for i, (v, r) in enumerate(zip(verdicts, r1.tolist(), strict=True)):
        if v is None or math.isnan(r):
            continue
        right = r >= threshold
        agree = (v == "keep" and right) or (v == "revise" and not right)
        out[i] = float(agree) * (1.0 if right else wrong_weight)
    return out
