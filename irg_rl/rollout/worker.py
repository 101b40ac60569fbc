"""`RolloutWorker`: an inference copy of the policy plus the IRG engine; a Ray actor or an in-process object.

The worker is built from a picklable `WorkerSpec` (model config, tokenizer, VAE, sampling settings) with its
parameters on the meta device; the first `set_weights(version, state, full=True)` materialises them. Seeds are
global: a chunk of prompts starting at prompt `offset` samples with base seed `seed + 1000003 * offset`, which
gives every trajectory the seed it would have had in one un-chunked `generate` call (the engine seeds trajectory
k of prompt p with `seed + 1000003 * p + k`), so the split across workers never changes what is sampled.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from irg_rl.inference.engine import IRGEngine
from irg_rl.inference.engine_config import IRGSamplingConfig
from irg_rl.inference.trajectory import TrajectoryBatch
from irg_rl.models import BagelConfig, BagelModel
from irg_rl.models.tokenizer import special_token_ids

__all__ = ["SEED_STRIDE", "WorkerSpec", "SampleRequest", "RolloutWorker", "chunk_seed", "worker_device"]

# the engine's per-prompt seed stride (IRGSamplingConfig.seed documents seed + 1000003 * p + k)
SEED_STRIDE = 1000003


def chunk_seed(seed: int, offset: int) -> int:
    """Base seed of a chunk starting at global prompt `offset` (see module docstring)."""
    return seed + SEED_STRIDE * offset


@dataclass
class WorkerSpec:
    """What a rollout worker needs to build its inference copy (picklable: travels through Ray)."""

    # model architecture
    model_config: BagelConfig
    # tokenizer (PreTrainedTokenizerFast)
    tokenizer: Any
    # VAE (LatentCodec)
    vae: Any
    # engine settings (CFG, steps, SDE window size, noise level, temperatures)
    sampling: IRGSamplingConfig
    # torch threads in the worker
    threads: int = 1
    # device of the inference copy: "cpu" or "cuda"
    device: str = "cpu"
    # parameter dtype of the inference copy: float32 | bfloat16
    dtype: str = "float32"
    # weight_sync cuda_ipc: UUID of the trainer's GPU, which the worker then uses whatever its index here
    cuda_uuid: str = ""


def worker_device(spec: WorkerSpec) -> torch.device:
    """The device `spec` asks for; with `cuda_uuid`, the local index of that GPU."""
    if spec.cuda_uuid:
        from irg_rl.rollout.cuda_ipc import local_cuda_index

        return torch.device("cuda", local_cuda_index(spec.cuda_uuid))
    device = torch.device(spec.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"rollout worker (pid {os.getpid()}): device {spec.device!r} but no CUDA device is visible; "
                "give Ray workers a GPU with rollout.gpus_per_worker or set rollout.device: cpu"
            )
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
    return device


@dataclass
class SampleRequest:
    """One sampling call: G trajectories for each prompt."""

    # user prompts
    prompts: list[str]
    # one metadata dict per prompt (GenEval schema for ShapesWorld)
    metadata: list[dict]
    # trajectories per prompt (G)
    samples_per_prompt: int
    # base seed of this call (trajectory k of prompt p uses seed + 1000003 * p + k)
    seed: int
    # "sde" (recorded stochastic window, for training) or "euler" (deterministic images, for evaluation)
    mode: str = "sde"
    # first stochastic step of the window for this call (None: the sampling config's value)
    sde_window_start: int | None = None
    # sub-requests: (global prompt offset, prompts) chunks; filled by `split`
    offsets: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.metadata) != len(self.prompts):
            raise ValueError(
                f"SampleRequest: {len(self.metadata)} metadata dicts for {len(self.prompts)} prompts"
            )

    def chunk(self, start: int, stop: int) -> SampleRequest:
        """The sub-request of prompts [start, stop) with the same global seeds."""
        return SampleRequest(
            self.prompts[start:stop],
            self.metadata[start:stop],
            self.samples_per_prompt,
            chunk_seed(self.seed, start),
            self.mode,
            self.sde_window_start,
            [start],
        )

    def split(self, num_chunks: int) -> list[SampleRequest]:
        """Contiguous chunks of near-equal size (at most `num_chunks`, none empty), in prompt order."""
        n = len(self.prompts)
        k = max(1, min(num_chunks, n))
        bounds = [round(i * n / k) for i in range(k + 1)]
        return [self.chunk(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


class RolloutWorker:
    """Holds an inference copy of the policy; `set_weights` then `sample`."""

    def __init__(self, spec: WorkerSpec):
        torch.set_num_threads(spec.threads)
        self.spec = spec
        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[spec.dtype]
        self.dtype, self.device = dtype, worker_device(spec)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        with torch.device("meta"):
            model = BagelModel(spec.model_config, special_token_ids(spec.tokenizer))
        self.model = model.eval()
        vae = spec.vae
        # moved as a copy: in process (engine local) spec.vae is the trainer's own VAE
        if self.device.type != "cpu" or dtype != torch.float32:
            vae = copy.deepcopy(vae).to(device=self.device, dtype=dtype)
        self.engine = IRGEngine(self.model, spec.tokenizer, vae, copy.deepcopy(spec.sampling))
        self.version = -1
        self._group = None  # membership of the trainer's weight group (rollout.weight_sync: collective)
        self._staged: dict[str, torch.Tensor] = {}  # tensors received over CUDA-IPC, not yet loaded

    def set_weights(self, version: int, state: dict[str, torch.Tensor], full: bool) -> int:
        """Load weights of policy `version`; `full=False` updates a subset of tensors in place."""
        if self.version < 0 and not full:
            raise RuntimeError(
                "RolloutWorker.set_weights: the first weights a worker receives must be the full state dict"
            )
        state = {k: v.to(device=self.device, dtype=self.dtype) for k, v in state.items()}
        if full:
            missing, unexpected = self.model.load_state_dict(state, strict=False, assign=True)
            left = [n for n, t in [*self.model.named_parameters(), *self.model.named_buffers()] if t.is_meta]
            if unexpected or left:
                raise RuntimeError(
                    f"RolloutWorker.set_weights: unexpected tensors {unexpected[:5]}, never loaded {left[:5]}"
                )
        else:
            own = self.model.state_dict()
            unknown = [k for k in state if k not in own]
            if unknown:
                raise RuntimeError(f"RolloutWorker.set_weights: unknown tensors {unknown[:5]}")
            with torch.no_grad():
                for k, v in state.items():
                    own[k].copy_(v)
        self.version = int(version)
        return self.version

    # ---- collective weight sync (irg_rl/rollout/collective.py) ---------------------------------------

    def join_weight_group(self, info, rank: int) -> int:
        """Join a membership of the trainer's weight group as `rank` (blocks until every rank joined)."""
        from irg_rl.rollout.collective import WeightGroup

        self.leave_weight_group()
        if info.backend == "nccl" and self.device.type != "cuda":
            raise RuntimeError(
                "weight sync backend 'nccl' needs the rollout worker on CUDA (WorkerSpec.device)"
            )
        self._group = WeightGroup(info, rank)
        return rank

    def leave_weight_group(self) -> None:
        if self._group is not None:
            self._group.close()
            self._group = None

    def receive_weights(self, version: int, buckets: list, full: bool) -> int:
        """Receive the trainer's broadcast of policy `version` (layout `buckets`) and load it."""
        from irg_rl.rollout.collective import receive_state

        if self._group is None:
            raise RuntimeError("RolloutWorker.receive_weights: the worker is not in a weight group")
        return self.set_weights(version, receive_state(self._group, buckets), full)

    # ---- CUDA-IPC weight sync (irg_rl/rollout/cuda_ipc.py) ---------------------------------------------

    def receive_ipc(self, handle: tuple, bucket) -> int:
        """Copy one bucket out of the trainer's GPU buffer into the staged state; returns its tensor count."""
        from irg_rl.rollout.cuda_ipc import copy_bucket

        if self.device.type != "cuda":
            raise RuntimeError("RolloutWorker.receive_ipc: weight sync cuda_ipc needs the worker on CUDA")
        self._staged.update(copy_bucket(handle, bucket, self.device, self.dtype))
        return len(bucket.slots)

    def commit_ipc(self, version: int, full: bool) -> int:
        """Load the staged tensors as policy `version`."""
        staged, self._staged = self._staged, {}
        return self.set_weights(version, staged, full)

    def get_weights(self) -> dict[str, torch.Tensor]:
        """A CPU copy of the inference copy's state dict (for checks and tests)."""
        return {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}

    @torch.no_grad()
    def sample(self, request: SampleRequest) -> TrajectoryBatch:
        """Sample the request's trajectories; prompt indices are made global with the request's offset."""
        if self.version < 0:
            raise RuntimeError("RolloutWorker.sample called before set_weights: the worker has no weights")
        cfg = self.engine.cfg
        if request.sde_window_start is not None:
            cfg.sde_window_start = request.sde_window_start
        batch = self.engine.generate(
            request.prompts, request.metadata, request.samples_per_prompt, request.mode, request.seed
        )
        offset = request.offsets[0] if request.offsets else 0
        for t in batch.trajectories:
            t.prompt_index += offset
        batch.stats["policy_version"] = float(self.version)
        batch.stats["worker_pid"] = float(os.getpid())
        return batch

    def get_version(self) -> int:
        return self.version

    def pid(self) -> int:
        return os.getpid()
