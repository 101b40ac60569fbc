"""The batched two-round IRG engine, as the official IRG pipeline: prompt -> think_1 -> image_1 -> think_2 -> image_2.

Batched over prompts x samples per prompt. Prefix sharing: the system prompt is prefilled once and selected for
every prompt; each prompt is prefilled once and selected for its G samples. CFG branches are built from the
main context instead of being recomputed:
- turn 1: main = system, prompt, think_1; text-CFG = the system-only cache (selected, never recomputed);
- turn 2: main = everything up to think_2; text-CFG = a storage-sharing view of main taken before think_2;
  image-CFG = a fork of main taken before image_1, to which think_2's sampled ids are appended.
image_1's latents are not kept in the context: image_1 is decoded, re-encoded as clean VAE tokens and ViT tokens
and appended. The contexts of every branch are reported in `TrajectoryBatch.branch_segments`.
When `sampling.keep_pattern` is set, think_2's verdict (keep / revise / none, `verdict.py`) is recorded per
trajectory; with `sampling.on_keep: stop` the keep rows are left out of image_2's sampling (their caches are not
selected), their image_2 is image_1, and `stats` counts the stopped trajectories and the denoising steps saved.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from irg_rl.models import BagelModel
from irg_rl.models.tokenizer import special_token_ids

from .context import (
    Context,
    branch_seed,
    decode_latents,
    group_noise_seed,
    latent_grid,
    reencode,
    sample_seed,
    text_piece,
    vit_input,
)
from .engine_config import MODES, IRGSamplingConfig
from .image_sampler import ImageSample, needed_branches, sample_image
from .sde import sde_window_mask, timestep_grid
from .text_sampler import StopStrings, TextSample, sample_text
from .trajectory import ImageSegment, TextSegment, Trajectory, TrajectoryBatch
from .verdict import parse_verdicts

__all__ = ["IRGEngine"]


class IRGEngine:
    """`IRGEngine(model, tokenizer, vae, cfg).generate(prompts, ...) -> TrajectoryBatch`."""

    def __init__(self, model: BagelModel, tokenizer, vae, cfg: IRGSamplingConfig | None = None):
        self.model, self.tokenizer, self.vae = model, tokenizer, vae
        self.cfg = cfg if cfg is not None else IRGSamplingConfig()
        self.cfg.validate()
        if model.special is None:
            model.special = special_token_ids(tokenizer)
        self.special = model.special
        self.stop = StopStrings(tokenizer, self.cfg.stop_strings)
        self._window_gen = torch.Generator().manual_seed(self.cfg.seed)

    # ---- helpers shared with the research baseline ----------------------------------------------------

    def piece(self, text: str) -> list[int]:
        return text_piece(self.tokenizer, self.special, text)

    def generators(self, seeds: Sequence[int]) -> list[torch.Generator]:
        return [torch.Generator(device=self.model.device).manual_seed(s) for s in seeds]

    def sde_masks(self, mode: str) -> dict[int, torch.Tensor]:
        """Per turn: bool [steps], True = stochastic recorded step (all False in Euler mode)."""
        c = self.cfg
        out = {}
        for k in (1, 2):
            if mode == "sde" and k in c.sde_turns and c.sde_window_size > 0:
                out[k] = sde_window_mask(
                    c.steps, c.sde_window_size, c.sde_window_start, c.sde_window_max_start, self._window_gen
                )
            else:
                out[k] = torch.zeros(c.steps, dtype=torch.bool)
        return out

    def _check(self, prompts, metadata, mode) -> list[dict]:
        if mode not in MODES:
            raise ValueError(f"generate: mode must be one of {MODES}, got {mode!r}")
        if mode == "sde" and not self.cfg.noise_level > 0:
            raise ValueError("generate(mode='sde') needs sampling.noise_level > 0")
        if isinstance(prompts, str):
            raise TypeError("generate: prompts must be a list of strings, not one string")
        if not prompts:
            raise ValueError("generate: no prompts")
        metadata = [{} for _ in prompts] if metadata is None else list(metadata)
        if len(metadata) != len(prompts):
            raise ValueError(f"generate: {len(metadata)} metadata entries for {len(prompts)} prompts")
        return metadata

    # ---- the pipeline ----------------------------------------------------------------------------------

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[str],
        metadata: Sequence[dict] | None = None,
        samples_per_prompt: int | None = None,
        mode: str = "euler",
        seed: int | None = None,
    ) -> TrajectoryBatch:
        """Sample G trajectories per prompt. mode: "euler" (deterministic images) | "sde" (recorded window)."""
        metadata = self._check(prompts, metadata, mode)
        c, model = self.cfg, self.model
        G = samples_per_prompt or c.samples_per_prompt
        B2 = c.round2_branches if c.rounds == 2 else 1
        if G % B2:
            raise ValueError(
                f"generate: {G} samples per prompt is not a multiple of sampling.round2_branches={B2}"
            )
        G1 = G // B2  # first rounds per prompt
        base = c.seed if seed is None else seed
        P, N, N1 = len(prompts), len(prompts) * G, len(prompts) * G1
        seeds = [sample_seed(base, p, k) for p in range(P) for k in range(G)]
        gens = self.generators(seeds[::B2])  # round 1: the first trajectory of each branch set
        # one generator per sample, seeded per prompt: the G samples of a prompt draw identical starting noise
        start_gens = (
            self.generators([group_noise_seed(base, p) for p in range(P) for _ in range(G1)])
            if c.group_initial_noise
            else None
        )
        grid = latent_grid(model, c.resolution)
        ts = timestep_grid(c.steps, c.timestep_shift)
        masks = self.sde_masks(mode)
        stats: dict[str, float] = {"think_tokens": 0.0, "denoise_steps": 0.0, "trajectories": float(N)}
        branch_segments: dict[str, dict[str, list[str]]] = {}
        t0 = time.perf_counter()

        sys_ids = self.piece(c.system_prompt)
        prompt_ids = [self.piece(p) for p in prompts]
        if any(not ids for ids in prompt_ids):
            raise ValueError("generate: empty prompt string")
        sys_ctx = Context(model.new_cache(1))
        if sys_ids:
            sys_ctx.add_text(model, "system", [sys_ids])
        ctx = sys_ctx.select([0] * P)
        ctx.add_text(model, "prompt", prompt_ids)
        ctx = ctx.select(torch.arange(P).repeat_interleave(G1))

        thinks: dict[int, list[TextSample]] = {}
        think_texts: dict[int, list[str]] = {}  # decoded once: the verdict and the trajectories read them
        # round -> the rows whose image is sampled (absent: all); keep-stopped rows are left out of round 2
        sampled: dict[int, list[int]] = {}
        verdicts: list[str] | None = None
        images: dict[int, ImageSample] = {}
        decoded: dict[int, torch.Tensor] = {}
        cond_tokens = None
        img_neg = None
        for k in range(1, c.rounds + 1):
            turn = c.turn(k)
            use_text, use_img = needed_branches(turn)
            image_1 = decoded.get(1)
            if k == 2 and B2 > 1:  # each first round continued B2 times, with fresh per-trajectory streams
                expand = torch.arange(N1).repeat_interleave(B2)
                ctx, image_1 = ctx.select(expand), image_1[expand]
                gens = self.generators([branch_seed(s) for s in seeds])
                if start_gens is not None:
                    start_gens = self.generators(
                        [branch_seed(group_noise_seed(base, i // G)) for i in range(N)]
                    )
            if k == 2:
                if use_img:
                    img_neg = ctx.fork()  # everything except image_1: gets think_2 appended below
                cond_tokens = reencode(self.vae, model, image_1)
                ctx.add_vae(model, "image_1_vae", cond_tokens, grid)
                ctx.add_vit(model, "image_1_vit", [vit_input(im, model) for im in image_1])
            rows = N1 if k == 1 else N
            text_neg = (sys_ctx.select([0] * rows) if k == 1 else ctx.view()) if use_text else None
            if c.think:
                ts0 = time.perf_counter()
                # parity "irg": sample on a copy, then put the decoded text, tokenized again, into the context
                gen_cache = ctx.fork().cache if c.parity == "irg" else ctx.cache
                thinks[k] = sample_text(
                    model, gen_cache, turn.temperature, turn.max_think_tokens, gens, self.stop
                )
                think_texts[k] = [
                    self.tokenizer.decode(s.token_ids, skip_special_tokens=True) for s in thinks[k]
                ]
                if c.parity == "irg":
                    for s, text in zip(thinks[k], think_texts[k], strict=True):
                        s.context_ids = self.piece(text) or [self.special.im_start, self.special.im_end]
                    del gen_cache
                    ctx.add_text(model, f"think_{k}", [s.context_ids for s in thinks[k]])
                else:
                    ctx.segments.append(f"think_{k}")
                if img_neg is not None:
                    img_neg.add_text(model, f"think_{k}", [s.context_ids for s in thinks[k]])
                stats[f"think_{k}_s"] = time.perf_counter() - ts0
                stats["think_tokens"] += sum(len(s.token_ids) for s in thinks[k])
            branches = [ctx] + ([text_neg] if use_text else []) + ([img_neg] if use_img and k == 2 else [])
            names = ["main", "text_neg", "img_neg"][: len(branches)]
            branch_segments[f"image_{k}"] = {
                n: list(b.segments) for n, b in zip(names, branches, strict=True)
            }
            ti0 = time.perf_counter()
            if k == 2 and c.reads_verdict:
                verdicts = parse_verdicts(think_texts[2], c.keep_pattern, c.revise_pattern)
                if c.on_keep == "stop":
                    sampled[2] = [i for i, v in enumerate(verdicts) if v != "keep"]
            rows_k = sampled.get(k, list(range(rows)))
            if rows_k:
                images[k] = sample_image(
                    model,
                    [b.cache if len(rows_k) == rows else b.cache.select(rows_k) for b in branches],
                    turn,
                    grid,
                    ts,
                    masks[k],
                    c.noise_level,
                    [gens[i] for i in rows_k],
                    start_generators=None if start_gens is None else [start_gens[i] for i in rows_k],
                )
                rounding = "truncate" if c.parity == "irg" else "round"
                decoded[k] = decode_latents(self.vae, model, images[k].latents, grid, rounding)
            stats[f"image_{k}_s"] = time.perf_counter() - ti0
            stats["denoise_steps"] += len(rows_k) * c.steps
        if 2 in sampled:
            stats["image_2_stopped"] = float(N - len(sampled[2]))
            stats["denoise_steps_saved"] = float((N - len(sampled[2])) * c.steps)
        stats["total_s"] = time.perf_counter() - t0

        position = {k: {row: j for j, row in enumerate(rows_k)} for k, rows_k in sampled.items()}
        trajs = []
        for i in range(N):
            p, g = divmod(i, G)
            segs = []
            for k in range(1, c.rounds + 1):
                row = i // B2 if k == 1 else i  # round-1 segments are shared by a branch set
                if c.think:
                    segs.append(_text_segment(f"think_{k}", thinks[k][row], think_texts[k][row]))
                cond = cond_tokens[i].float().cpu() if (k == 1 and c.rounds == 2) else None
                if k in sampled and row not in position[k]:
                    segs.append(_kept_segment(f"image_{k}", next(s for s in segs if s.name == "image_1")))
                else:
                    j = position[k][row] if k in sampled else row
                    segs.append(_image_segment(f"image_{k}", images[k], decoded[k], j, grid, cond))
            trajs.append(
                Trajectory(
                    prompts[p],
                    dict(metadata[p]),
                    p,
                    g,
                    seeds[i],
                    sys_ids,
                    prompt_ids[p],
                    segs,
                    verdict=None if verdicts is None else verdicts[i],
                    stopped=2 in sampled and i not in position[2],
                )
            )
        return TrajectoryBatch(trajs, c.to_dict(), mode, branch_segments, stats)


def _text_segment(name: str, s: TextSample, text: str) -> TextSegment:
    return TextSegment(
        name=name,
        context_ids=list(s.context_ids),
        token_ids=torch.tensor(s.token_ids, dtype=torch.long),
        logprobs=torch.tensor(s.logprobs, dtype=torch.float32),
        text=text,
        stop_reason=s.stop_reason,
    )


def _kept_segment(name: str, first: ImageSegment) -> ImageSegment:
    """image_2 of a trajectory stopped by a keep verdict: image_1 exactly, no recorded SDE step."""
    n, P = first.latents.shape
    return ImageSegment(
        name=name,
        image=first.image,
        grid_hw=first.grid_hw,
        latents=first.latents,
        cond_tokens=None,
        step_index=torch.zeros(0, dtype=torch.long),
        x_t=torch.zeros(0, n, P),
        x_next=torch.zeros(0, n, P),
        t=torch.zeros(0),
        t_next=torch.zeros(0),
        logprobs=torch.zeros(0),
    )


def _image_segment(
    name: str, s: ImageSample, decoded: torch.Tensor, i: int, grid, cond: torch.Tensor | None
) -> ImageSegment:
    return ImageSegment(
        name=name,
        image=decoded[i],
        grid_hw=tuple(grid),
        latents=s.latents[i].float().cpu(),
        cond_tokens=cond,
        step_index=s.step_index.clone(),
        x_t=s.x_t[i].float().cpu(),
        x_next=s.x_next[i].float().cpu(),
        t=s.t.clone(),
        t_next=s.t_next.clone(),
        logprobs=s.logprobs[i].float().cpu(),
    )
