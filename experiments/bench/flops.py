"""FLOPs of one two-round IRG trajectory, for the rollout benchmark's compute bound (docs/benchmarks_rollout.md).

Counted: the LLM's matmuls (2 FLOPs per multiply-add, one MoT expert per token) and attention scores/values,
for every token the engine runs:
- prefill of system + prompt (S + P tokens), think_1 (T1 decoded tokens, each also through the LM head);
- image_1: K denoising steps x its active CFG branches x n latent tokens (main branch after think_1, text-CFG
  branch after the system prompt only);
- image_1 as a condition: n clean VAE tokens + m ViT tokens (prefill), then think_2 (T2 decoded tokens);
- image_2: K steps x branches x n tokens (main; text-CFG: context up to image_1; image-CFG: no image_1).

    linear per token = 2 L (2 d^2 + 2 d kv hd + 3 d ff)       (q, o; k, v with kv heads of size hd; SwiGLU MLP)
    attention per query token = 4 L d k                      (QK^T and AV over k visible keys)
    LM head per decoded token = 2 d V

Not counted: the ViT encoder, the VAE encoder/decoder, sampling and CFG arithmetic (small next to the LLM at
BAGEL-7B dims except the VAE decoder, which runs twice per trajectory).
"""

from __future__ import annotations

from irg_rl.inference.cfg import cfg_active
from irg_rl.inference.engine_config import IRGSamplingConfig
from irg_rl.inference.image_sampler import needed_branches
from irg_rl.inference.sde import timestep_grid
from irg_rl.models.configs import BagelConfig

__all__ = ["trajectory_flops", "PEAK_BF16_FLOPS"]

# dense bf16 peak of an H100 / H200 SXM (the same tensor cores), FLOP/s
PEAK_BF16_FLOPS = 989e12


def _branch_steps(turn, steps: int, shift: float) -> tuple[int, int, int]:
    """(main, text-CFG, image-CFG) branch evaluations over the K steps of one image."""
    use_text, use_img = needed_branches(turn)
    ts = timestep_grid(steps, shift)[:-1]
    active = sum(cfg_active(float(t), turn.cfg_interval) for t in ts)
    return steps, active if use_text else 0, active if use_img else 0


def trajectory_flops(
    cfg: BagelConfig,
    sampling: IRGSamplingConfig,
    system_tokens: int,
    prompt_tokens: int,
    think_tokens: tuple[int, int],
) -> dict[str, float]:
    """FLOPs of one trajectory: {"linear", "attention", "lm_head", "total"} (see the module docstring)."""
    llm = cfg.llm
    d, L, hd = llm.hidden_size, llm.num_hidden_layers, llm.head_dim
    per_token = 2 * L * (2 * d * d + 2 * d * llm.num_key_value_heads * hd + 3 * d * llm.intermediate_size)
    attn = 4 * L * d  # x visible keys
    n = (sampling.resolution // cfg.latent_downsample) ** 2
    vit_side = min(cfg.vit.image_size, sampling.resolution) // cfg.vit.patch_size
    m = vit_side**2 if cfg.visual_und else 0
    S, P = system_tokens, prompt_tokens
    T1, T2 = think_tokens
    tokens, keys = 0, 0.0

    def run(q: int, ctx: int) -> None:  # q query tokens over ctx earlier keys, causal among themselves
        nonlocal tokens, keys
        tokens += q
        keys += q * ctx + q * (q + 1) / 2

    def decode(count: int, ctx: int) -> None:
        for i in range(count):
            run(1, ctx + i)

    run(S + P, 0)
    decode(T1, S + P)
    ctx1 = S + P + T1
    main1, text1, _ = _branch_steps(sampling.turn1, sampling.steps, sampling.timestep_shift)
    for _ in range(main1):
        tokens += n
        keys += n * (ctx1 + n)  # image tokens see each other fully
    for _ in range(text1):
        tokens += n
        keys += n * (S + n)
    run(n + m, ctx1)
    ctx_img = ctx1 + n + m
    decode(T2, ctx_img)
    ctx2 = ctx_img + T2
    main2, text2, img2 = _branch_steps(sampling.turn2, sampling.steps, sampling.timestep_shift)
    for count, ctx in ((main2, ctx2), (text2, ctx_img), (img2, S + P + T1 + T2)):
        tokens += count * n
        keys += count * n * (ctx + n)
    out = {
        "linear": float(per_token * tokens),
        "attention": float(attn * keys),
        "lm_head": float(2 * d * llm.vocab_size * (T1 + T2)),
    }
    out["total"] = sum(out.values())
    return out
