"""CUDA-IPC weight sync: rollout workers on the trainer's own GPU copy the new weights from its memory.

For workers that share the trainer's GPU (`rollout.colocate: true`, fractional `gpus_per_worker`), NCCL cannot
be used (one GPU per rank) and the object store would take every byte through host memory twice. Here the
trainer packs the state into flat per-dtype buckets on its GPU (`collective.plan_buckets` / `pack`), one bucket at
a time, and sends each bucket's CUDA-IPC handle (`torch.multiprocessing.reductions.reduce_tensor`, a few hundred
bytes) through Ray; each worker maps the buffer, copies its tensors out and lets go; the trainer frees the bucket
before packing the next, so at most one bucket (`rollout.collective_bucket_mb`) is ever extra on the GPU. A last
`commit_ipc` call loads the staged tensors as policy `version`.

A handle names the GPU by its index in the trainer's process; the worker maps it to its own index of the GPU
with the same UUID (`WorkerSpec.cuda_uuid`), since Ray and CUDA_VISIBLE_DEVICES can number GPUs differently. The
workers are started with `RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES=1` so they see the trainer's GPU whatever
Ray assigned them; `gpus_per_worker` still reserves a share of it in Ray's accounting.
"""

from __future__ import annotations

import torch

from irg_rl.rollout.collective import Bucket, pack, plan_buckets, unpack

__all__ = [
    "NOSET_CUDA_ENV",
    "device_uuid",
    "local_cuda_index",
    "share",
    "open_shared",
    "copy_bucket",
    "CudaIpcWeightSync",
]

# Ray leaves CUDA_VISIBLE_DEVICES alone in actors started with this variable set
NOSET_CUDA_ENV = {"RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES": "1"}
# position of the storage's device index in reduce_tensor's rebuild arguments (torch.multiprocessing.reductions)
_DEVICE_ARG = 6


def _require_cuda() -> None:
    if not torch.cuda.is_available():
        raise RuntimeError(
            "rollout.weight_sync cuda_ipc needs CUDA in the trainer and the workers (torch.cuda.is_available() "
            "is False here); use weight_sync object_store or collective"
        )


def device_uuid(index: int) -> str:
    """The UUID of visible CUDA device `index` (stable across processes, unlike the index)."""
    return str(torch.cuda.get_device_properties(index).uuid)


def local_cuda_index(uuid: str) -> int:
    """This process's index of the GPU with `uuid`; a clear error when it cannot see that GPU."""
    _require_cuda()
    seen = [device_uuid(i) for i in range(torch.cuda.device_count())]
    if uuid not in seen:
        raise RuntimeError(
            f"cuda_ipc: this rollout worker cannot see the trainer's GPU {uuid} (it sees {seen}); cuda_ipc needs "
            "the workers on the trainer's node with that GPU visible (rollout.colocate: true)"
        )
    return seen.index(uuid)


def share(flat: torch.Tensor) -> tuple:
    """A picklable CUDA-IPC handle of `flat` (the producer must keep `flat` alive until every reader is done)."""
    from torch.multiprocessing.reductions import reduce_tensor

    return reduce_tensor(flat)


def open_shared(handle: tuple, device_index: int) -> torch.Tensor:
    """The producer's tensor, mapped into this process on its local CUDA device `device_index` (no copy)."""
    rebuild, args = handle
    args = list(args)
    args[_DEVICE_ARG] = device_index
    return rebuild(*args)


def copy_bucket(handle: tuple, bucket: Bucket, device: torch.device, dtype: torch.dtype) -> dict:
    """A reader's side: copies of the bucket's named tensors [shape], in `dtype`, on `device`."""
    flat = open_shared(handle, device.index)
    out = {k: v.to(dtype=dtype, copy=True) for k, v in unpack(flat, bucket).items()}
    torch.cuda.current_stream(device).synchronize()  # the producer may free the buffer once we return
    del flat
    return out


class CudaIpcWeightSync:
    """Trainer side of weight_sync cuda_ipc (see module docstring)."""

    kind = "cuda_ipc"

    def __init__(self, bucket_mb: float = 256.0):
        _require_cuda()
        self.device = torch.device("cuda", torch.cuda.current_device())
        self.uuid = device_uuid(self.device.index)
        self.bucket_bytes = int(bucket_mb * 2**20)
        self.buckets_sent = 0

    def put(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The state itself: the pool keeps it for replacements (sent to them through the object store)."""
        return state

    def broadcast(self, workers: list, version: int, state: dict[str, torch.Tensor], full: bool) -> list:
        """Stage every bucket in every worker, then start their `commit_ipc`; returns the Ray references.

        A worker that dies while staging gets no commit: its failed reference is returned instead, so the pool
        replaces it (the replacement loads through the object store). Any other worker error is raised."""
        import ray

        failed: dict[int, object] = {}
        for b in plan_buckets(state, self.bucket_bytes):
            flat = pack(state, b, self.device)
            torch.cuda.current_stream(self.device).synchronize()  # readers use other streams and processes
            handle = share(flat)
            refs = {i: w.receive_ipc.remote(handle, b) for i, w in enumerate(workers) if i not in failed}
            for i, ref in refs.items():
                try:
                    ray.get(ref)
                except ray.exceptions.RayActorError:
                    failed[i] = ref
            del flat, handle
            torch.cuda.ipc_collect()  # free the bucket now that every reader has dropped it
            self.buckets_sent += 1
        return [
            failed[i] if i in failed else w.commit_ipc.remote(version, full) for i, w in enumerate(workers)
        ]

    def invalidate(self) -> None:
        """Nothing to rebuild when a worker is replaced."""

    def close(self) -> None:
        torch.cuda.ipc_collect()
