"""`vlm_judge`: a judge model behind an OpenAI-compatible /v1/chat/completions endpoint scores each image.

Each sample's question comes from `metadata["question"]` (or a list `metadata["questions"]`, averaged, as in
TIIF-style yes/no checklists) or else from `question` formatted with the prompt. Images travel as base64 PNG
data URLs. The reply is parsed by `judge_parse.parse_judge_score`; an unparsable reply gives NaN with the reply in
the details (never a silent 0). An API key, if needed, is read from the environment variable `api_key_env`.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from rewards.builtins.judge_parse import parse_judge_score
from rewards.contract import Reward, RewardBatch, RewardOutput
from rewards.serving.protocol import encode_image
from rewards.serving.transport import RemoteError, post_json

__all__ = ["VLMJudgeReward", "chat_endpoint"]

DEFAULT_QUESTION = (
    'Rate how well the image matches the prompt "{prompt}" on a scale from 0 to {scale_max}, considering '
    "consistency with the prompt, realism and aesthetics. Reply with 'Score: N/{scale_max}'."
)


def chat_endpoint(url: str) -> str:
    """The chat-completions URL for a base URL given with or without /v1 or the full path."""
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    return f"{url}/chat/completions" if url.endswith("/v1") else f"{url}/v1/chat/completions"


class VLMJudgeReward(Reward):
    """VLM judge over an OpenAI-compatible chat endpoint; robustly parsed score normalised to [0, 1]."""

    name = "vlm_judge"

    def __init__(
        self,
        url: str | None = None,
        model: str = "judge",
        question: str = DEFAULT_QUESTION,
        scale_max: float = 10.0,
        system: str | None = None,
        api_key_env: str | None = None,
        max_tokens: int = 512,
        temperature: float = 0.0,
        timeout_s: float = 120.0,
        retries: int = 3,
        concurrency: int = 4,
    ) -> None:
        super().__init__()
        if not url:
            raise ValueError("vlm_judge reward: set url to the judge server, e.g. http://127.0.0.1:8000/v1")
        self.url = chat_endpoint(url)
        self.model_id = model
        self.question = question
        self.scale_max = scale_max
        self.system = system
        self.api_key_env = api_key_env
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.timeout_s = timeout_s
        self.retries = retries
        self.concurrency = concurrency

    def _headers(self) -> dict[str, str]:
        if not self.api_key_env:
            return {}
        key = os.environ.get(self.api_key_env)
        if not key:
            raise RuntimeError(f"vlm_judge: environment variable {self.api_key_env} (api_key_env) is not set")
        return {"Authorization": f"Bearer {key}"}

    def ask(self, question: str, image_b64: str) -> str:
        """The judge's reply text to one question about one image."""
        messages: list[dict[str, Any]] = [{"role": "system", "content": self.system}] if self.system else []
        messages.append(
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image_b64}"}},
                    {"type": "text", "text": question},
                ],
            }
        )
        body = {
            "model": self.model_id,
            "messages": messages,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        reply = post_json(
            self.url,
            body,
            who=f"reward '{self.name}'",
            timeout_s=self.timeout_s,
            retries=self.retries,
            headers=self._headers(),
        )
        try:
            content = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as e:
            raise RemoteError(
                f"reward '{self.name}' at {self.url}: malformed response body (no choices[0].message.content)"
            ) from e
        if isinstance(content, list):  # some servers return content parts
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        return str(content or "")

    def _questions(self, prompt: str, meta: dict) -> list[str]:
        if isinstance(meta.get("questions"), list) and meta["questions"]:
            return [str(q) for q in meta["questions"]]
        if meta.get("question"):
            return [str(meta["question"])]
        return [self.question.format(prompt=prompt, scale_max=f"{self.scale_max:g}")]

    def score(self, batch: RewardBatch) -> RewardOutput:
        jobs = []  # (sample, question, image)
        encoded = [encode_image(im) for im in batch.images]
        for i, (prompt, meta) in enumerate(zip(batch.prompts, batch.metadata, strict=True)):
            jobs += [(i, q, encoded[i]) for q in self._questions(prompt, meta)]
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            replies = list(pool.map(lambda j: self.ask(j[1], j[2]), jobs))
        per_sample: list[list[tuple[str, str, float | None]]] = [[] for _ in range(len(batch))]
        for (i, q, _), reply in zip(jobs, replies, strict=True):
            per_sample[i].append((q, reply, parse_judge_score(reply, self.scale_max)))
        scores, details = [], []
        for answers in per_sample:
            values = [v for _, _, v in answers if v is not None]
            scores.append(sum(values) / len(values) if values else math.nan)
            details.append(
                {"answers": [{"question": q, "reply": r[:500], "score": v} for q, r, v in answers]}
            )
            if not values:
                details[-1]["na"] = "judge reply had no parsable score"
        return RewardOutput(scores=torch.tensor(scores, dtype=torch.float32), details=details)
