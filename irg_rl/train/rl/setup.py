"""What the GRPO, DPO and NFT drivers share: the policy state (weights, LoRA or full, its reference, optimiser and
schedule, accelerate, atomic checkpoints in the SFT layout through `irg_rl.train.checkpointing`), composed with
the rollout client (`rollouts`: backend and weight sync) and the prompt stream (`prompts`: what is sampled).

Re-scoring goes through the accelerate-wrapped module (`PackedForward`) so DDP / DeepSpeed see the forward and
reduce gradients; `RescoreView` gives `irg_rl.inference.rescore` the model interface it expects on top of it.

DeepSpeed ZeRO-3 (full fine-tuning and LoRA; `irg_rl.distributed.zero3`): parameters are partitions, so
- weight export (`sync_weights`) and the checkpoint's model/ gather them chunk by chunk, collectively on every
  rank; every rank keeps the CPU copy for its own rollout backend, only rank 0 for the checkpoint;
- the forwards gather collectively: the trainers pad their micro-batches to the same count on every rank
  (`lockstep`), and the adapter-disabled reference runs through the wrapped module;
- a frozen-copy reference is partitioned too (`zero3.sharded_reference`), not held whole on every rank;
- rollout never runs the trainer's module: `engine: local` and `engine: ray` both sample with inference copies
  fed by `export_weights`, so per-rank generation lengths cannot desynchronise the ranks.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from irg_rl.config import to_yaml
from irg_rl.distributed.accelerator import PackedForward, make_accelerator
from irg_rl.distributed.weight_export import merged_state_dict
from irg_rl.distributed.zero3 import max_across, padded_schedule, sharded_reference, zero_stage
from irg_rl.models import BagelModel, PackedOutput
from irg_rl.models.checkpoint import load_checkpoint, save_state_checkpoint
from irg_rl.train import checkpointing as ckpt
from irg_rl.train.checkpointing import resolve_model_dir
from irg_rl.train.freeze import apply_freeze, apply_lora, trainable_summary
from irg_rl.train.grad_checkpointing import enable_grad_checkpointing
from irg_rl.train.resume import check_recipe_change, rescale_lr
from irg_rl.train.rl.prompt_stream import PromptStream, heldout_prompts, load_prompts
from irg_rl.train.rl.rollout_client import RolloutClient

log = logging.getLogger(__name__)

__all__ = [
    "resolve_model_dir",
    "RescoreView",
    "RLSetup",
    "load_prompts",
    "heldout_prompts",
    "PromptStream",
    "RolloutClient",
]


class RescoreView:
    """The `BagelModel` interface `rescore` needs, with `forward_packed` routed through the wrapped module."""

    def __init__(self, wrapped: nn.Module, bagel: BagelModel):
        self._wrapped, self._bagel = wrapped, bagel

    def forward_packed(self, seq) -> PackedOutput:
        ce, vel = self._wrapped(seq)
        return PackedOutput(ce, vel)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bagel, name)


def _start_model(source: str, resume_path: Path) -> BagelModel:
    """The run's starting weights (model.source), for a frozen-copy reference when resuming from `resume_path`."""
    try:
        return load_checkpoint(resolve_model_dir(source), dtype=torch.float32).model
    except (FileNotFoundError, ValueError) as err:
        raise ValueError(
            f"resuming from {resume_path} needs the starting weights model.source={source!r} for the frozen-copy "
            f"reference (KL / DPO is measured against the model the run started from): {err}"
        ) from err


@dataclass
class _Ref:
    # how the reference is computed: "adapter_disabled" | "frozen_copy" | "none"
    kind: str
    # the frozen copy when kind == "frozen_copy" (a RescoreView over a sharded engine under ZeRO-3)
    model: BagelModel | RescoreView | None = None


