"""`vqa_score`: VQAScore-style P("Yes") from a transformers vision-language model loaded from a local path.

Supported family: LLaVA-style image-text-to-text models (`AutoModelForImageTextToText` + `AutoProcessor`, e.g.
llava-hf checkpoints). The question is put in the processor's chat template when it has one, else in
`question_template` (which must contain the processor's image token). The score is the next-token probability of
the answer word ("Yes"), summed over its spellings that are single tokens. Other families (T5-decoder VQAScore
CLIP-FlanT5, Qwen2-VL with its own vision inputs) are not implemented and raise NotImplementedError.
"""

from __future__ import annotations

from typing import Any

import torch

from rewards.contract import Reward, RewardBatch, RewardOutput

__all__ = ["VQAScoreReward"]

DEFAULT_QUESTION = 'Does this figure show "{prompt}"? Please answer yes or no.'
SUPPORTED = ("llava",)


class VQAScoreReward(Reward):
    """VQAScore: P("Yes") to 'Does this figure show "{prompt}"?' from a local LLaVA-style transformers VLM."""

    name = "vqa_score"

    def __init__(
        self,
        path: str | None = None,
        question: str = DEFAULT_QUESTION,
        question_template: str = "USER: {image_token}\n{question} ASSISTANT:",
        answer: str = "Yes",
        device: str = "cpu",
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        if path is None:
            raise ValueError("vqa_score reward: set path to a local transformers VLM directory (LLaVA-style)")
        self.path = path
        self.question = question
        self.question_template = question_template
        self.answer = answer
        self.device = device
        self.dtype = dtype

    def load(self) -> Any:
        from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

        cfg = AutoConfig.from_pretrained(self.path)
        if cfg.model_type not in SUPPORTED:
            raise NotImplementedError(
                f"vqa_score: model_type '{cfg.model_type}' at {self.path} is not supported yet (supported: "
                f"{', '.join(SUPPORTED)}); serve it behind an OpenAI-compatible endpoint and use vlm_judge instead"
            )
        processor = AutoProcessor.from_pretrained(self.path)
        model = AutoModelForImageTextToText.from_pretrained(self.path, dtype=getattr(torch, self.dtype))
        model = model.to(self.device).eval()
        tok = processor.tokenizer
        ids = set()
        for spelling in (self.answer, " " + self.answer):
            enc = tok(spelling, add_special_tokens=False)["input_ids"]
            if len(enc) == 1:
                ids.add(enc[0])
        if not ids:
            raise ValueError(
                f"vqa_score: answer '{self.answer}' is not a single token for the tokenizer at {self.path}"
            )
        return processor, model, sorted(ids)

    def _text(self, processor: Any, prompt: str) -> str:
        question = self.question.format(prompt=prompt)
        if getattr(processor, "chat_template", None):
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
            return processor.apply_chat_template(messages, add_generation_prompt=True)
        token = getattr(processor, "image_token", "<image>")
        return self.question_template.format(image_token=token, question=question)

    def score(self, batch: RewardBatch) -> RewardOutput:
        processor, model, yes_ids = self.model
        scores, details = [], []
        with torch.no_grad():
            for prompt, img in zip(batch.prompts, batch.images, strict=True):
                inputs = processor(
                    images=img.convert("RGB"), text=self._text(processor, prompt), return_tensors="pt"
                )
                logits = model(**inputs.to(self.device)).logits[0, -1].float()
                p = torch.softmax(logits, -1)[yes_ids].sum()
                scores.append(float(p))
                details.append({"p_yes": round(float(p), 6)})
        return RewardOutput(scores=torch.tensor(scores, dtype=torch.float32), details=details)
