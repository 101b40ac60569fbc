"""The evaluation prompt type shared by every benchmark loader, and the loaders' error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["EvalPrompt", "PromptSetError"]


class PromptSetError(ValueError):
    """A prompt file could not be read; the message names the file, the row/key and how to fix it."""


@dataclass
class EvalPrompt:
    """One evaluation prompt, whatever benchmark it came from."""

    # stable id inside its set (used as the output folder name; filesystem-safe)
    id: str
    # the text given to the model
    prompt: str
    # what the scorer needs (GenEval include/exclude, judge questions, expected answers, dependencies, ...)
    metadata: dict[str, Any] = field(default_factory=dict)
    # category for per-category breakdowns (GenEval tag, WISE subcategory, TIIF type, ...)
    category: str = ""

    def to_dict(self) -> dict:
        return {"id": self.id, "prompt": self.prompt, "category": self.category, "metadata": self.metadata}
