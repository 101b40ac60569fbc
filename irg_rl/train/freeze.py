"""Freezing parts of a BAGEL model by parameter-name group, and PEFT LoRA adapters chosen by name pattern.

Groups (BAGEL parameter names): `vae` (never trained), `llm` (`language_model.*`), `vit` (`vit_model.*`,
`connector.*`), `und_expert` (LLM weights without `_moe_gen`), `gen_expert` (`*_moe_gen` LLM weights and the
latent path: `vae2llm`, `llm2vae`, `time_embedder`). Fixed sin-cos tables are buffers, never parameters.
"""

from __future__ import annotations

import re

from torch import nn

from irg_rl.train.sections import FreezeSection, LoraSection

_LATENT_PATH = ("vae2llm.", "llm2vae.", "time_embedder.", "latent_pos_embed.")


def param_group(name: str) -> set[str]:
    """The freeze groups a parameter name belongs to."""
    name = name.replace("base_layer.", "")
    groups: set[str] = set()
    if name.startswith(("vae_model.", "vae.")):
        groups.add("vae")
    if name.startswith(("vit_model.", "connector.", "vit_pos_embed.")):
        groups.add("vit")
    if name.startswith("language_model."):
        groups.add("llm")
        groups.add("gen_expert" if "_moe_gen" in name else "und_expert")
    if name.startswith(_LATENT_PATH):
        groups.add("gen_expert")
    return groups


def apply_freeze(model: nn.Module, cfg: FreezeSection) -> dict[str, int]:
    """Set `requires_grad` from the freeze options (the VAE is always frozen); returns frozen counts by group."""
    frozen_groups = {"vae"}
    for g in ("llm", "vit", "und_expert", "gen_expert"):
        if getattr(cfg, g):
            frozen_groups.add(g)
    counts: dict[str, int] = {}
    for name, p in model.named_parameters():
        hit = param_group(name) & frozen_groups
        if hit:
            p.requires_grad_(False)
            for g in hit:
                counts[g] = counts.get(g, 0) + p.numel()
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(
            "freeze: every parameter is frozen; unset some of freeze.llm/vit/und_expert/gen_expert"
        )
    return counts


def apply_lora(model: nn.Module, cfg: LoraSection) -> nn.Module:
    """Inject LoRA adapters into modules whose full name matches `cfg.target_modules`; only adapters train."""
    from peft import LoraConfig, inject_adapter_in_model

    pattern = re.compile(cfg.target_modules)
    matches = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and pattern.fullmatch(n)]
    if not matches:
        linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][:8]
        raise ValueError(
            f"freeze.lora.target_modules={cfg.target_modules!r} matches no nn.Linear module; "
            f"names look like: {', '.join(linear)}"
        )
    lcfg = LoraConfig(
        r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=cfg.target_modules
    )
    return inject_adapter_in_model(lcfg, model)


def trainable_summary(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
