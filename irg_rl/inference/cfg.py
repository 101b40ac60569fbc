"""Classifier-free guidance maths of BAGEL / IRG: serial text-then-image guidance with renormalisation.

    v_text = v_text_neg + s_text (v - v_text_neg)          (renormalised per token for "text_channel")
    v_out  = v_img_neg + s_img (v_text - v_img_neg)        (when s_img > 1)
    "global" / "channel": v_out *= clamp(|v| / |v_out|, renorm_min, 1), the norm over the whole image (global)
    or per token (channel).
As in BAGEL, nothing is guided unless s_text > 1 (the image branch is only used together with text guidance),
and guidance is active on a step whose time t satisfies lo < t <= hi. All maths in float32; "global" takes the
norm per sample (BAGEL ran batch 1, so its whole-tensor norm is a per-image norm).
"""

from __future__ import annotations

import torch

__all__ = ["cfg_active", "combine_cfg", "uses_text_branch", "uses_img_branch"]


def cfg_active(t: float, interval: list[float] | tuple[float, float]) -> bool:
    """Whether guidance applies at time t: lo < t <= hi."""
    return float(interval[0]) < float(t) <= float(interval[1])


def uses_text_branch(text_scale: float) -> bool:
    return text_scale > 1.0


def uses_img_branch(text_scale: float, img_scale: float) -> bool:
    return text_scale > 1.0 and img_scale > 1.0


def _norm(x: torch.Tensor, per_token: bool) -> torch.Tensor:
    """x [B, n, P] -> L2 norm [B, n, 1] per token, or [B, 1, 1] over each sample."""
    if per_token:
        return torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return torch.linalg.vector_norm(x.flatten(1), dim=1).reshape(-1, *([1] * (x.ndim - 1)))


def combine_cfg(
    v: torch.Tensor,
    v_text_neg: torch.Tensor | None,
    v_img_neg: torch.Tensor | None,
    text_scale: float,
    img_scale: float,
    renorm_type: str = "global",
    renorm_min: float = 0.0,
) -> torch.Tensor:
    """Guided velocity. v, v_text_neg, v_img_neg: `[B, n, P]` (negatives None when unused) -> float32 `[B, n, P]`.

    Differentiable (used both in sampling and in teacher-forced re-scoring).
    """
    v = v.float()
    if not uses_text_branch(text_scale):
        return v
    if v_text_neg is None:
        raise ValueError(f"combine_cfg: text scale {text_scale} > 1 needs the text-CFG branch velocity")
    use_img = uses_img_branch(text_scale, img_scale)
    if use_img and v_img_neg is None:
        raise ValueError(f"combine_cfg: image scale {img_scale} > 1 needs the image-CFG branch velocity")
    vt = v_text_neg.float() + text_scale * (v - v_text_neg.float())
    if renorm_type == "text_channel":
        scale = (_norm(v, True) / (_norm(vt, True) + 1e-8)).clamp(min=renorm_min, max=1.0)
        vt = vt * scale
        return v_img_neg.float() + img_scale * (vt - v_img_neg.float()) if use_img else vt
    out = v_img_neg.float() + img_scale * (vt - v_img_neg.float()) if use_img else vt
    if renorm_type not in ("global", "channel"):
        raise ValueError(
            f"combine_cfg: renorm_type must be global | channel | text_channel, got {renorm_type!r}"
        )
    per_token = renorm_type == "channel"
    scale = (_norm(v, per_token) / (_norm(out, per_token) + 1e-8)).clamp(min=renorm_min, max=1.0)
    return out * scale
