"""Per-turn scoring of evaluation images with the reward that matches the prompt set.

`DEFAULT_REWARDS` maps each prompt set to its default reward spec (overridable by the recipe's `reward:`):
shapes -> `shapes` (exact scorer), GenEval -> `geneval` (rules over a detector you configure), WISE / TIIF /
OneIG / DPG -> `vlm_judge` (an OpenAI-compatible judge endpoint you configure), GenAI-Bench -> `vqa_score`
(a local VLM you configure). OneIG's official score combines several task-specific models; here it is
approximated by one judge question per image (recorded as such in results.json). Judge-scored sets then aggregate the per-question answers the way the benchmark
does (`aggregate_answers`): WISE's weighted 0-2 scores, TIIF's yes/no answers checked against the expected
ones, DPG's yes answers with dependent questions zeroed when a parent is answered no.

Every scored image gets `score` (the reward), `partial` (the reward's partial credit if it reports one, else
the score) and `strict` (the reward's strict verdict if it reports one, else `score >= strict_threshold`); NaN
when the reward does not apply, never a silent 0.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from irg_rl.config import ConfigError
from irg_rl.eval.prompt_sets import EvalPrompt
from rewards import RewardBatch, RewardOutput, RewardSpec, build_reward
from rewards.contract import Reward

__all__ = [
    "DEFAULT_REWARDS",
    "TurnScore",
    "resolve_reward_spec",
    "build_eval_reward",
    "score_images",
    "aggregate_answers",
    "describe_reward",
]

YES_NO_SUFFIX = " Answer yes or no."

# prompt set -> default reward spec; user-supplied args (detector, url, path) are merged in by the recipe
DEFAULT_REWARDS: dict[str, dict[str, Any]] = {
    "shapes": {"name": "shapes", "args": {"mode": "partial"}},
    "geneval": {"name": "geneval", "args": {"mode": "partial"}},
    "wise": {"name": "vlm_judge", "args": {"scale_max": 2.0}},
    "tiif": {"name": "vlm_judge", "args": {"scale_max": 1.0}},
    "genai": {"name": "vqa_score", "args": {}},
    "oneig": {"name": "vlm_judge", "args": {}},
    "dpg": {"name": "vlm_judge", "args": {"scale_max": 1.0}},
}

# what each default needs from the user (shown when building it fails)
NEEDS = {
    "geneval": "reward.args.detector (owlv2 with detector_args.path, http with detector_args.url, or a "
    "package.module:factory plug-in) and, for colour prompts, reward.args.color",
    "vlm_judge": "reward.args.url (an OpenAI-compatible judge endpoint, e.g. http://127.0.0.1:8000/v1) "
    "and reward.args.model",
    "vqa_score": "reward.args.path (a local LLaVA-style transformers VLM directory)",
}


@dataclass
class TurnScore:
    """Score of one image (one turn of one sample)."""

    # the reward's score (NaN = not applicable)
    score: float
    # strict verdict 0/1 (NaN when the score is NaN)
    strict: float
    # partial credit in [0, 1] (NaN when the score is NaN)
    partial: float
    # the reward's detail dict (plus the aggregation applied, if any)
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"score": _num(self.score), "strict": _num(self.strict), "partial": _num(self.partial)}


def _num(x: float) -> float | None:
    """JSON-friendly float (NaN -> None)."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def resolve_reward_spec(prompt_set: str, spec: RewardSpec | dict | None = None) -> RewardSpec:
    """The set's default spec with the user's spec merged in (same or empty name: args merged; else replaced)."""
    base = RewardSpec.coerce(copy.deepcopy(DEFAULT_REWARDS.get(prompt_set, {"name": ""})))
    if spec is None:
        user = RewardSpec()
    elif isinstance(spec, RewardSpec):
        user = copy.deepcopy(spec)
    else:
        user = RewardSpec.coerce(dict(spec))
    if not user.name or user.name == base.name:
        user.args = {**base.args, **dict(user.args or {})}
        user.name = base.name
    if not user.name:
        raise ConfigError(
            f"prompt set '{prompt_set}' has no default reward: set reward.name (see scripts/score.py --list)"
        )
    return user


def build_eval_reward(prompt_set: str, spec: RewardSpec | dict | None = None) -> tuple[Reward, RewardSpec]:
    """(reward, resolved spec); a missing user setting is reported with what to set."""
    resolved = resolve_reward_spec(prompt_set, spec)
    try:
        return build_reward(resolved), resolved
    except (ValueError, TypeError) as e:
        need = NEEDS.get(resolved.name)
        hint = f" For prompt set '{prompt_set}' set {need}." if need else ""
        raise ConfigError(
            f"cannot build reward '{resolved.name}' for prompt set '{prompt_set}': {e}.{hint}"
        ) from e


