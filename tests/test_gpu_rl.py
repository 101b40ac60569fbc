"""GPU checks of the RL path (`pytest -m gpu`, skipped without CUDA): rollout workers on the GPU, CUDA-IPC weight
sync to colocated Ray workers (full and partial updates, a killed worker replaced), and the GRPO driver on CUDA
with the local and the Ray + CUDA-IPC rollout giving the same loss and a ratio of 1 at the first inner step."""

from __future__ import annotations

import pytest
import ray
import torch
from _engine_helpers import components, sampling
from _rl_helpers import grpo_recipe, random_checkpoint, ray_local  # noqa: F401  (module-wide Ray)

from irg_rl.rollout import RolloutConfig, WorkerSpec
from irg_rl.rollout.pool import RolloutPool
from irg_rl.rollout.weight_sync import export_weights
from irg_rl.train.rl.grpo import GRPOTrainer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _ipc_cfg() -> RolloutConfig:
    cfg = RolloutConfig(
        engine="ray",
        num_workers=2,
        cpus_per_worker=0.5,
        gpus_per_worker=0.25,
        colocate=True,
        weight_sync="cuda_ipc",
        collective_bucket_mb=0.25,  # several buckets per update
    )
    cfg.validate()
    return cfg


def _hold(pool: RolloutPool, expected: dict[str, torch.Tensor], version: int) -> None:
    for w in pool.workers:
        assert ray.get(w.get_version.remote()) == version
        got = ray.get(w.get_weights.remote())
        assert got.keys() == expected.keys()
        for k, v in expected.items():
            assert torch.equal(got[k], v), k


def test_cuda_ipc_full_and_partial_updates_and_a_replaced_worker():
    model, tok, vae = components(seed=5)
    pool = RolloutPool(WorkerSpec(model.config, tok, vae, sampling(), device="cuda"), _ipc_cfg())
    try:
        full = export_weights(model)
        keys = sorted(k for k in full if "moe_gen" in k)
        g = torch.Generator().manual_seed(1)
        partial = {k: full[k] + 0.01 * torch.randn(full[k].shape, generator=g) for k in keys}
        pool.set_weights(0, full, full=True)
        _hold(pool, full, 0)
        sent = pool.sync.buckets_sent
        assert sent > 2
        pool.set_weights(1, partial, full=False)
        _hold(pool, {**full, **partial}, 1)
        assert pool.sync.buckets_sent > sent
        pids = ray.get([w.pid.remote() for w in pool.workers])
        assert len(set(pids)) == 2
        ray.kill(pool.workers[0])
        partial2 = {k: v + 0.01 for k, v in partial.items()}
        pool.set_weights(2, partial2, full=False)
        assert pool.restarts == 1
        _hold(pool, {**full, **partial2}, 2)
        dev = ray.get(
            pool.workers[1].get_weights.remote()
        )  # CPU copies; the workers' own tensors are on CUDA
        assert dev.keys() == full.keys()
    finally:
        pool.shutdown()


def test_grpo_on_cuda_local_and_ray_ipc_give_the_same_loss(tmp_path):
    ckpt = random_checkpoint(tmp_path / "ck")
    stats = {}
    for engine in ("local", "ray"):
        over = {
            "rollout.engine": engine,
            "rollout.dtype": "float32",
            "train.mixed_precision": "no",
            "eval.num_prompts": 0,
            "train.save_every": 0,
        }
        if engine == "ray":
            over.update(
                {f"rollout.{k}": v for k, v in vars(_ipc_cfg()).items() if k not in ("engine", "dtype")}
            )
        trainer = GRPOTrainer(grpo_recipe(ckpt, tmp_path / engine, **over))
        assert trainer.setup.rollouts.spec.device == "cuda"
        stats[engine] = trainer.run()[-1]
    a, b = stats["local"], stats["ray"]
    for s in (a, b):
        assert s["ratio_check/ok"] == 1.0, (s["ratio_check/text_max_dev"], s["ratio_check/flow_max_dev"])
    assert a["reward/image_2_mean"] == b["reward/image_2_mean"]
    for key in ("first/loss", "last/loss"):
        assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
