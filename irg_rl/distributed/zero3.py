"""DeepSpeed ZeRO-3 helpers for the RL trainers: whole-parameter gathering, lockstep counts, a sharded reference.

Under ZeRO-3 every parameter holds only this rank's partition (`param.ds_tensor`; `param.data` is empty) and every
forward gathers each submodule's parameters collectively, so
- reading whole weights (export to the rollout workers, checkpoints) must go through
  `deepspeed.zero.GatheredParameters`, entered by every rank at once (`gathered`);
- every rank must run the same number of forwards and backwards (`max_across` pads ragged per-rank work);
- a frozen reference model would be a full unsharded copy per rank; `sharded_reference` partitions it with an
  optimizer-less DeepSpeed engine instead.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable, Iterator

import torch
from torch import nn

__all__ = [
    "is_partitioned",
    "zero_stage",
    "gathered",
    "max_across",
    "index_chunks",
    "padded_schedule",
    "sharded_reference",
]


def is_partitioned(model: nn.Module) -> bool:
    """True when `model`'s parameters are ZeRO-3 partitions (DeepSpeed tags each with `ds_id`)."""
    return any(hasattr(p, "ds_id") for p in model.parameters())


def zero_stage(acc) -> int:
    """The DeepSpeed ZeRO stage of an `accelerate.Accelerator` (0 without DeepSpeed)."""
    ds = acc.state.deepspeed_plugin
    return int(ds.deepspeed_config.get("zero_optimization", {}).get("stage", 0)) if ds is not None else 0


@contextlib.contextmanager
def gathered(params: Iterable[nn.Parameter]) -> Iterator[None]:
    """Whole `params` inside the block (read-only; modifications are discarded). A collective when any of them is
    a ZeRO-3 partition: every rank must enter with the same parameters, in the same order; else a no-op."""
    params = [p for p in params if hasattr(p, "ds_id")]
    if not params:
        yield
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
        yield


def max_across(acc, n: int) -> int:
    """The largest `n` over all processes (a collective; `n` itself with one process)."""
    if acc.num_processes == 1:
        return int(n)
    t = torch.tensor([int(n)], device=acc.device, dtype=torch.long)
    return int(acc.reduce(t, reduction="max").item())


def index_chunks(n: int, size: int) -> list[list[int]]:
    """`range(n)` in consecutive chunks of `size` (the last may be shorter); `size` 0 = one chunk of all n."""
    step = max(size or n, 1)
    return [list(range(a, min(a + step, n))) for a in range(0, n, step)]


def padded_schedule(micro: list[list[int]], target: int) -> list[tuple[list[int], float]]:
    """`micro` as (indices, loss weight 1.0), padded to `target` entries with (micro[0], 0.0) dummies.

    The dummies repeat a real micro-batch so the forward calls the same submodules as on the other ranks (ZeRO-3
    gathers per submodule); their zero weight keeps them out of the gradient.
    """
    if target < len(micro):
        raise ValueError(f"padded_schedule: target {target} < {len(micro)} micro-batches")
    if not micro and target:
        raise ValueError("padded_schedule: no micro-batch to repeat as a dummy")
    pad = [(micro[0], 0.0)] * (target - len(micro)) if micro else []
    return [(idx, 1.0) for idx in micro] + pad


def sharded_reference(module: nn.Module, ds_config: dict):
    """A frozen `module` partitioned by an optimizer-less ZeRO-3 DeepSpeed engine (forward only, collective).

    `ds_config` is the policy engine's resolved config; its precision section is kept so the reference runs in
    the policy's dtype. Returns the engine (call it like `module`).
    """
    import deepspeed

    module.requires_grad_(False).eval()
    conf = {
        k: copy.deepcopy(v)
        for k, v in ds_config.items()
        if k not in ("optimizer", "scheduler", "zero_optimization", "gradient_clipping")
    }
    zero = dict(ds_config.get("zero_optimization", {}))
    conf["zero_optimization"] = {
        "stage": 3,
        # the reference never steps: nothing to offload but parameters
        "offload_param": copy.deepcopy(zero.get("offload_param", {"device": "none"})),
    }
    engine, *_ = deepspeed.initialize(model=module, config=conf)
    engine.eval()
    return engine