def describe_reward(reward: Reward, spec: RewardSpec) -> dict:
    """What to record beside every score: the reward, its arguments (no secrets), the detector/judge used."""
    args = {}
    for k, v in (spec.args or {}).items():
        args[k] = v if isinstance(v, str | int | float | bool | type(None) | list | dict) else repr(v)
    info: dict[str, Any] = {"name": spec.name, "serve": spec.serve, "args": args}
    if spec.url:
        info["url"] = spec.url
    detector = getattr(reward, "detector", None)
    if detector is not None:
        info["detector"] = f"{type(detector).__module__}.{type(detector).__qualname__}"
        for key in ("path", "url"):
            if getattr(detector, key, None):
                info[f"detector_{key}"] = getattr(detector, key)
    for key in ("url", "model_id", "path", "scale_max", "question"):
        if getattr(reward, key, None) is not None and key not in args:
            info[key] = getattr(reward, key)
    return info


def _batch_metadata(prompts: list[EvalPrompt]) -> list[dict]:
    """Metadata as the reward sees it: yes/no questions get an explicit answer instruction."""
    out = []
    for p in prompts:
        meta = dict(p.metadata)
        if meta.get("questions") and ("expected_answers" in meta or "dependencies" in meta):
            meta["questions"] = [q.rstrip() + YES_NO_SUFFIX for q in meta["questions"]]
        out.append(meta)
    return out


def aggregate_answers(meta: dict, details: dict, fallback: float) -> tuple[float, dict]:
    """Benchmark-specific aggregation of per-question judge answers -> (score, extra details).

    `details["answers"]` is vlm_judge's per-question list ({question, reply, score in [0, 1] or None}), in the
    order of `meta["questions"]`. Yes/no answers count as yes when score >= 0.5. Unparsable answers count as
    wrong for TIIF/DPG (the official scripts retry until parsable; we record how many there were) and make a
    WISE score NaN (a missing dimension cannot be weighted).
    """
    answers = details.get("answers")
    questions = meta.get("questions")
    if not isinstance(answers, list) or not questions or len(answers) != len(questions):
        return fallback, {}
    values = [a.get("score") for a in answers]
    unparsed = sum(v is None for v in values)
    if "expected_answers" in meta:
        ok = [
            v is not None and (v >= 0.5) == (exp == "yes")
            for v, exp in zip(values, meta["expected_answers"], strict=True)
        ]
        return sum(ok) / len(ok), {"aggregation": "tiif_yes_no", "correct": ok, "unparsed": unparsed}
    if "dependencies" in meta:
        ids = meta.get("proposition_ids") or list(range(1, len(values) + 1))
        raw = {pid: float(v is not None and v >= 0.5) for pid, v in zip(ids, values, strict=True)}
        final = {
            pid: 0.0 if any(raw.get(par, 1.0) == 0.0 for par in deps) else raw[pid]
            for pid, deps in zip(ids, meta["dependencies"], strict=True)
        }
        score = sum(final.values()) / len(final)
        return score, {
            "aggregation": "dpg_dependencies",
            "yes": raw,
            "after_dependencies": final,
            "unparsed": unparsed,
        }
    if "question_weights" in meta:
        weights = meta["question_weights"]
        if unparsed:
            return math.nan, {"aggregation": "weighted", "na": f"{unparsed} judge answer(s) unparsable"}
        score = sum(w * v for w, v in zip(weights, values, strict=True)) / sum(weights)
        names = meta.get("question_names") or [f"q{i}" for i in range(len(values))]
        return score, {"aggregation": "weighted", "per_question": dict(zip(names, values, strict=True))}
    return fallback, {}


def score_images(
    reward: Reward,
    prompts: list[EvalPrompt],
    images: list[Image.Image],
    strict_threshold: float = 1.0,
    images_1: list[Image.Image] | None = None,
    think_1: list[str] | None = None,
    think_2: list[str] | None = None,
) -> list[TurnScore]:
    """Score one image per prompt entry (entries may repeat a prompt for several samples)."""
    if len(images) != len(prompts):
        raise ValueError(f"score_images: {len(images)} images for {len(prompts)} prompts")
    batch = RewardBatch(
        prompts=[p.prompt for p in prompts],
        images=images,
        images_1=images_1,
        think_1=think_1,
        think_2=think_2,
        metadata=_batch_metadata(prompts),
    )
    out: RewardOutput = reward(batch)
    result = []
    for p, s, det in zip(prompts, out.scores.tolist(), out.details, strict=True):
        score, extra = aggregate_answers(p.metadata, det, float(s))
        det = {**det, **extra}
        if math.isnan(score):
            result.append(TurnScore(math.nan, math.nan, math.nan, det))
            continue
        strict = float(det["strict"]) if "strict" in det else float(score >= strict_threshold - 1e-9)
        partial = float(det["partial"]) if "partial" in det else score
        result.append(TurnScore(score, strict, partial, det))
    return result


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """uint8 [H, W, 3] tensor -> PIL RGB image."""
    return Image.fromarray(image.detach().cpu().numpy().astype("uint8")).convert("RGB")
