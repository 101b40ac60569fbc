"""The wire format shared by the HTTP reward client and server: JSON with base64 PNG images, never pickle.

Request  (POST /score): {"reward": name, "batch": {"prompts": [...], "images": [b64png, ...],
                          "images_1": [...] | null, "think_1": [...] | null, "think_2": [...] | null,
                          "metadata": [{...}, ...]}}
Response (200):        {"reward": name, "scores": [float | null, ...], "details": [{...}, ...]}  (null = NaN)
Error    (4xx/5xx):    {"error": message}
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import torch
from PIL import Image

from rewards.contract import RewardBatch, RewardOutput

__all__ = [
    "ProtocolError",
    "encode_image",
    "decode_image",
    "encode_batch",
    "decode_batch",
    "encode_output",
    "decode_output",
    "to_jsonable",
]


class ProtocolError(ValueError):
    """A request or response body does not follow the protocol; the message names the field."""


def encode_image(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def decode_image(data: Any, where: str) -> Image.Image:
    if not isinstance(data, str):
        raise ProtocolError(f"{where}: expected a base64 PNG string, got {type(data).__name__}")
    try:
        img = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
        img.load()
    except Exception as e:  # noqa: BLE001 - any decode failure is a malformed field
        raise ProtocolError(f"{where}: not a valid base64-encoded image ({e})") from e
    return img.convert("RGB")


def encode_batch(batch: RewardBatch) -> dict:
    def imgs(values):
        return None if values is None else [encode_image(x) for x in values]

    return {
        "prompts": list(batch.prompts),
        "images": imgs(batch.images),
        "images_1": imgs(batch.images_1),
        "think_1": batch.think_1,
        "think_2": batch.think_2,
        "metadata": to_jsonable(batch.metadata),
    }


def _str_list(obj: dict, key: str, optional: bool) -> list[str] | None:
    value = obj.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ProtocolError(f"batch.{key}: expected a list of strings")
    return value


def decode_batch(obj: Any) -> RewardBatch:
    if not isinstance(obj, dict):
        raise ProtocolError("batch: expected a JSON object")
    images = obj.get("images")
    if not isinstance(images, list):
        raise ProtocolError("batch.images: expected a list of base64 PNG strings")
    images_1 = obj.get("images_1")
    if images_1 is not None and not isinstance(images_1, list):
        raise ProtocolError("batch.images_1: expected a list of base64 PNG strings or null")
    metadata = obj.get("metadata") or []
    if not isinstance(metadata, list) or not all(isinstance(m, dict) for m in metadata):
        raise ProtocolError("batch.metadata: expected a list of objects")
    try:
        return RewardBatch(
            prompts=_str_list(obj, "prompts", optional=False),
            images=[decode_image(x, f"batch.images[{i}]") for i, x in enumerate(images)],
            images_1=None
            if images_1 is None
            else [decode_image(x, f"batch.images_1[{i}]") for i, x in enumerate(images_1)],
            think_1=_str_list(obj, "think_1", optional=True),
            think_2=_str_list(obj, "think_2", optional=True),
            metadata=metadata,
        )
    except (ValueError, TypeError) as e:
        if isinstance(e, ProtocolError):
            raise
        raise ProtocolError(f"batch: {e}") from e


def to_jsonable(x: Any) -> Any:
    """Plain JSON values from details (tensors, numpy, NaN -> null, tuples -> lists, unknown -> str)."""
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [to_jsonable(v) for v in x]
    if isinstance(x, torch.Tensor):
        return to_jsonable(x.tolist())
    if hasattr(x, "tolist") and not isinstance(x, str):  # numpy arrays and scalars
        return to_jsonable(x.tolist())
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else x
    if x is None or isinstance(x, bool | int | str):
        return x
    return str(x)


def encode_output(name: str, out: RewardOutput) -> dict:
    return {"reward": name, "scores": to_jsonable(out.scores.tolist()), "details": to_jsonable(out.details)}


def decode_output(obj: Any, n: int) -> RewardOutput:
    if not isinstance(obj, dict):
        raise ProtocolError("response: expected a JSON object with 'scores' and 'details'")
    scores, details = obj.get("scores"), obj.get("details")
    if not isinstance(scores, list) or not all(s is None or isinstance(s, int | float) for s in scores):
        raise ProtocolError("response.scores: expected a list of numbers or nulls")
    if len(scores) != n:
        raise ProtocolError(f"response.scores: {len(scores)} scores for a batch of {n}")
    if details is None:
        details = [{} for _ in scores]
    if not isinstance(details, list) or len(details) != n or not all(isinstance(d, dict) for d in details):
        raise ProtocolError(f"response.details: expected a list of {n} objects")
    values = [math.nan if s is None else float(s) for s in scores]
    return RewardOutput(scores=torch.tensor(values, dtype=torch.float32), details=details)
