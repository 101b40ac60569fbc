"""The IRGL supervised trainer: accelerate (+ DeepSpeed ZeRO-2/3), token-mean CE + flow-matching MSE, EMA,
atomic checkpoints with exact resume, wandb and a progress bar with per-mode losses.

Launch: `accelerate launch --config_file recipes/accelerate/<cfg>.yaml scripts/sft.py --config RECIPE [k=v ...]`
(or plain `python scripts/sft.py ...` for one process). One optimiser step = `train.grad_accum` packed
micro-batches per process; every loss is a mean over all target tokens of the step on all processes.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from irg_rl.config import to_container, to_yaml
from irg_rl.data.modes import MODES
from irg_rl.distributed.accelerator import PackedForward, make_accelerator
from irg_rl.distributed.weight_export import merged_state_dict
from irg_rl.distributed.zero3 import zero_stage
from irg_rl.models.checkpoint import save_state_checkpoint
from irg_rl.train import checkpointing as ckpt
from irg_rl.train.freeze import apply_freeze, apply_lora, trainable_summary
from irg_rl.train.grad_checkpointing import enable_grad_checkpointing
from irg_rl.train.optim import make_optimizer, make_scheduler
from irg_rl.train.resume import check_recipe_change, rescale_lr
from irg_rl.train.sft.config import SFTRecipe
from irg_rl.train.sft.conversation_packing import MicroBatch, PackingOptions, build_micro_batch
from irg_rl.train.sft.ema import EMA
from irg_rl.train.sft.losses import ce_per_token, mse_per_token, normalised_loss
from irg_rl.train.sft.sampler import MixedSampler
from irg_rl.train.sft.setup import RAW_MODEL_FILE, ModelSampleEncoder, build_components
from irg_rl.train.tracking import init_wandb, wandb_mode


@dataclass
class StepStats:
    """Sums over one optimiser step (local to a rank until reduced)."""

    # per-mode [ce_sum, ce_count, mse_sum, mse_count]
    per_mode: torch.Tensor = field(default_factory=lambda: torch.zeros(len(MODES), 4, dtype=torch.float64))
    # tokens packed
    tokens: int = 0
    # samples dropped for length
    dropped: int = 0

    def add(self, mb: MicroBatch, ce_tok: torch.Tensor | None, mse_tok: torch.Tensor | None) -> None:
        """ce_tok [Nc] per-token CE and mse_tok [Nm] per-token MSE of the micro-batch, in sample order."""
        ce_parts = ce_tok.split(mb.ce_counts) if ce_tok is not None else [None] * len(mb.modes)
        mse_parts = mse_tok.split(mb.mse_counts) if mse_tok is not None else [None] * len(mb.modes)
        for mode, c, m, nc, nm in zip(
            mb.modes, ce_parts, mse_parts, mb.ce_counts, mb.mse_counts, strict=True
        ):
            row = self.per_mode[MODES.index(mode)]
            if nc:
                row[0] += float(c.sum())
                row[1] += nc
            if nm:
                row[2] += float(m.sum())
                row[3] += nm
        self.tokens += mb.num_tokens
        self.dropped += mb.dropped


class SFTTrainer:
    """Builds everything from a recipe; `run()` trains and returns the per-step loss history."""

    def __init__(self, recipe: SFTRecipe):
        self.recipe = recipe
        r, t = recipe, recipe.train
        if t.cpu_threads > 0:
            torch.set_num_threads(t.cpu_threads)
        self.acc = make_accelerator(r.train.mixed_precision, r.optim.grad_clip, r.train.grad_accum)
        from accelerate.utils import set_seed

        set_seed(t.seed)
        self.out = Path(t.output_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.resume_path = ckpt.resolve_resume(t.resume_from, self.out)
        comp = build_components(r, self.resume_path)
        self.components = comp
        bagel = comp.model
        apply_freeze(bagel, r.freeze)
        if r.freeze.lora.enabled:
            bagel = apply_lora(bagel, r.freeze.lora)
        if t.grad_checkpointing:
            enable_grad_checkpointing(bagel)
        bagel.packed_attention = t.packed_attention
        self.bagel = bagel
        self.trainable, self.total = trainable_summary(bagel)
        self.encoder = ModelSampleEncoder(
            comp.tokenizer, comp.vae, comp.config, image_resize=recipe.data.image_resize
        )
        d = r.data
        self.pack_opts = PackingOptions.from_data(d, r.loss.timestep_shift, t.seed)
        self.sampler = MixedSampler(
            [d.root, *d.extra_roots], d.mode_weights, self.acc.process_index, self.acc.num_processes, t.seed,
            d.mandatory_modes, d.shuffle_files, d.on_error, d.check_images,
        )  # fmt: skip
        params = [p for p in bagel.parameters() if p.requires_grad]
        opt = make_optimizer(params, r.optim)
        self.scheduler = make_scheduler(opt, r.optim, t.max_steps)
        self.universal = False
        ds = self.acc.state.deepspeed_plugin
        if self.resume_path is not None and ds is not None:
            saved_world = ckpt.read_trainer_state(self.resume_path)["world_size"]
            if saved_world != self.acc.num_processes:
                # ZeRO shards of another process count load only through a universal checkpoint
                ds.deepspeed_config["checkpoint"] = {"load_universal": True}
                self.universal = True
        model = PackedForward(bagel)
        self.model, self.opt = self.acc.prepare(model, opt)
        self.acc.register_for_checkpointing(self.scheduler)
        self.zero = zero_stage(self.acc)
        self.ema = EMA(self.acc.unwrap_model(self.model).bagel, t.ema_decay) if t.ema_decay > 0 else None
        self.step = 0
        self.history: list[dict] = []
        self._resume()

    # -- resume -------------------------------------------------------------------------------------------

    def _resume(self) -> None:
        path = self.resume_path
        if path is None:
            return
        changes = check_recipe_change(
            path, self.recipe, self.recipe.train.allow_recipe_change, log=self.acc.print
        )
        state_dir = path / "state"
        if self.universal:
            scratch = self.out / f".universal-{path.name}"
            if self.acc.is_main_process:
                ckpt.to_universal(state_dir, scratch)
            self.acc.wait_for_everyone()
            state_dir = scratch
        self.acc.load_state(str(state_dir))
        if self.universal:
            self.acc.wait_for_everyone()
            if self.acc.is_main_process:
                shutil.rmtree(state_dir, ignore_errors=True)
        state = ckpt.read_trainer_state(path)
        self.step, self.history = int(state["step"]), list(state["history"])
        rescale_lr(self.opt, self.scheduler, changes, self.recipe.optim.lr)
        self.sampler.load_state_dict(ckpt.read_data_state(path), self.step)
        if self.ema is not None:
            same = state["world_size"] == self.acc.num_processes
            f = path / "state" / f"ema_rank{self.acc.process_index if same else 0}.pt"
            if self.zero == 3 and not same:
                raise NotImplementedError(
                    f"{path}: resuming ZeRO-3 EMA shards on {self.acc.num_processes} processes (saved with "
                    f"{state['world_size']}) is not implemented; resume with the same process count"
                )
            self.ema.load_state_dict(torch.load(f, map_location="cpu", weights_only=True))
        self.acc.print(f"resumed from step {self.step} (checkpoint {path})")

    # -- one step -----------------------------------------------------------------------------------------

    def _loss_switches(self) -> tuple[float, float]:
        ls = self.recipe.loss
        ce_on = ls.disable_ce_from_step < 0 or self.step < ls.disable_ce_from_step
        mse_on = ls.disable_mse_from_step < 0 or self.step < ls.disable_mse_from_step
        return (ls.ce_weight if ce_on else 0.0), (ls.mse_weight if mse_on else 0.0)

    def train_step(self) -> dict:
        acc, ga = self.acc, self.recipe.train.grad_accum
        cfg = self.components.config
        batches = [
            build_micro_batch(
                self.sampler,
                self.encoder,
                self.pack_opts,
                cfg.max_latent_size,
                cfg.vit_max_num_patch_per_side,
                cfg.interpolate_pos,
            )
            for _ in range(ga)
        ]
        counts = torch.tensor(
            [sum(b.num_ce for b in batches), sum(b.num_mse for b in batches)], device=acc.device
        )
        g_ce, g_mse = (int(x) for x in acc.reduce(counts, reduction="sum").tolist())
        w_ce, w_mse = self._loss_switches()
        world = acc.num_processes
        stats = StepStats()
        for mb in batches:
            with acc.accumulate(self.model):
                ce_logits, vel = self.model(mb.seq.to(acc.device))
                loss = sum(p.sum() for p in (ce_logits, vel) if p is not None) * 0.0
                ce_tok = mse_tok = None
                if ce_logits is not None:
                    labels = mb.seq.ce_labels.to(acc.device)
                    ce_tok = ce_per_token(ce_logits, labels)
                    loss = loss + normalised_loss(ce_tok.sum(), g_ce, world, ga, w_ce)
                if vel is not None:
                    target = mb.seq.mse_targets.to(acc.device)
                    mse_tok = mse_per_token(vel, target)
                    loss = loss + normalised_loss(mse_tok.sum(), g_mse, world, ga, w_mse)
                acc.backward(loss)
                if acc.sync_gradients and self.zero == 0 and self.recipe.optim.grad_clip > 0:
                    acc.clip_grad_norm_(self.model.parameters(), self.recipe.optim.grad_clip)
                self.opt.step()
                self.opt.zero_grad(set_to_none=True)
                stats.add(
                    mb,
                    None if ce_tok is None else ce_tok.detach().cpu(),
                    None if mse_tok is None else mse_tok.detach().cpu(),
                )
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(acc.unwrap_model(self.model).bagel)
        self.step += 1
        return self._reduce_stats(stats, w_ce, w_mse)

    def _reduce_stats(self, stats: StepStats, w_ce: float, w_mse: float) -> dict:
        acc = self.acc
        flat = torch.cat(
            [stats.per_mode.flatten(), torch.tensor([stats.tokens, stats.dropped], dtype=torch.float64)]
        )
        flat = acc.reduce(flat.to(acc.device), reduction="sum").cpu()
        per_mode = flat[:-2].view(len(MODES), 4)
        tot = per_mode.sum(0)
        ce = float(tot[0] / tot[1]) if tot[1] > 0 else float("nan")
        mse = float(tot[2] / tot[3]) if tot[3] > 0 else float("nan")
        out = {
            "step": self.step,
            "ce": ce,
            "mse": mse,
            "loss": (w_ce * ce if tot[1] > 0 else 0.0) + (w_mse * mse if tot[3] > 0 else 0.0),
            "tokens": int(flat[-2]),
            "dropped": int(flat[-1]),
            "lr": float(self.scheduler.get_last_lr()[0]),
        }
        for i, mode in enumerate(MODES):
            if per_mode[i, 1] > 0:
                out[f"ce/{mode}"] = float(per_mode[i, 0] / per_mode[i, 1])
            if per_mode[i, 3] > 0:
                out[f"mse/{mode}"] = float(per_mode[i, 2] / per_mode[i, 3])
        return out

    # -- checkpoints --------------------------------------------------------------------------------------

    def save(self) -> Path:
        """Write checkpoint `step-<step>` atomically (all ranks take part)."""
        acc, step = self.acc, self.step
        final, tmp = ckpt.open_step_dir(acc, self.out, step)
        inner = acc.unwrap_model(self.model)
        raw = acc.get_state_dict(self.model)  # gathered on every rank under ZeRO-3 (collective)
        ema_full = None
        if self.ema is not None and self.zero == 3:
            with self.ema.swapped_into(inner.bagel):
                ema_full = acc.get_state_dict(self.model)
        merged = self._merged_lora_weights(inner.bagel)
        if acc.is_main_process:
            self._export_model(tmp / "model", inner, raw, ema_full, merged)
        acc.save_state(str(tmp / "state"))
        if self.ema is not None:
            torch.save(self.ema.state_dict(), tmp / "state" / f"ema_rank{acc.process_index}.pt")
        from accelerate.utils import gather_object

        data_states = gather_object([self.sampler.state_dict()])
        if acc.is_main_process:
            ckpt.write_json_atomic(tmp / "data_state.json", {"ranks": data_states})
            ckpt.write_json_atomic(
                tmp / "trainer.json",
                {"step": step, "world_size": acc.num_processes, "history": self.history},
            )
            (tmp / "recipe.yaml").write_text(to_yaml(self.recipe))
        acc.wait_for_everyone()
        if acc.is_main_process:
            ckpt.finalize(tmp, final, step)
            ckpt.prune(self.out, self.recipe.train.keep_last)
        acc.wait_for_everyone()
        return final

    def _merged_lora_weights(self, bagel) -> tuple[dict, dict] | None:
        """(raw, EMA) whole weights with LoRA deltas merged, or None without LoRA. A collective on every rank
        (under ZeRO-3 the parameters are gathered chunk by chunk); only the main process keeps the tensors."""
        if not any(".lora_" in name for name, _ in bagel.named_parameters()):
            return None
        keep = self.acc.is_main_process
        raw = merged_state_dict(bagel, gather=True, keep=keep)
        if self.ema is None:
            return raw, raw
        with self.ema.swapped_into(bagel):
            return raw, merged_state_dict(bagel, gather=True, keep=keep)

    def _export_model(
        self,
        path: Path,
        inner: PackedForward,
        raw: dict,
        ema_full: dict | None,
        merged: tuple[dict, dict] | None,
    ) -> None:
        """Loader layout: ema.safetensors = EMA weights (what inference loads), model.safetensors = raw."""
        from safetensors.torch import save_file

        def strip(state: dict) -> dict:
            return {k[len("bagel.") :]: v for k, v in state.items() if k.startswith("bagel.")}

        bagel = inner.bagel
        if merged is not None:  # LoRA: both files hold the merged weights in the original names
            raw_sd, ema_sd = merged
        else:
            raw_sd = strip(raw)
            if self.ema is None:
                ema_sd = raw_sd
            elif ema_full is not None:
                ema_sd = strip(ema_full)
            else:
                with self.ema.swapped_into(bagel):
                    ema_sd = {k: v.detach().cpu().clone() for k, v in strip(inner.state_dict()).items()}
        c = self.components
        save_state_checkpoint(ema_sd, c.config, self.encoder.special, path, tokenizer=c.tokenizer, vae=c.vae)
        save_file({k: v.detach().cpu().contiguous() for k, v in raw_sd.items()}, str(path / RAW_MODEL_FILE))

    # -- loop -----------------------------------------------------------------------------------------------

    def run(self) -> list[dict]:
        r, t, acc = self.recipe, self.recipe.train, self.acc
        run = None
        mode = wandb_mode(r.log.wandb_mode)
        if acc.is_main_process:
            (self.out / "recipe.yaml").write_text(to_yaml(r))
        if acc.is_main_process and mode != "disabled":
            run = init_wandb(self.out, r.log.project, r.log.run_name or self.out.name, to_container(r), mode)
        acc.print(
            f"SFT: {self.trainable:,} / {self.total:,} parameters trainable; weights from {self.components.origin}; "
            f"{acc.num_processes} process(es), ZeRO stage {self.zero}, mixed precision {acc.mixed_precision}"
        )
        bar = None
        if acc.is_main_process and r.log.progress_bar:
            from tqdm.auto import tqdm

            bar = tqdm(total=t.max_steps, initial=self.step, desc="sft", dynamic_ncols=True)
        steps_this_run = 0
        t0, tok_window = time.perf_counter(), 0
        while self.step < t.max_steps:
            stats = self.train_step()
            self.history.append({k: stats[k] for k in ("step", "loss", "ce", "mse")})
            steps_this_run += 1
            tok_window += stats["tokens"]
            dt = time.perf_counter() - t0
            stats["tokens_per_s"] = tok_window / max(dt, 1e-9)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{stats['loss']:.4f}", ce=f"{stats['ce']:.3f}", mse=f"{stats['mse']:.3f}",
                                tok_s=f"{stats['tokens_per_s']:.0f}")  # fmt: skip
            if self.step % t.log_every == 0 or self.step == t.max_steps:
                if run is not None:
                    run.log({f"train/{k}": v for k, v in stats.items() if k != "step"}, step=self.step)
                if bar is None:
                    keys = ("step", "loss", "ce", "mse", "tokens_per_s")
                    acc.print(json.dumps({k: round(stats[k], 4) for k in keys}), flush=True)
            done = self.step >= t.max_steps
            if done or (t.save_every > 0 and self.step % t.save_every == 0):
                self.save()
            if t.stop_after_steps and steps_this_run >= t.stop_after_steps:
                break
        if bar is not None:
            bar.close()
        if self.sampler.stats.skipped:
            acc.print(
                f"skipped {self.sampler.stats.skipped} malformed rows; first: {self.sampler.stats.errors[:3]}"
            )
        if run is not None:
            run.finish()
        if acc.is_main_process:
            ckpt.write_json_atomic(self.out / "history.json", self.history)
        acc.wait_for_everyone()
        return self.history


def train(recipe: SFTRecipe) -> list[dict]:
    """Run one SFT stage; returns the per-step history of {step, loss, ce, mse}."""
    return SFTTrainer(recipe).run()


def main(argv: list[str] | None = None) -> None:
    from irg_rl.config import parse_cli

    recipe = parse_cli(SFTRecipe, argv, description="Two-stage IRGL supervised training (one stage per run).")
    history = train(recipe)
    if history and int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"final_step": history[-1]["step"], "final_loss": history[-1]["loss"]}))
