"""Summary statistics of per-turn scores (pure functions over plain lists; NaN = not applicable, skipped).

Turns: `no_think` (one round, no thinking), `think` (IRG turn 1: think_1 -> image_1), `irg` (IRG turn 2:
think_2 -> image_2). Transition rates compare the two IRG turns of the same sample, strict verdicts:
- regression rate = P(turn 2 wrong | turn 1 correct): how often reflection breaks a correct image;
- improvement rate = P(turn 2 correct | turn 1 wrong): how often reflection fixes a wrong image.
When think_2's verdict was read (`sampling.keep_pattern`), `verdict` holds its confusion matrix against turn 1's
strict judgement (`irg_rl.inference.verdict.verdict_confusion`) and the share of trajectories it stopped.
"""

from __future__ import annotations

import math
from collections import defaultdict

from irg_rl.inference.verdict import verdict_confusion

__all__ = ["TURNS", "TURN_TITLES", "mean", "turn_summary", "transition_rates", "summarize", "per_category"]

TURNS = ("no_think", "think", "irg")
TURN_TITLES = {"no_think": "no-think", "think": "think (turn 1)", "irg": "IRG (turn 2)"}


def _ok(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def mean(values: list[float | None]) -> float | None:
    """Mean of the applicable values; None when there are none."""
    vals = [float(v) for v in values if _ok(v)]
    return sum(vals) / len(vals) if vals else None


def turn_summary(scores: list[dict]) -> dict:
    """scores: one {score, strict, partial} per sample -> {n, n_scored, strict, partial, score} (means)."""
    return {
        "n": len(scores),
        "n_scored": sum(_ok(s.get("score")) for s in scores),
        "strict": mean([s.get("strict") for s in scores]),
        "partial": mean([s.get("partial") for s in scores]),
        "score": mean([s.get("score") for s in scores]),
    }


def transition_rates(turn1: list[dict], turn2: list[dict]) -> dict:
    """Regression / improvement rates between two turns of the same samples (strict verdicts)."""
    if len(turn1) != len(turn2):
        raise ValueError(f"transition_rates: {len(turn1)} turn-1 scores vs {len(turn2)} turn-2 scores")
    pairs = [
        (a["strict"], b["strict"])
        for a, b in zip(turn1, turn2, strict=True)
        if _ok(a.get("strict")) and _ok(b.get("strict"))
    ]
    right1 = [b for a, b in pairs if a >= 0.5]
    wrong1 = [b for a, b in pairs if a < 0.5]
    regressed = sum(b < 0.5 for b in right1)
    improved = sum(b >= 0.5 for b in wrong1)
    return {
        "pairs": len(pairs),
        "turn1_correct": len(right1),
        "regressed": regressed,
        "regression_rate": regressed / len(right1) if right1 else None,
        "turn1_wrong": len(wrong1),
        "improved": improved,
        "improvement_rate": improved / len(wrong1) if wrong1 else None,
    }


def summarize(records: list[dict]) -> dict:
    """records: one per sample with `turns: {turn: {score, strict, partial}}` -> per-turn summaries + transitions."""
    present = [t for t in TURNS if any(t in r["turns"] for r in records)]
    out: dict = {
        "turns": {t: turn_summary([r["turns"][t] for r in records if t in r["turns"]]) for t in present}
    }
    if "think" in present and "irg" in present:
        both = [r for r in records if "think" in r["turns"] and "irg" in r["turns"]]
        out["transitions"] = transition_rates(
            [r["turns"]["think"] for r in both], [r["turns"]["irg"] for r in both]
        )
    judged = [r for r in records if r.get("verdict") is not None and "think" in r["turns"]]
    if judged:
        strict1 = [r["turns"]["think"].get("strict") for r in judged]
        out["verdict"] = verdict_confusion(
            [r["verdict"] for r in judged], [s >= 0.5 if _ok(s) else None for s in strict1]
        )
        out["verdict"]["stopped"] = sum(bool(r.get("stopped")) for r in judged)
        out["verdict"]["stopped_share"] = out["verdict"]["stopped"] / len(judged)
    return out


def per_category(records: list[dict]) -> dict[str, dict]:
    """Per-category summaries (category -> summarize(records of that category))."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        groups[r.get("category") or "(none)"].append(r)
    return {cat: summarize(rs) for cat, rs in sorted(groups.items())}
