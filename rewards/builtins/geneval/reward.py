"""`geneval`: GenEval's rules over a pluggable detector, colours by CLIP on masked crops."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import torch

from rewards.builtins.geneval.color import ClipColorClassifier
from rewards.builtins.geneval.detectors import build_detector
from rewards.builtins.geneval.rules import GenEvalRules, check_metadata, evaluate
from rewards.contract import Reward, RewardBatch, RewardOutput

__all__ = ["GenEvalReward"]


class GenEvalReward(Reward):
    """GenEval rules (counts, colours, positions) over a detector (owlv2 | http | plug-in); strict or partial."""

    name = "geneval"

    def __init__(
        self,
        detector: Any = "owlv2",
        detector_args: dict | None = None,
        color: dict | None = None,
        mode: str = "partial",
        rules: dict | None = None,
    ) -> None:
        super().__init__()
        if mode not in ("strict", "partial"):
            raise ValueError(f"geneval reward: mode='{mode}' must be 'strict' or 'partial'")
        self.mode = mode
        self.rules = GenEvalRules(**(rules or {}))
        self.detector = build_detector(detector, detector_args)
        # open_clip colour classifier args (model_name, checkpoint, model_config); None: detector gives colours
        self.color = ClipColorClassifier(**color) if color is not None else None

    def score(self, batch: RewardBatch) -> RewardOutput:
        todo = [i for i, m in enumerate(batch.metadata) if m.get("include")]
        for i in todo:
            check_metadata(batch.metadata[i], where=f"sample {i} metadata")
        classes = [
            sorted({c["class"] for key in ("include", "exclude") for c in batch.metadata[i].get(key) or []})
            for i in todo
        ]
        found = self.detector.detect([batch.images[i] for i in todo], classes) if todo else []
        scores = [math.nan] * len(batch)
        details: list[dict] = [{"na": "metadata has no GenEval 'include' clauses"} for _ in range(len(batch))]
        for i, dets in zip(todo, found, strict=True):
            res = evaluate(batch.metadata[i], dets, self.rules, colors_of=self._colors_of(batch.images[i], i))
            scores[i] = res[self.mode]
            details[i] = {
                "strict": res["strict"],
                "partial": res["partial"],
                "clauses": [{"ok": r["ok"], "why": r["why"]} for r in res["clauses"]],
                "detections": [
                    {
                        "label": d.label,
                        "score": round(d.score, 4),
                        "box": [round(v, 1) for v in d.box],
                        "color": d.color,
                    }
                    for d in dets
                ],
            }
        return RewardOutput(scores=torch.tensor(scores, dtype=torch.float32), details=details)

    def _colors_of(self, image, i: int):
        """Colours of the detections a clause asks about: the detector's own, else the CLIP classifier's (only
        the top-`count` detections of a clause with a colour are ever classified, as in GenEval)."""

        def colors_of(found):
            if all(d.color is not None for d in found):
                return [d.color for d in found]
            if self.color is None:
                raise ValueError(
                    f"geneval reward: sample {i} asks for colours but the detector gives none; set color: "
                    "{model_name, checkpoint} for the CLIP colour classifier"
                )
            for d, c in zip(found, self.color.classify(image, found), strict=True):
                d.color = c
            return [d.color for d in found]

        return colors_of

    def config(self) -> dict:
        return {"mode": self.mode, "rules": asdict(self.rules)}
