"""`aesthetic`: LAION aesthetic predictor — an MLP head on the L2-normalised CLIP-L image embedding.

Head weights (torch or safetensors) in either published layout: the MLP of the improved predictor
(`layers.{0,2,4,6,7}.weight/bias`: in -> 1024 -> 128 -> 64 -> 16 -> 1, dropouts between) or a single linear layer
(`weight`, `bias`). The input size is read from the weights.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rewards.contract import Reward, RewardBatch, RewardOutput

__all__ = ["AestheticReward", "build_head"]

MLP_LAYERS = (0, 2, 4, 6, 7)


def build_head(sd: dict[str, torch.Tensor], path: str) -> nn.Module:
    """The aesthetic head matching a state dict (MLP or linear), weights loaded, eval mode."""
    if "weight" in sd and "bias" in sd and len(sd) == 2:
        head: nn.Module = nn.Linear(sd["weight"].shape[1], sd["weight"].shape[0])
        head.load_state_dict(sd)
        return head.eval()
    keys = {f"layers.{i}.{p}" for i in MLP_LAYERS for p in ("weight", "bias")}
    if set(sd) != keys:
        raise ValueError(
            f"aesthetic head {path}: unrecognised keys {sorted(sd)[:6]}; expected the MLP layout "
            f"{sorted(keys)[:4]}... or a single linear layer ('weight', 'bias')"
        )
    dims = [sd[f"layers.{i}.weight"].shape for i in MLP_LAYERS]
    mods: list[nn.Module] = []
    for n, (i, (out_d, in_d)) in enumerate(zip(MLP_LAYERS, dims, strict=True)):
        mods.append(nn.Linear(in_d, out_d))
        nxt = MLP_LAYERS[n + 1] if n + 1 < len(MLP_LAYERS) else None
        if nxt is not None and nxt - i == 2:
            mods.append(nn.Dropout(0.1))  # dropouts sit at indices 1, 3, 5 (identity in eval)
    head = nn.Sequential(*mods)
    head.load_state_dict({k.removeprefix("layers."): v for k, v in sd.items()})
    return head.eval()


class AestheticReward(Reward):
    """LAION aesthetic score: MLP head on the normalised open_clip (ViT-L-14) image embedding."""

    name = "aesthetic"

    def __init__(
        self,
        head: str | None = None,
        checkpoint: str | None = None,
        model_name: str = "ViT-L-14",
        model_config: str | None = None,
        device: str = "cpu",
        chunk: int = 32,
    ) -> None:
        super().__init__()
        if head is None or checkpoint is None:
            raise ValueError(
                "aesthetic reward: set head (MLP weights path) and checkpoint (CLIP ViT-L-14 weights)"
            )
        self.head = head
        self.checkpoint = checkpoint
        self.model_name = model_name
        self.model_config = model_config
        self.device = device
        self.chunk = chunk

    def load(self) -> Any:
        from rewards.builtins.open_clip_model import load_open_clip, read_state_dict

        model, preprocess, _ = load_open_clip(
            self.model_name, self.checkpoint, self.device, self.model_config
        )
        head = build_head(read_state_dict(self.head, "aesthetic head"), self.head).to(self.device)
        return model, preprocess, head

    def score(self, batch: RewardBatch) -> RewardOutput:
        model, preprocess, head = self.model
        out = []
        with torch.no_grad():
            for i in range(0, len(batch), self.chunk):
                imgs = torch.stack([preprocess(im.convert("RGB")) for im in batch.images[i : i + self.chunk]])
                emb = torch.nn.functional.normalize(model.encode_image(imgs.to(self.device)).float(), dim=-1)
                out.append(head(emb).squeeze(-1).cpu())
        scores = torch.cat(out)
        return RewardOutput(scores=scores, details=[{} for _ in scores])
