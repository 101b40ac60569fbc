"""`ocr`: does the image show the text the prompt quotes? rapidocr_onnxruntime (PP-OCR ONNX weights in its wheel).

Target text: `metadata["text"]` if given, else every quoted span of the prompt ("...", “...”, '...', ‘...’),
joined by spaces. Both sides are lower-cased with whitespace removed; score = 1 - min(d, N) / N with d the edit
distance between recognised and target text and N the target length. NaN when the prompt asks for no text.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import torch

from rewards.contract import Reward, RewardBatch, RewardOutput

__all__ = ["OCRReward", "quoted_text", "edit_distance", "ocr_score"]

_QUOTES = re.compile(r'"([^"]+)"|“([^”]+)”|‘([^’]+)’|(?:(?<=\s)|^)\'([^\']+)\'(?=[\s.,;:!?]|$)')


def quoted_text(prompt: str) -> str | None:
    """The quoted spans of a prompt joined by spaces, or None if it quotes nothing."""
    spans = [next(g for g in m.groups() if g is not None) for m in _QUOTES.finditer(prompt)]
    spans = [s.strip() for s in spans if s.strip()]
    return " ".join(spans) if spans else None


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insert, delete, substitute all cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


def ocr_score(recognised: str, target: str) -> float:
    """1 - min(edit distance, N) / N on normalised text (N = normalised target length); in [0, 1]."""
    t, r = _norm(target), _norm(recognised)
    if not t:
        return math.nan
    return 1.0 - min(edit_distance(r, t), len(t)) / len(t)


class OCRReward(Reward):
    """Rendered-text accuracy: 1 - normalised edit distance between OCR output and the prompt's quoted text."""

    name = "ocr"

    def __init__(
        self, min_confidence: float = 0.0, threads: int = -1, engine_args: dict | None = None
    ) -> None:
        super().__init__()
        # recognised lines below this confidence are ignored
        self.min_confidence = min_confidence
        # onnxruntime intra-op threads per model (-1: onnxruntime's default, all cores)
        self.threads = threads
        # extra RapidOCR keyword arguments, e.g. {"det_limit_side_len": 960}
        self.engine_args = dict(engine_args or {})

    def load(self) -> Any:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as e:
            raise ImportError("ocr reward needs rapidocr_onnxruntime: pip install 'irg-rl[ocr]'") from e
        kwargs = dict(self.engine_args)
        if self.threads > 0:
            for part in ("det", "cls", "rec"):
                kwargs.setdefault(f"{part}_intra_op_num_threads", self.threads)
        return RapidOCR(**kwargs)

    def recognise(self, image) -> tuple[str, list[dict]]:
        """(text in reading order, per-line detail) for one PIL image."""
        result, _ = self.model(np.asarray(image.convert("RGB")))
        lines = []
        for box, text, conf in result or []:
            if float(conf) >= self.min_confidence:
                top = min(p[1] for p in box)
                left = min(p[0] for p in box)
                lines.append({"text": text, "conf": round(float(conf), 4), "top": top, "left": left})
        lines.sort(key=lambda x: (round(x["top"] / 10), x["left"]))
        return " ".join(x["text"] for x in lines), lines

    def score(self, batch: RewardBatch) -> RewardOutput:
        scores, details = [], []
        for prompt, img, meta in zip(batch.prompts, batch.images, batch.metadata, strict=True):
            target = meta.get("text") or quoted_text(prompt)
            if not target:
                scores.append(math.nan)
                details.append({"na": "prompt asks for no text (nothing quoted, no metadata 'text')"})
                continue
            seen, lines = self.recognise(img)
            scores.append(ocr_score(seen, target))
            details.append(
                {"target": target, "recognised": seen, "lines": [(x["text"], x["conf"]) for x in lines]}
            )
        return RewardOutput(scores=torch.tensor(scores, dtype=torch.float32), details=details)
