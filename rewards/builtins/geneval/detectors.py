"""Detector backends for the GenEval reward: any object with `detect(images, classes) -> list[list[Detection]]`.

- `Owlv2Detector`: transformers OWLv2 open-vocabulary detector loaded from a local directory.
- `HttpDetector`: a remote detector (e.g. the original mmdet Mask2Former wrapped in a small server) speaking
  POST {url}/detect {"images": [b64png], "classes": [[name, ...], ...]} ->
  {"detections": [[{"label", "score", "box": [x0, y0, x1, y1], "color"?, "mask"?}, ...], ...]}, where "mask" is a
  base64 PNG of the image's size whose non-zero pixels are the object (GenEval's Mask2Former gives masks; the
  colour classifier then judges only the object's pixels on a #999 background).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from PIL import Image

from rewards.builtins.geneval.rules import Detection
from rewards.serving.protocol import decode_image, encode_image
from rewards.serving.transport import RemoteError, post_json

__all__ = ["Detector", "Owlv2Detector", "HttpDetector", "build_detector", "encode_mask"]


class Detector(Protocol):
    def detect(self, images: list[Image.Image], classes: list[list[str]]) -> list[list[Detection]]:
        """Detections of the named classes, one list per image (classes[i] are asked of images[i])."""
        ...


class Owlv2Detector:
    """OWLv2 (transformers `Owlv2ForObjectDetection`) from a local path; queries are "a photo of a {class}"."""

    def __init__(
        self, path: str, device: str = "cpu", min_score: float = 0.05, template: str = "a photo of a {}"
    ):
        self.path = path
        self.device = device
        self.min_score = min_score
        self.template = template
        self._model: Any = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_model": None}

    def _load(self) -> tuple[Any, Any]:
        if self._model is None:
            from transformers import Owlv2ForObjectDetection, Owlv2Processor

            processor = Owlv2Processor.from_pretrained(self.path)
            model = Owlv2ForObjectDetection.from_pretrained(self.path).to(self.device).eval()
            self._model = (processor, model)
        return self._model

    def detect(self, images: list[Image.Image], classes: list[list[str]]) -> list[list[Detection]]:
        import torch

        processor, model = self._load()
        out = []
        for img, names in zip(images, classes, strict=True):
            if not names:
                out.append([])
                continue
            queries = [self.template.format(n) for n in names]
            inputs = processor(text=[queries], images=img.convert("RGB"), return_tensors="pt").to(self.device)
            with torch.no_grad():
                outputs = model(**inputs)
            # OWLv2 pads images to a square at the bottom/right: boxes in the padded frame are in original pixels
            side = max(img.size)
            res = processor.image_processor.post_process_object_detection(
                outputs=outputs, threshold=self.min_score, target_sizes=torch.tensor([[side, side]])
            )[0]
            out.append(
                [
                    Detection(
                        label=names[int(lab)], score=float(s), box=tuple(float(v) for v in box.tolist())
                    )
                    for s, lab, box in zip(res["scores"], res["labels"], res["boxes"], strict=True)
                ]
            )
        return out


class HttpDetector:
    """Remote detector over HTTP (JSON + base64 PNG); boxes in pixels; an optional colour per detection."""

    def __init__(self, url: str, timeout_s: float = 120.0, retries: int = 3):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = retries

    def detect(self, images: list[Image.Image], classes: list[list[str]]) -> list[list[Detection]]:
        endpoint = f"{self.url}/detect"
        reply = post_json(
            endpoint,
            {"images": [encode_image(i) for i in images], "classes": classes},
            who="geneval detector",
            timeout_s=self.timeout_s,
            retries=self.retries,
        )
        try:
            rows = reply["detections"]
            if not isinstance(rows, list) or len(rows) != len(images):
                raise ValueError(f"expected {len(images)} lists of detections")
            return [
                [
                    Detection(
                        label=str(d["label"]),
                        score=float(d["score"]),
                        box=tuple(float(v) for v in d["box"][:4]),
                        color=d.get("color"),
                        mask=_mask(d.get("mask"), img, f"image {i} detection {k}"),
                    )
                    for k, d in enumerate(row)
                ]
                for i, (row, img) in enumerate(zip(rows, images, strict=True))
            ]
        except (KeyError, TypeError, ValueError) as e:
            raise RemoteError(f"geneval detector at {endpoint}: malformed response body ({e})") from e


def encode_mask(mask: np.ndarray) -> str:
    """bool [H, W] -> the protocol's base64 PNG (0 / 255)."""
    return encode_image(Image.fromarray(np.asarray(mask).astype(np.uint8) * 255))


def _mask(data: Any, image: Image.Image, where: str) -> np.ndarray | None:
    if data is None:
        return None
    mask = np.asarray(decode_image(data, where).convert("L")) > 0
    if mask.shape != (image.height, image.width):
        raise ValueError(
            f"{where}: mask is {mask.shape[1]}x{mask.shape[0]}, the image {image.width}x{image.height}"
        )
    return mask


def build_detector(kind: str | Any, args: dict | None = None) -> Any:
    """'owlv2' | 'http' | 'package.module:factory' | an object with .detect -> a detector."""
    args = dict(args or {})
    if hasattr(kind, "detect"):
        return kind
    if kind == "owlv2":
        if "path" not in args:
            raise ValueError(
                "geneval: detector 'owlv2' needs detector_args.path (a local OWLv2 checkpoint directory)"
            )
        return Owlv2Detector(**args)
    if kind == "http":
        if "url" not in args:
            raise ValueError("geneval: detector 'http' needs detector_args.url (e.g. http://127.0.0.1:8080)")
        return HttpDetector(**args)
    if isinstance(kind, str) and ":" in kind:
        from rewards.registry import _import_path

        return _import_path(kind)(**args)
    raise ValueError(f"geneval: unknown detector {kind!r}; use 'owlv2', 'http' or 'package.module:factory'")
