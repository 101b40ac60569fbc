"""`RolloutConfig`: where trajectories are sampled and scored, and how weights reach the samplers (`rollout:`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from irg_rl.config import ConfigError

__all__ = [
    "ENGINES",
    "WEIGHT_SYNCS",
    "COLLECTIVE_BACKENDS",
    "REWARD_PLACEMENTS",
    "WORKER_DEVICES",
    "WORKER_DTYPES",
    "RolloutConfig",
    "worker_placement",
]

# rollout backends
ENGINES = ("ray", "local")
# weight broadcast paths ("nccl" = "collective" with collective_backend nccl; "cuda_ipc": workers on the
# trainer's GPU map its weight buffers)
WEIGHT_SYNCS = ("object_store", "collective", "nccl", "cuda_ipc")
# backends of the collective weight broadcast ("auto": nccl when workers have GPUs, else gloo)
COLLECTIVE_BACKENDS = ("auto", "gloo", "nccl")
# where the composite reward runs
REWARD_PLACEMENTS = ("local", "ray")
# where a rollout worker's inference copy lives ("auto": see RolloutConfig.worker_device)
WORKER_DEVICES = ("auto", "cpu", "cuda")
# parameter dtype of the inference copy ("auto": bfloat16 on CUDA, float32 on CPU)
WORKER_DTYPES = ("auto", "float32", "bfloat16")


@dataclass
class RolloutConfig:
    """Rollout placement (the `rollout:` section of an RL recipe)."""

    # "ray": rollout worker actors sample; "local": the trainer process samples (no Ray; for debugging)
    engine: str = "local"
    # Ray cluster to join: "" starts a local Ray instance, "auto" / "ray://host:10001" joins an existing cluster
    address: str = ""
    # CPUs given to a Ray instance started here (0 = Ray's default: every core)
    ray_num_cpus: int = 0
    # rollout worker actors, each holding an inference copy of the policy
    num_workers: int = 1
    # CPUs reserved by each rollout worker
    cpus_per_worker: float = 1.0
    # GPUs reserved by each rollout worker (a fraction < 1 shares a GPU with other workers or the trainer)
    gpus_per_worker: float = 0.0
    # place every rollout worker on the trainer's node (hard node affinity); false lets Ray place them anywhere
    colocate: bool = False
    # torch threads inside each rollout worker (and in the local engine)
    threads: int = 1
    # device of the inference copy: auto (engine local: the trainer's device; engine ray: cuda iff
    # gpus_per_worker > 0) | cpu | cuda
    device: str = "auto"
    # parameter dtype of the inference copy: auto (bfloat16 on CUDA, float32 on CPU) | float32 | bfloat16
    dtype: str = "auto"
    # weight broadcast after each update: object_store (CPU tensors through ray.put) | collective (a
    # torch.distributed broadcast from the trainer to the workers) | nccl (= collective with backend nccl) |
    # cuda_ipc (workers on the trainer's own GPU copy from its buffers; needs engine ray, colocate, CUDA)
    weight_sync: str = "object_store"
    # backend of weight_sync collective: auto (nccl if gpus_per_worker > 0, else gloo) | gloo (CPU tensors) |
    # nccl (CUDA tensors, one GPU per process; not run yet: one-GPU machines only)
    collective_backend: str = "auto"
    # largest flat bucket of one collective broadcast, MiB (a larger tensor is sent alone)
    collective_bucket_mb: float = 256.0
    # seconds allowed for forming the weight group and for each broadcast before it fails
    collective_timeout_s: float = 600.0
    # address of the trainer's rendezvous store for the weight group ("" = this node's Ray IP)
    collective_host: str = ""
    # after the first full broadcast, send only the tensors training can change (trainable or LoRA-merged)
    sync_trainable_only: bool = True
    # dead rollout workers that may be replaced during one sampling call before it fails
    max_restarts: int = 3
    # prompts per engine call (0 = split the prompts evenly, one chunk per worker); smaller chunks start
    # reward scoring earlier and spread work on restarts
    chunk_prompts: int = 0
    # where the image/format rewards run: "local" (a thread in the trainer; components with serve: ray still
    # use their own actors) or "ray" (every serve: local component is moved onto its own Ray actor)
    reward_placement: str = "local"
    # score each finished chunk while the remaining chunks are still being sampled
    overlap_rewards: bool = True

    def validate(self, section: str = "rollout") -> None:
        def need(cond: bool, key: str, msg: str) -> None:
            if not cond:
                raise ConfigError(f"{section}.{key}: {msg}")

        need(self.engine in ENGINES, "engine", f"must be one of {ENGINES}, got {self.engine!r}")
        need(self.num_workers >= 1, "num_workers", f"must be >= 1, got {self.num_workers}")
        need(self.cpus_per_worker >= 0, "cpus_per_worker", f"must be >= 0, got {self.cpus_per_worker}")
        need(self.gpus_per_worker >= 0, "gpus_per_worker", f"must be >= 0, got {self.gpus_per_worker}")
        need(self.threads >= 1, "threads", f"must be >= 1, got {self.threads}")
        need(self.ray_num_cpus >= 0, "ray_num_cpus", f"must be >= 0, got {self.ray_num_cpus}")
        need(
            self.weight_sync in WEIGHT_SYNCS,
            "weight_sync",
            f"must be one of {WEIGHT_SYNCS}, got {self.weight_sync!r}",
        )
        need(
            self.collective_backend in COLLECTIVE_BACKENDS,
            "collective_backend",
            f"must be one of {COLLECTIVE_BACKENDS}, got {self.collective_backend!r}",
        )
        need(
            not (self.weight_sync == "nccl" and self.collective_backend == "gloo"),
            "collective_backend",
            "gloo contradicts weight_sync nccl (use weight_sync collective with collective_backend gloo)",
        )
        need(
            self.collective_bucket_mb > 0,
            "collective_bucket_mb",
            f"must be > 0, got {self.collective_bucket_mb}",
        )
        need(
            self.collective_timeout_s > 0,
            "collective_timeout_s",
            f"must be > 0, got {self.collective_timeout_s}",
        )
        need(self.device in WORKER_DEVICES, "device", f"must be one of {WORKER_DEVICES}, got {self.device!r}")
        need(self.dtype in WORKER_DTYPES, "dtype", f"must be one of {WORKER_DTYPES}, got {self.dtype!r}")
        need(
            not (self.engine == "ray" and self.device == "cuda" and self.gpus_per_worker <= 0),
            "device",
            "cuda for Ray workers needs gpus_per_worker > 0 (Ray hides GPUs from actors that reserve none)",
        )
        if self.weight_sync == "cuda_ipc":
            need(
                self.colocate and self.gpus_per_worker > 0 and self.device in ("auto", "cuda"),
                "weight_sync",
                "cuda_ipc maps the trainer's GPU memory into the workers: set colocate: true, "
                "gpus_per_worker > 0 (a fraction to share the trainer's GPU) and device auto or cuda",
            )
        need(self.max_restarts >= 0, "max_restarts", f"must be >= 0, got {self.max_restarts}")
        need(self.chunk_prompts >= 0, "chunk_prompts", f"must be >= 0, got {self.chunk_prompts}")
        need(
            self.reward_placement in REWARD_PLACEMENTS,
            "reward_placement",
            f"must be one of {REWARD_PLACEMENTS}, got {self.reward_placement!r}",
        )
        need(
            not (self.engine == "local" and self.weight_sync != "object_store"),
            "weight_sync",
            f"{self.weight_sync} broadcasts to Ray workers; with engine: local use object_store",
        )


def worker_placement(cfg: RolloutConfig, trainer_device: torch.device) -> tuple[str, str]:
    """(device, dtype) of the inference copies: `rollout.device` / `rollout.dtype` with "auto" resolved.

    Engine local samples next to the trainer, so "auto" follows `trainer_device`; Ray workers get a GPU only when
    they reserve one (`gpus_per_worker > 0`)."""
    if cfg.device != "auto":
        device = cfg.device
    elif cfg.engine == "local":
        device = "cuda" if trainer_device.type == "cuda" else "cpu"
    else:
        device = "cuda" if cfg.gpus_per_worker > 0 else "cpu"
    if device == "cuda" and cfg.engine == "local" and not torch.cuda.is_available():
        raise ConfigError("rollout.device: cuda, but this process has no CUDA device (use cpu or auto)")
    dtype = cfg.dtype if cfg.dtype != "auto" else ("bfloat16" if device == "cuda" else "float32")
    return device, dtype