class RLSetup:
    """Builds policy, optimiser, accelerator, reference and rollout from a GRPO/DPO recipe."""

    def __init__(self, recipe, needs_reference: bool):
        from irg_rl.train.optim import make_optimizer, make_scheduler

        self.recipe = r = recipe
        if r.train.cpu_threads > 0:
            torch.set_num_threads(r.train.cpu_threads)
        self.acc = make_accelerator(r.train.mixed_precision, r.optim.grad_clip, auto="cuda_bf16")
        self.out = Path(r.train.output_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.resume_path = ckpt.resolve_resume(r.train.resume_from, self.out)
        src = self.resume_path / "model" if self.resume_path is not None else None
        if src is None:
            if not r.model.is_checkpoint():
                raise ValueError(
                    f"model.source={r.model.source!r} is a preset (random weights): RL starts from a trained "
                    f"checkpoint; set model.source to an SFT run directory or checkpoint"
                )
            src = resolve_model_dir(r.model.source)
        ck = load_checkpoint(src, dtype=torch.float32)
        if ck.tokenizer is None or ck.vae is None:
            raise ValueError(f"{src}: RL needs a checkpoint with tokenizer files and ae.safetensors")
        self.origin, self.tokenizer, self.vae, self.config = str(src), ck.tokenizer, ck.vae, ck.config
        bagel = ck.model.train()
        frozen_copy = None
        ref_kind = (
            r.reference
            if r.reference != "auto"
            else ("adapter_disabled" if r.freeze.lora.enabled else "frozen_copy")
        )
        if needs_reference and ref_kind == "frozen_copy":
            # the reference is the starting model: on resume that is model.source, not the checkpoint's weights
            ref_model = bagel if self.resume_path is None else _start_model(r.model.source, self.resume_path)
            frozen_copy = copy.deepcopy(ref_model).eval().requires_grad_(False)
        self.ref = _Ref(ref_kind if needs_reference else "none", frozen_copy)
        apply_freeze(bagel, r.freeze)
        if r.train.grad_checkpointing:
            # after the frozen copy was taken: the reference never runs a backward pass
            enable_grad_checkpointing(bagel)
        if r.freeze.lora.enabled:
            bagel = apply_lora(bagel, r.freeze.lora)
        self.bagel = bagel
        self.trainable, self.total = trainable_summary(bagel)
        params = [p for p in bagel.parameters() if p.requires_grad]
        self.opt = make_optimizer(params, r.optim)
        self.scheduler = make_scheduler(self.opt, r.optim, r.train.max_steps)
        self.module, self.opt = self.acc.prepare(PackedForward(bagel), self.opt)
        self.acc.register_for_checkpointing(self.scheduler)
        self.zero = zero_stage(self.acc)
        if self.zero == 3 and self.resume_path is not None:
            saved = int(ckpt.read_trainer_state(self.resume_path)["world_size"])
            if saved != self.acc.num_processes:
                raise ValueError(
                    f"{self.resume_path}: its ZeRO-3 shards were saved by {saved} processes, this run has "
                    f"{self.acc.num_processes}; resume with {saved}, or start a new run from the whole weights "
                    f"(model.source={self.resume_path / 'model'}, train.resume_from=never)"
                )
        if self.zero == 3 and frozen_copy is not None:
            ds_conf = self.acc.state.deepspeed_plugin.deepspeed_config
            self.ref.model = RescoreView(sharded_reference(PackedForward(frozen_copy), ds_conf), frozen_copy)
        self.view = RescoreView(self.module, bagel)
        self.step, self.history, self.changes = 0, [], []
        if self.resume_path is not None:
            self.changes = check_recipe_change(
                self.resume_path, r, r.train.allow_recipe_change, log=self.acc.print
            )
            self.acc.load_state(str(self.resume_path / "state"))
            state = ckpt.read_trainer_state(self.resume_path)
            self.step, self.history = int(state["step"]), list(state["history"])
            rescale_lr(self.opt, self.scheduler, self.changes, r.optim.lr)
            msg = f"resumed from step {self.step} (checkpoint {self.resume_path})"
            self.acc.print(msg)
            log.info(msg)
        self.rollouts = RolloutClient(r, bagel, self.config, self.tokenizer, self.vae, self.acc.device)
        self.rollouts.sync_weights(full=True)
        # the one generator of what is sampled (prompt draws, step seeds, SDE windows); saved with each checkpoint
        self.prompts = PromptStream(
            load_prompts(r.prompts, r.train.seed), r.train.seed, self.acc.process_index, self.step
        )
        if self.resume_path is not None:
            self._restore_rng(ckpt.read_data_state(self.resume_path))

    def _restore_rng(self, ranks: list[dict]) -> None:
        """Continue this rank's sampling generator where the checkpoint left it (bitwise resume)."""
        n, here = len(ranks), self.acc.num_processes
        if "bit_generator" not in ranks[0]:  # a checkpoint of an earlier version: the stream restarts
            self.acc.print(
                f"resume: {self.resume_path} holds no sampling generator state (an older checkpoint); prompts and "
                f"seeds restart from (train.seed, rank, step), so the run will not equal an uninterrupted one"
            )
            return
        if n != here:
            if not self.recipe.train.allow_recipe_change:
                raise ValueError(
                    f"{self.resume_path}: saved by {n} process(es), this run has {here}. Each rank draws its own "
                    f"prompts and seeds, so the sampling cannot continue exactly on another process count: resume "
                    f"with {n} processes, or set train.allow_recipe_change=true to restart the streams from "
                    f"(train.seed, rank, step)"
                )
            self.acc.print(
                f"resume: {n} -> {here} processes; sampling streams restart from (seed, rank, step)"
            )
            return
        self.prompts.restore(ranks[self.acc.process_index])

    # ---- reference --------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def reference(self):
        """Context in which re-scoring `self.reference_model()` gives reference log-probs (no grad)."""
        if self.ref.kind == "adapter_disabled":
            from peft.tuners.lora import LoraLayer

            layers = [m for m in self.bagel.modules() if isinstance(m, LoraLayer)]
            for m in layers:
                m.enable_adapters(False)
            try:
                with torch.no_grad():
                    # ZeRO-3 gathers through the wrapped module's hooks; elsewhere skip DDP's wrapper
                    yield self.view if self.zero == 3 else self.bagel
            finally:
                for m in layers:
                    m.enable_adapters(True)
        elif self.ref.kind == "frozen_copy":
            with torch.no_grad():
                yield self.ref.model
        else:
            raise RuntimeError("no reference model configured (kl_coef is 0)")

    # ---- ranks in lockstep -------------------------------------------------------------------------------

    def lockstep(self, n: int) -> int:
        """How many forward/backward passes every rank must run when this rank has `n`: the maximum over ranks
        (a collective). DDP and DeepSpeed reduce in each backward and ZeRO-3 gathers in each forward, so a rank
        with fewer passes pads with zero-weight dummies instead of leaving the others waiting."""
        return max_across(self.acc, n)

    def micro_batches(self, chunks: list[list[int]]) -> list[tuple[list[int], float]]:
        """This rank's micro-batches as (indices, weight), padded to the busiest rank's count with zero-weight
        repeats (`padded_schedule`), so every rank runs the same number of forward / backward passes."""
        return padded_schedule(chunks, self.lockstep(len(chunks)))

    def backward(self, loss: torch.Tensor, boundary: bool = True) -> None:
        """`acc.backward`, accumulating until `boundary`: DeepSpeed steps its optimiser inside the backward, which
        without this would happen at every micro-batch (its accumulation count is 1; the trainers own it)."""
        acc = self.acc
        if boundary or acc.state.deepspeed_plugin is None:
            acc.backward(loss)
            return
        acc.sync_gradients = False
        try:
            acc.backward(loss)
        finally:
            acc.sync_gradients = True

    # ---- checkpoints ------------------------------------------------------------------------------------

    def save(self) -> Path:
        """Atomic checkpoint `step-N`: model/ (LoRA merged, loader layout), state/ (optimiser, RNG), trainer.json."""
        acc, step = self.acc, self.step
        final, tmp = ckpt.open_step_dir(acc, self.out, step)
        # whole weights on rank 0 (under ZeRO-3 every rank takes part in the chunked gathers)
        state = merged_state_dict(self.bagel, gather=True, keep=acc.is_main_process)
        if acc.is_main_process:
            save_state_checkpoint(
                state, self.config, self.bagel.special, tmp / "model", tokenizer=self.tokenizer, vae=self.vae
            )
        acc.save_state(str(tmp / "state"))
        from accelerate.utils import gather_object

        ranks = gather_object([{"rng_step": step, **self.prompts.state()}])
        if acc.is_main_process:
            ckpt.write_json_atomic(tmp / "data_state.json", {"ranks": ranks})
            ckpt.write_json_atomic(
                tmp / "trainer.json", {"step": step, "world_size": acc.num_processes, "history": self.history}
            )
            (tmp / "recipe.yaml").write_text(to_yaml(self.recipe))
            ckpt.finalize(tmp, final, step)
            ckpt.prune(self.out, self.recipe.train.keep_last)
        acc.wait_for_everyone()
        return final

    def shutdown(self) -> None:
        self.rollouts.shutdown()
