"""The research code's approach, on the same model, for the speed comparison and as a numerical reference.

As in the official BAGEL/IRG inferencer: one trajectory at a time (batch 1); three separately maintained
contexts (main, text-CFG = a deep copy of main taken before each text input, image-CFG = the texts only, each
text prefilled again into it); text generated on a deep copy of the context and then prefilled into the context
again; every denoising step evaluates each branch in its own forward call. It uses the same per-trajectory seeds
as `IRGEngine`, so with greedy text and Euler images both produce the same trajectories (up to float rounding).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from irg_rl.models import KVCache

from .cfg import cfg_active, combine_cfg
from .context import decode_latents, latent_grid, reencode, sample_seed, vit_input
from .engine import IRGEngine, _image_segment, _text_segment
from .image_sampler import ImageSample, initial_noise, needed_branches
from .sde import euler_step, gaussian_log_prob, sde_step_mean_std, timestep_grid
from .text_sampler import sample_text
from .trajectory import Trajectory, TrajectoryBatch

__all__ = ["research_generate"]


def _velocity(model, caches: list[KVCache | None], x, t: float, grid, turn) -> torch.Tensor:
    """One forward per branch (the research code's per-branch calls), then the same guidance maths."""
    main, text_neg, img_neg = caches
    v = model.predict_velocity(main, x, t, grid).float()
    if text_neg is None or not cfg_active(t, turn.cfg_interval):
        return v
    v_text = model.predict_velocity(text_neg, x, t, grid).float()
    v_img = model.predict_velocity(img_neg, x, t, grid).float() if img_neg is not None else None
    return combine_cfg(
        v, v_text, v_img, turn.cfg_text_scale, turn.cfg_img_scale, turn.cfg_renorm_type, turn.cfg_renorm_min
    )


def _sample_image(model, caches, turn, grid, ts, mask, noise_level, gen) -> ImageSample:
    n = grid[0] * grid[1]
    x = initial_noise(n, model.config.patch_latent_dim, [gen], model.device)
    rec = []
    for i in range(len(ts) - 1):
        t, t_next = float(ts[i]), float(ts[i + 1])
        v = _velocity(model, caches, x, t, grid, turn)
        if bool(mask[i]):
            mean, std = sde_step_mean_std(x, v, t, t_next, noise_level)
            x_next = mean + std * initial_noise(n, x.shape[-1], [gen], model.device)
            rec.append((i, x, x_next, gaussian_log_prob(x_next, mean, std)))
            x = x_next
        else:
            x = euler_step(x, v, t, t_next)
    idx = torch.tensor([r[0] for r in rec], dtype=torch.long)
    empty = x.new_zeros(1, 0, *x.shape[1:])
    return ImageSample(
        latents=x,
        step_index=idx,
        x_t=torch.stack([r[1] for r in rec], 1) if rec else empty,
        x_next=torch.stack([r[2] for r in rec], 1) if rec else empty,
        t=ts[:-1][idx].float(),
        t_next=ts[1:][idx].float(),
        logprobs=torch.stack([r[3] for r in rec], 1) if rec else x.new_zeros(1, 0),
    )


@torch.no_grad()
def research_generate(
    engine: IRGEngine,
    prompts: Sequence[str],
    metadata: Sequence[dict] | None = None,
    samples_per_prompt: int | None = None,
    mode: str = "euler",
    seed: int | None = None,
) -> TrajectoryBatch:
    """Same signature and output as `IRGEngine.generate`, computed the research code's way (slow)."""
    metadata = engine._check(prompts, metadata, mode)
    c, model = engine.cfg, engine.model
    if c.group_initial_noise:
        raise NotImplementedError(
            "research_generate: sampling.group_initial_noise is not implemented in the reference pipeline; "
            "compare against IRGEngine.generate with group_initial_noise: false"
        )
    if c.round2_branches > 1 and c.rounds == 2:
        raise NotImplementedError(
            "research_generate: sampling.round2_branches > 1 is not implemented in the reference pipeline; "
            "compare against IRGEngine.generate with round2_branches: 1"
        )
    G = samples_per_prompt or c.samples_per_prompt
    base = c.seed if seed is None else seed
    grid = latent_grid(model, c.resolution)
    ts = timestep_grid(c.steps, c.timestep_shift)
    masks = engine.sde_masks(mode)
    t0 = time.perf_counter()
    trajs, think_tokens, think_s, image_s = [], 0, 0.0, 0.0
    for p, prompt in enumerate(prompts):
        for g in range(G):
            s = sample_seed(base, p, g)
            gen = engine.generators([s])
            sys_ids, prompt_ids = engine.piece(c.system_prompt), engine.piece(prompt)
            gen_ctx, img_ctx = model.new_cache(1), model.new_cache(1)
            for ids in [sys_ids, prompt_ids]:
                if ids:
                    model.prefill_text(gen_ctx, [ids], logits=None)
                    model.prefill_text(img_ctx, [ids], logits=None)
            segs, cond_tokens, decoded = [], None, None
            for k in range(1, c.rounds + 1):
                turn = c.turn(k)
                use_text, use_img = needed_branches(turn)
                if k == 1:
                    text_ctx = _sys_only(model, sys_ids)
                else:
                    model.prefill_vae(gen_ctx, cond_tokens.to(model.device)[None], grid)
                    model.prefill_vit(gen_ctx, [vit_input(decoded[0], model)])
                    text_ctx = gen_ctx.clone()
                if c.think:
                    t1 = time.perf_counter()
                    sample = sample_text(
                        model, gen_ctx.clone(), turn.temperature, turn.max_think_tokens, gen, engine.stop
                    )[0]
                    model.prefill_text(gen_ctx, [sample.context_ids], logits=None)
                    model.prefill_text(img_ctx, [sample.context_ids], logits=None)
                    think_tokens += len(sample.token_ids)
                    think_s += time.perf_counter() - t1
                    text = engine.tokenizer.decode(sample.token_ids, skip_special_tokens=True)
                    segs.append(_text_segment(f"think_{k}", sample, text))
                caches = [
                    gen_ctx,
                    text_ctx if use_text else None,
                    img_ctx if (use_img and k == 2) else None,
                ]
                t2 = time.perf_counter()
                img = _sample_image(model, caches, turn, grid, ts, masks[k], c.noise_level, gen[0])
                decoded = decode_latents(engine.vae, model, img.latents, grid)
                image_s += time.perf_counter() - t2
                cond = None
                if k == 1 and c.rounds == 2:
                    cond_tokens = cond = reencode(engine.vae, model, decoded)[0].float().cpu()
                segs.append(_image_segment(f"image_{k}", img, decoded, 0, grid, cond))
            trajs.append(Trajectory(prompt, dict(metadata[p]), p, g, s, sys_ids, prompt_ids, segs))
    stats = {
        "total_s": time.perf_counter() - t0,
        "think_tokens": float(think_tokens),
        "denoise_steps": float(len(trajs) * c.steps * c.rounds),
        "trajectories": float(len(trajs)),
        "think_all_s": think_s,
        "image_all_s": image_s,
    }
    return TrajectoryBatch(trajs, c.to_dict(), mode, {}, stats)


def _sys_only(model, sys_ids: list[int]) -> KVCache:
    """A fresh cache holding the system piece only (turn 1's text-CFG context, recomputed as the research code)."""
    cache = model.new_cache(1)
    if sys_ids:
        model.prefill_text(cache, [sys_ids], logits=None)
    return cache
