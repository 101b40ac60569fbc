"""Teacher-forced re-scoring of stored trajectories under the current weights, with gradient (GRPO / DPO).

Each trajectory becomes one packed sample laid out exactly like its main context, with the recorded SDE steps
inserted as noised latent blocks (`noise` attention: they see the causal prefix and themselves, nothing sees
them, and they do not advance RoPE), so every branch's velocity comes from one forward pass:
- main branch noise blocks go where the image was generated (after think_k);
- text-CFG noise blocks go where that branch's context ends: after the system piece (turn 1) and after
  image_1's clean VAE + ViT blocks, before think_2 (turn 2) - a prefix of the main context, at the same RoPE id;
- the image-CFG branch of turn 2 (system, prompt, think_1, think_2; no image_1) is a second packed sample.
Guidance is combined with `combine_cfg` exactly as in sampling and each step is scored with
`sde.sde_step_log_prob`; think tokens are scored with the same temperature as when they were sampled.

`rescore_noised` is the forward-process variant (DiffusionNFT): the same layout, but each image's noise blocks are
given noised copies of its clean latent `(x_t, t)` instead of the recorded SDE steps, and only the conditional
(main) branch is built: it returns the think log-probs and the raw velocity of every given block.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from irg_rl.models import BagelModel, PackedSequenceBuilder, patchify

from .cfg import cfg_active, combine_cfg
from .context import vit_input
from .engine_config import IRGSamplingConfig
from .image_sampler import needed_branches
from .sde import sde_step_log_prob
from .text_sampler import token_logprobs
from .trajectory import Trajectory, TrajectoryBatch

__all__ = ["RescoreOutput", "NoisedLatents", "build_rescoring_sequence", "rescore", "rescore_noised"]


@dataclass
class RescoreOutput:
    """Recomputed log-probs aligned with the recorded ones (`TrajectoryBatch.text_tensors` / `sde_logprobs`)."""

    # think name -> log-probs [N, L] (0 where the mask is False)
    text_logprobs: dict[str, torch.Tensor] = field(default_factory=dict)
    # think name -> mask [N, L] (bool)
    text_mask: dict[str, torch.Tensor] = field(default_factory=dict)
    # image name -> SDE-step log-probs [N, K]
    sde_logprobs: dict[str, torch.Tensor] = field(default_factory=dict)
    # image name -> SDE transition means [N, K, n, P] (float32; for the closed-form KL to a reference)
    sde_mean: dict[str, torch.Tensor] = field(default_factory=dict)
    # image name -> SDE transition stds [N, K]
    sde_std: dict[str, torch.Tensor] = field(default_factory=dict)
    # image name -> bool [N, K]: the step was recorded (False for a trajectory stopped before image_2; its
    # log-prob and mean are 0 and its std 1 there)
    sde_mask: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class NoisedLatents:
    """Noised copies of one generated image for the forward-process objective."""

    # x_t = (1 - t) x0 + t eps per copy [M, n, P] (float32)
    x_t: torch.Tensor
    # timestep of each copy [M]
    t: torch.Tensor


# per trajectory of a batch: image name -> its noised copies (an image left out is not trained)
NoisedBatch = list[dict[str, NoisedLatents]]


@dataclass
class _Layout:
    # (trajectory, image name, branch, recorded step) per noise block, in packed order
    blocks: list[tuple[int, str, str, int]] = field(default_factory=list)
    # (trajectory, think name, rows) per scored text piece, in packed order
    texts: list[tuple[int, str, int]] = field(default_factory=list)


def _noise_blocks(b, lay: _Layout, i: int, traj: Trajectory, name: str, branch: str, turn, only_guided: bool):
    seg = traj.segment(name)
    for j in range(seg.step_index.numel()):
        if only_guided and not cfg_active(float(seg.t[j]), turn.cfg_interval):
            continue
        b.add_vae_image(seg.x_t[j], seg.grid_hw, t=float(seg.t[j]), noised=True)
        lay.blocks.append((i, name, branch, j))


def _given_blocks(b, lay: _Layout, i: int, traj: Trajectory, name: str, noised: NoisedBatch) -> None:
    given = noised[i].get(name)
    if given is None:
        return
    grid = traj.segment(name).grid_hw
    for m in range(given.x_t.shape[0]):
        b.add_vae_image(given.x_t[m], grid, t=float(given.t[m]), noised=True)
        lay.blocks.append((i, name, "given", m))


def _think(b, lay: _Layout, i: int, traj: Trajectory, name: str, loss: bool) -> None:
    seg = traj.segment(name)
    b.add_text(seg.context_ids, loss=loss)
    if loss:
        lay.texts.append((i, name, len(seg.context_ids) - 1))


def build_rescoring_sequence(model: BagelModel, batch: TrajectoryBatch, noised: NoisedBatch | None = None):
    """-> (PackedSequence, layout) for every trajectory of the batch (see the module docstring).

    With `noised` (one dict per trajectory) the image blocks are the given noised copies, main branch only."""
    if noised is not None and len(noised) != len(batch):
        raise ValueError(f"noised latents for {len(noised)} trajectories, batch has {len(batch)}")
    cfg = IRGSamplingConfig.from_dict(batch.settings)
    mc = model.config
    b = PackedSequenceBuilder(
        model._special(), mc.max_latent_size, mc.vit_max_num_patch_per_side, mc.interpolate_pos
    )
    lay = _Layout()
    use1, _ = needed_branches(cfg.turn1)
    use2, img2 = needed_branches(cfg.turn2)
    if noised is not None:  # the forward-process objective is CFG-free: conditional branch only
        use1 = use2 = img2 = False

    def main_blocks(i: int, tr: Trajectory, name: str, turn) -> None:
        if noised is None:
            _noise_blocks(b, lay, i, tr, name, "main", turn, False)
        else:
            _given_blocks(b, lay, i, tr, name, noised)

    for i, tr in enumerate(batch.trajectories):
        if tr.system_ids:
            b.add_text(tr.system_ids)
        if use1:
            _noise_blocks(b, lay, i, tr, "image_1", "text_neg", cfg.turn1, True)
        b.add_text(tr.prompt_ids)
        if cfg.think:
            _think(b, lay, i, tr, "think_1", True)
        main_blocks(i, tr, "image_1", cfg.turn1)
        if cfg.rounds == 2:
            img1 = tr.segment("image_1")
            if img1.cond_tokens is None:
                raise ValueError(
                    f"trajectory {i}: image_1 has no cond_tokens (was it sampled with rounds=2?)"
                )
            b.add_vae_image(img1.cond_tokens, img1.grid_hw)
            x = vit_input(img1.image, model).cpu()
            p = mc.vit.patch_size
            b.add_vit_image(patchify(x, p), (x.shape[1] // p, x.shape[2] // p))
            if use2:
                _noise_blocks(b, lay, i, tr, "image_2", "text_neg", cfg.turn2, True)
            if cfg.think:
                _think(b, lay, i, tr, "think_2", True)
            main_blocks(i, tr, "image_2", cfg.turn2)
        b.end_sample()
        steps2 = tr.segment("image_2").t if cfg.rounds == 2 else torch.zeros(0)
        if img2 and cfg.rounds == 2 and any(cfg_active(float(t), cfg.turn2.cfg_interval) for t in steps2):
            if tr.system_ids:
                b.add_text(tr.system_ids)
            b.add_text(tr.prompt_ids)
            if cfg.think:
                _think(b, lay, i, tr, "think_1", False)
                _think(b, lay, i, tr, "think_2", False)
            _noise_blocks(b, lay, i, tr, "image_2", "img_neg", cfg.turn2, True)
            b.end_sample()
    return b.build(), lay


def _score_texts(
    out, lay: _Layout, batch: TrajectoryBatch, cfg: IRGSamplingConfig, device, res: RescoreOutput
):
    """Think-token log-probs into `res` (CE rows come in the order the scored pieces were added)."""
    if lay.texts:
        N = len(batch)
        row = 0
        per: dict[str, list[torch.Tensor | None]] = {}
        for i, name, rows in lay.texts:
            seg = batch[i].segment(name)
            n = seg.token_ids.numel()
            logits = out.ce_logits[row : row + n]
            turn = cfg.turn(int(name[-1]))
            lp = token_logprobs(logits, turn.temperature)
            labels = seg.token_ids.to(lp.device)
            per.setdefault(name, [None] * N)[i] = lp.gather(1, labels[:, None]).squeeze(1)
            row += rows
        for name, lps in per.items():
            _, _, mask = batch.text_tensors(name)
            padded = torch.zeros(mask.shape, dtype=torch.float32, device=device)
            for i, lp in enumerate(lps):
                padded[i, : lp.numel()] = lp
            res.text_logprobs[name], res.text_mask[name] = padded, mask.to(device)


def rescore(model: BagelModel, batch: TrajectoryBatch) -> RescoreOutput:
    """Log-probs of the batch's sampled think tokens and SDE steps under `model`'s current weights (with grad)."""
    cfg = IRGSamplingConfig.from_dict(batch.settings)
    seq, lay = build_rescoring_sequence(model, batch)
    out = model.forward_packed(seq.to(model.device))
    res = RescoreOutput()
    _score_texts(out, lay, batch, cfg, model.device, res)

    # SDE steps: split the velocities per noise block, then combine the branches as in sampling
    vel: dict[tuple[int, str, str, int], torch.Tensor] = {}
    if lay.blocks:
        row = 0
        for key in lay.blocks:
            n = batch[key[0]].segment(key[1]).x_t.shape[1]
            vel[key] = out.velocity[row : row + n]
            row += n
    for k in range(1, cfg.rounds + 1):
        name = f"image_{k}"
        turn = cfg.turn(k)
        K = max(tr.segment(name).step_index.numel() for tr in batch.trajectories)
        if K == 0:
            continue
        lps, means, stds = [], [], []
        for i, tr in enumerate(batch.trajectories):
            seg = tr.segment(name)
            row_lp, row_mean, row_std = [], [], []
            for j in range(seg.step_index.numel()):
                t, t_next = float(seg.t[j]), float(seg.t_next[j])
                v = vel[(i, name, "main", j)][None]
                if (i, name, "text_neg", j) in vel:
                    neg_t = vel[(i, name, "text_neg", j)][None]
                    neg_i = vel.get((i, name, "img_neg", j))
                    v = combine_cfg(
                        v,
                        neg_t,
                        None if neg_i is None else neg_i[None],
                        turn.cfg_text_scale,
                        turn.cfg_img_scale,
                        turn.cfg_renorm_type,
                        turn.cfg_renorm_min,
                    )
                x = seg.x_t[j][None].to(model.device)
                x_next = seg.x_next[j][None].to(model.device)
                lp, mean, std = sde_step_log_prob(x, v, t, t_next, cfg.noise_level, x_next)
                row_lp.append(lp[0])
                row_mean.append(mean[0])
                row_std.append(std.reshape(-1)[0])
            # a trajectory stopped before image_2 recorded no step: padded rows, masked by `sde_mask`
            for _ in range(K - len(row_lp)):
                row_lp.append(torch.zeros((), device=model.device))
                row_mean.append(torch.zeros(seg.x_t.shape[1:], device=model.device))
                row_std.append(torch.ones((), device=model.device))
            lps.append(torch.stack(row_lp))
            means.append(torch.stack(row_mean))
            stds.append(torch.stack(row_std))
        res.sde_logprobs[name] = torch.stack(lps)
        res.sde_mean[name] = torch.stack(means)
        res.sde_std[name] = torch.stack(stds)
        res.sde_mask[name] = batch.sde_mask(name).to(model.device)
    return res


def rescore_noised(
    model: BagelModel, batch: TrajectoryBatch, noised: NoisedBatch
) -> tuple[RescoreOutput, list[dict[str, torch.Tensor]]]:
    """Think-token log-probs (in the `RescoreOutput`; no SDE fields) and the conditional velocity of every given
    noised copy under `model`'s weights, with grad: per trajectory, image name -> velocity `[M, n, P]`."""
    cfg = IRGSamplingConfig.from_dict(batch.settings)
    seq, lay = build_rescoring_sequence(model, batch, noised)
    out = model.forward_packed(seq.to(model.device))
    res = RescoreOutput()
    _score_texts(out, lay, batch, cfg, model.device, res)
    rows: dict[tuple[int, str], list[torch.Tensor]] = {}
    row = 0
    for i, name, _, _ in lay.blocks:
        n = noised[i][name].x_t.shape[1]
        rows.setdefault((i, name), []).append(out.velocity[row : row + n])
        row += n
    vel: list[dict[str, torch.Tensor]] = [{} for _ in range(len(batch))]
    for (i, name), vs in rows.items():
        vel[i][name] = torch.stack(vs)
    return res, vel
