"""Robust extraction of a numeric score from a judge model's free-text reply, normalised to [0, 1].

Tried in order (the last match of a kind wins, since judges usually reason first and conclude last):
1. JSON (also inside ``` fences): keys score / rating / overall / final_score / overall_score;
2. explicit fractions: "8/10", "8 / 10", "8 out of 10" (normalised by their own denominator);
3. labelled numbers: "Score: 8", "**Rating:** 7.5", "final score is 9", "Overall - 6";
4. a bold number "**7**", or a reply that is just a number;
5. optionally a leading yes/no followed by punctuation or the end ("Yes, ..." -> 1, "No." -> 0; not "No idea").
Values outside [0, scale_max] (or a fraction above its denominator) are rejected: None means unparsable.
"""

from __future__ import annotations

import json
import re

__all__ = ["parse_judge_score"]

_NUM = r"(-?\d+(?:\.\d+)?)"
_KEYS = ("score", "rating", "overall", "final_score", "overall_score", "final score")
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S | re.I)
_OBJ = re.compile(r"\{[^{}]*\}", re.S)
_FRACTION = re.compile(_NUM + r"\s*(?:/|out of)\s*(\d+(?:\.\d+)?)", re.I)
_LABEL = re.compile(r"(?:score|rating|overall|grade)\W{0,6}(?:is|of|=|:|-)?\W{0,6}" + _NUM, re.I)
_BOLD = re.compile(r"\*\*\s*" + _NUM + r"\s*\*\*")
_ALONE = re.compile(r"^\W*" + _NUM + r"\W*$")
_YESNO = re.compile(r"^\W*(yes|no)\s*(?:[.,!;:]|$)", re.I)


def _in_range(value: float, top: float) -> float | None:
    return value / top if 0.0 <= value <= top and top > 0 else None


def _from_value(value, scale_max: float) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _in_range(float(value), scale_max)
    if isinstance(value, str):
        return parse_judge_score(value, scale_max, yes_no=False)
    return None


def _from_json(text: str, scale_max: float) -> float | None:
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [m.group(0) for m in _OBJ.finditer(text)]
    for chunk in reversed(candidates):
        try:
            obj = json.loads(chunk)
        except ValueError:
            continue
        if isinstance(obj, dict):
            lower = {str(k).lower(): v for k, v in obj.items()}
            for key in _KEYS:
                if key in lower:
                    got = _from_value(lower[key], scale_max)
                    if got is not None:
                        return got
    return None


def parse_judge_score(text: str, scale_max: float = 10.0, yes_no: bool = True) -> float | None:
    """Score in [0, 1] from a judge reply, or None when no valid score is found (see module doc)."""
    if not text:
        return None
    got = _from_json(text, scale_max)
    if got is not None:
        return got
    fractions = _FRACTION.findall(text)
    for num, den in reversed(fractions):
        got = _in_range(float(num), float(den))
        if got is not None:
            return got
    for pattern in (_LABEL, _BOLD, _ALONE):
        found = pattern.findall(text)
        for num in reversed(found):
            got = _in_range(float(num), scale_max)
            if got is not None:
                return got
    if yes_no:
        m = _YESNO.match(text)
        if m:
            return 1.0 if m.group(1).lower() == "yes" else 0.0
    return None
