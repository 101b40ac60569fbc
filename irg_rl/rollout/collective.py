"""A dedicated torch.distributed group for weight broadcasts, and the bucket layout of a broadcast.

The trainer (rank 0) and the N rollout workers (ranks 1..N) form their own process group, separate from any
default group the trainer is in (accelerate / DeepSpeed): the trainer hosts a `TCPStore` on a free port, each
membership of the group uses a fresh key prefix in that store, and every process builds the backend object
(`ProcessGroupGloo` or `ProcessGroupNCCL`) directly, so `torch.distributed.init_process_group` is never called.

A broadcast sends the state dict as flat buckets, one dtype per bucket (fewer, larger collectives than one per
tensor). The layout (`plan_buckets`) is computed by the trainer and sent to the workers through Ray, so each
worker allocates its receive buffers before the matching broadcast starts.

Backends: `gloo` broadcasts CPU tensors (tested, CPU only; it picks its network interface from the hostname, set
GLOO_SOCKET_IFNAME on multi-homed nodes); `nccl` broadcasts CUDA tensors and needs one GPU per process, so workers
sharing the trainer's GPU cannot use it (they use `cuda_ipc`, irg_rl/rollout/cuda_ipc.py). The nccl path has NOT
been run: the GPU machines this project is lent have one GPU.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = [
    "BACKENDS",
    "GroupInfo",
    "Slot",
    "Bucket",
    "plan_buckets",
    "pack",
    "unpack",
    "host_store",
    "WeightGroup",
    "receive_state",
    "require_cuda",
]

# backends a weight group can use
BACKENDS = ("gloo", "nccl")


@dataclass(frozen=True)
class GroupInfo:
    """How to join one membership of the weight group (picklable: sent to the workers through Ray)."""

    # "gloo" (CPU tensors) | "nccl" (CUDA tensors)
    backend: str
    # address of the trainer's TCPStore
    host: str
    # port of the trainer's TCPStore
    port: int
    # key prefix of this membership in the store (a new one each time the group is re-formed)
    prefix: str
    # trainer + workers
    world_size: int
    # seconds allowed for joining and for each broadcast
    timeout_s: float


@dataclass(frozen=True)
class Slot:
    """One tensor inside a bucket."""

    # state-dict key
    name: str
    # tensor shape
    shape: tuple[int, ...]
    # first element in the bucket
    offset: int
    # number of elements
    numel: int


@dataclass(frozen=True)
class Bucket:
    """Tensors of one dtype broadcast as one flat tensor."""

    # dtype of every tensor in the bucket
    dtype: torch.dtype
    # elements in the flat tensor
    numel: int
    # the tensors, in order
    slots: tuple[Slot, ...]


def plan_buckets(state: dict[str, torch.Tensor], bucket_bytes: int) -> list[Bucket]:
    """Group `state` by dtype into buckets of at most `bucket_bytes` (a larger tensor gets a bucket alone).

    The order is deterministic (dtype name, then the state dict's order), so sender and receivers agree."""
    by_dtype: dict[torch.dtype, list[str]] = {}
    for k, v in state.items():
        by_dtype.setdefault(v.dtype, []).append(k)
    buckets: list[Bucket] = []
    for dtype in sorted(by_dtype, key=str):
        itemsize = torch.empty((), dtype=dtype).element_size()
        slots: list[Slot] = []
        n = 0
        for k in by_dtype[dtype]:
            numel = state[k].numel()
            if slots and (n + numel) * itemsize > bucket_bytes:
                buckets.append(Bucket(dtype, n, tuple(slots)))
                slots, n = [], 0
            slots.append(Slot(k, tuple(state[k].shape), n, numel))
            n += numel
        if slots:
            buckets.append(Bucket(dtype, n, tuple(slots)))
    return buckets


def pack(state: dict[str, torch.Tensor], bucket: Bucket, device: torch.device) -> torch.Tensor:
    """The bucket's tensors of `state` concatenated into one flat tensor [bucket.numel] on `device`."""
    flat = torch.empty(bucket.numel, dtype=bucket.dtype, device=device)
    for s in bucket.slots:
        flat[s.offset : s.offset + s.numel].copy_(state[s.name].reshape(-1))
    return flat


def unpack(flat: torch.Tensor, bucket: Bucket) -> dict[str, torch.Tensor]:
    """Views of a received flat tensor [bucket.numel] as the bucket's named tensors (no copy)."""
    return {s.name: flat[s.offset : s.offset + s.numel].view(s.shape) for s in bucket.slots}


def host_store(host: str, timeout_s: float) -> dist.TCPStore:
    """A TCPStore served by this process on a free port of `host` (`.port` gives it)."""
    return dist.TCPStore(
        host,
        0,
        is_master=True,
        wait_for_workers=False,
        timeout=datetime.timedelta(seconds=timeout_s),
    )


class WeightGroup:
    """This process's member of one weight-group membership; `broadcast` sends (rank 0) or receives."""

    def __init__(self, info: GroupInfo, rank: int, store: dist.Store | None = None):
        if info.backend not in BACKENDS:
            raise ValueError(f"weight group backend must be one of {BACKENDS}, got {info.backend!r}")
        timeout = datetime.timedelta(seconds=info.timeout_s)
        if store is None:  # a worker: connect to the trainer's store
            store = dist.TCPStore(info.host, info.port, is_master=False, timeout=timeout)
        self._client_store = store  # keep the connection alive as long as the group
        prefixed = dist.PrefixStore(info.prefix, store)
        self.rank, self.info = rank, info
        if info.backend == "gloo":
            self.device = torch.device("cpu")
            # blocks until every rank of the membership has joined (rendezvous through the store)
            self.pg = dist.ProcessGroupGloo(prefixed, rank, info.world_size, timeout)
        else:
            require_cuda("nccl")
            self.device = torch.device("cuda", torch.cuda.current_device())
            self.pg = dist.ProcessGroupNCCL(prefixed, rank, info.world_size, timeout)

    def broadcast(self, tensor: torch.Tensor) -> None:
        """Broadcast `tensor` in place from rank 0 (rank 0 sends it; the others receive into it)."""
        opts = dist.BroadcastOptions()
        opts.rootRank = 0
        opts.rootTensor = 0
        self.pg.broadcast([tensor], opts).wait()
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()

    def close(self) -> None:
        """Release the group's connections (best effort: a peer may already be gone)."""
        try:
            self.pg.shutdown()
        except Exception:  # noqa: BLE001 - tearing down after a failure must not raise again
            pass


def require_cuda(backend: str) -> None:
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"weight sync backend {backend!r} needs CUDA in every process (torch.cuda.is_available() is False "
            "here); use rollout.collective_backend=gloo or rollout.weight_sync=object_store"
        )
    if not dist.is_nccl_available():
        raise RuntimeError("weight sync backend 'nccl': this torch build has no NCCL support")


def receive_state(group: WeightGroup, buckets: list[Bucket]) -> dict[str, torch.Tensor]:
    """A receiver's side of one broadcast: every bucket into a fresh buffer, returned as named views."""
    state: dict[str, torch.Tensor] = {}
    for b in buckets:
        flat = torch.empty(b.numel, dtype=b.dtype, device=group.device)
        group.broadcast(flat)
        state.update(unpack(flat, b))
    return state
