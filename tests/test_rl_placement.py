"""Where rollout workers run (`rollout.device` / `rollout.dtype`) and the CUDA-IPC weight sync's CPU-checkable
parts: resolution of "auto", recipe errors, clear failures without CUDA, the handle's device remapping."""

from __future__ import annotations

import pytest
import torch
from _engine_helpers import components, sampling

from irg_rl.config import ConfigError
from irg_rl.rollout import RolloutConfig, RolloutWorker, WorkerSpec
from irg_rl.rollout.config import worker_placement
from irg_rl.rollout.cuda_ipc import open_shared

CPU = torch.device("cpu")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")


def _cfg(**kw) -> RolloutConfig:
    cfg = RolloutConfig(**kw)
    cfg.validate()
    return cfg


def test_auto_placement_follows_trainer_for_local_and_gpu_reservation_for_ray():
    assert worker_placement(_cfg(), CPU) == ("cpu", "float32")
    assert worker_placement(_cfg(engine="ray"), CPU) == ("cpu", "float32")
    assert worker_placement(_cfg(engine="ray", gpus_per_worker=0.5), CPU) == ("cuda", "bfloat16")
    assert worker_placement(_cfg(engine="ray", gpus_per_worker=1, dtype="float32"), CPU) == (
        "cuda",
        "float32",
    )
    assert worker_placement(_cfg(engine="ray", gpus_per_worker=1, device="cpu"), CPU) == ("cpu", "float32")
    assert worker_placement(_cfg(dtype="bfloat16"), CPU) == ("cpu", "bfloat16")


@pytest.mark.parametrize(
    "kw, key",
    [
        ({"device": "tpu"}, "rollout.device"),
        ({"dtype": "float16"}, "rollout.dtype"),
        ({"engine": "ray", "device": "cuda"}, "gpus_per_worker > 0"),
        ({"engine": "ray", "weight_sync": "cuda_ipc", "gpus_per_worker": 0.5}, "colocate: true"),
        ({"engine": "ray", "weight_sync": "cuda_ipc", "colocate": True}, "gpus_per_worker > 0"),
        ({"engine": "local", "weight_sync": "cuda_ipc"}, "rollout.weight_sync"),
    ],
)
def test_bad_placement_names_the_key(kw, key):
    with pytest.raises(ConfigError, match=key):
        RolloutConfig(**kw).validate()


@no_cuda
def test_without_cuda_placement_and_ipc_fail_clearly():
    with pytest.raises(ConfigError, match="no CUDA device"):
        worker_placement(_cfg(device="cuda"), CPU)
    model, tok, vae = components(seed=5)
    with pytest.raises(RuntimeError, match="rollout.device: cpu"):
        RolloutWorker(WorkerSpec(model.config, tok, vae, sampling(), device="cuda"))
    from irg_rl.rollout.cuda_ipc import CudaIpcWeightSync

    with pytest.raises(RuntimeError, match="cuda_ipc needs CUDA"):
        CudaIpcWeightSync()


def test_open_shared_rebuilds_on_the_readers_device_index():
    calls = []

    def rebuild(*args):
        calls.append(args)
        return args

    args = tuple(range(15))  # reduce_tensor's CUDA layout: the storage device is the 7th argument
    open_shared((rebuild, args), device_index=3)
    assert calls[0][6] == 3 and calls[0][:6] == args[:6] and calls[0][7:] == args[7:]


def test_cpu_worker_in_bfloat16_casts_its_own_vae_copy():
    model, tok, vae = components(seed=5)
    w = RolloutWorker(WorkerSpec(model.config, tok, vae, sampling(), dtype="bfloat16"))
    assert w.engine.vae is not vae  # the trainer's VAE is left as it was
    own = [t.dtype for t in (*vae.parameters(), *vae.buffers()) if t.is_floating_point()]
    copied = [t.dtype for t in (*w.engine.vae.parameters(), *w.engine.vae.buffers()) if t.is_floating_point()]
    assert own and set(own) == {torch.float32}  # the trainer's VAE is left as it was
    assert copied and set(copied) == {torch.bfloat16}
