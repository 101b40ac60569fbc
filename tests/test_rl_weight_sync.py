"""Collective weight sync (gloo, CPU): the workers hold exactly the trainer's exported weights after a full and a
partial broadcast, the same as through the object store; a replaced worker rejoins a re-formed group; bad
backends fail clearly. The nccl backend needs GPUs and is not run here."""

from __future__ import annotations

import time

import pytest
import ray
import torch
from _engine_helpers import components, sampling
from _rl_helpers import ray_local  # noqa: F401  (module-wide Ray)

from irg_rl.config import ConfigError
from irg_rl.rollout import RolloutConfig, WorkerSpec
from irg_rl.rollout.collective import Bucket, pack, plan_buckets, unpack
from irg_rl.rollout.pool import RolloutPool
from irg_rl.rollout.weight_sync import CollectiveWeightSync, export_weights, make_weight_sync, resolve_backend

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    model, tok, vae = components(seed=5)
    return model, WorkerSpec(model.config, tok, vae, sampling())


@pytest.fixture(scope="module")
def collective_pool(tiny):
    """One collective pool shared by the tests (starting actors dominates their time)."""
    pool = RolloutPool(tiny[1], _cfg("collective"))
    yield pool
    pool.shutdown()


def _cfg(sync: str) -> RolloutConfig:
    # small buckets so a broadcast spans several of them
    cfg = RolloutConfig(
        engine="ray", num_workers=2, cpus_per_worker=0.5, weight_sync=sync, collective_bucket_mb=0.25
    )
    cfg.validate()
    return cfg


def _perturbed(model, keys: list[str], seed: int) -> dict[str, torch.Tensor]:
    """Exported weights of `keys` after adding noise to them (a stand-in for an optimiser step)."""
    g = torch.Generator().manual_seed(seed)
    state = export_weights(model, keys)
    return {k: v + 0.01 * torch.randn(v.shape, generator=g) for k, v in state.items()}


def _assert_workers_hold(pool: RolloutPool, expected: dict[str, torch.Tensor], version: int) -> None:
    for w in pool.workers:
        got = ray.get(w.get_weights.remote())
        assert ray.get(w.get_version.remote()) == version
        assert got.keys() == expected.keys()
        for k, v in expected.items():
            assert got[k].dtype == v.dtype and torch.equal(got[k], v), k


def test_buckets_round_trip_mixed_dtypes():
    g = torch.Generator().manual_seed(0)
    state = {
        "a": torch.randn(10, 7, generator=g),
        "b": torch.randn(300, generator=g).to(torch.bfloat16),
        "c": torch.randn(3, 4, 5, generator=g),
        "big": torch.randn(2000, generator=g),
        "d": torch.randint(0, 9, (6,), generator=g),
    }
    buckets = plan_buckets(state, bucket_bytes=1024)
    names = [s.name for b in buckets for s in b.slots]
    assert sorted(names) == sorted(state)
    for b in buckets:
        size = b.numel * torch.empty((), dtype=b.dtype).element_size()
        assert size <= 1024 or len(b.slots) == 1  # only a tensor larger than a bucket is sent alone
        assert all(state[s.name].dtype == b.dtype for s in b.slots)
    assert len(buckets) >= 4  # a, c, big split across float32 buckets; b and d in their own dtypes
    out: dict[str, torch.Tensor] = {}
    for b in buckets:
        flat = pack(state, b, torch.device("cpu"))
        out.update(unpack(flat.clone(), b))
    for k, v in state.items():
        assert out[k].dtype == v.dtype and torch.equal(out[k], v), k
    assert plan_buckets({}, 1024) == [] and isinstance(buckets[0], Bucket)


def test_collective_full_and_partial_sync_equal_export_and_object_store(tiny, collective_pool):
    model, spec = tiny
    full = export_weights(model)
    keys = sorted(k for k in full if "moe_gen" in k) or sorted(full)[:5]
    partial = _perturbed(model, keys, seed=1)
    expected = {**full, **partial}
    held = {}
    for sync in ("collective", "object_store"):
        pool = collective_pool if sync == "collective" else RolloutPool(spec, _cfg(sync))
        pool.set_weights(0, full, full=True)
        _assert_workers_hold(pool, full, 0)
        pool.set_weights(1, partial, full=False)
        _assert_workers_hold(pool, expected, 1)
        if sync == "collective":
            assert pool.sync.backend == "gloo" and pool.sync.memberships == 1  # one group for both updates
        held[sync] = ray.get(pool.workers[1].get_weights.remote())
        if pool is not collective_pool:
            pool.shutdown()
    a, b = held["collective"], held["object_store"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(full[k], expected[k]) for k in keys)  # the partial update changed something


def _wait_dead(actor, timeout_s: float = 30.0) -> None:
    """`ray.kill` is asynchronous: wait until calls to `actor` fail."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ray.get(actor.pid.remote())
        except ray.exceptions.RayActorError:
            return
        time.sleep(0.1)
    raise AssertionError("killed actor still answers")


def test_replaced_worker_rejoins_a_reformed_group(tiny, collective_pool):
    model, pool = tiny[0], collective_pool
    full = export_weights(model)
    keys = sorted(full)[-6:]
    v1, v2 = _perturbed(model, keys, seed=2), _perturbed(model, keys, seed=3)
    pool.set_weights(10, full, full=True)
    pool.set_weights(11, v1, full=False)
    memberships, restarts = pool.sync.memberships, pool.restarts
    dead = ray.get(pool.workers[0].pid.remote())
    ray.kill(pool.workers[0], no_restart=True)
    _wait_dead(pool.workers[0])
    pool.set_weights(12, v2, full=False)  # finds the dead worker, replaces it, re-forms the group, broadcasts
    assert pool.restarts == restarts + 1 and ray.get(pool.workers[0].pid.remote()) != dead
    assert pool.sync.memberships == memberships + 1
    _assert_workers_hold(pool, {**full, **v2}, 12)
    pool.set_weights(13, v1, full=False)  # the new group is reused
    assert pool.sync.memberships == memberships + 1
    _assert_workers_hold(pool, {**full, **v1}, 13)
    # (a worker killed while the group forms is not tested: which path it takes depends on timing, and the
    # formation then waits for collective_timeout_s)


def test_bad_backends_fail_clearly():
    with pytest.raises(ValueError, match="backend must be one of"):
        CollectiveWeightSync("mpi")
    with pytest.raises(ConfigError, match="collective_backend"):
        RolloutConfig(engine="ray", weight_sync="collective", collective_backend="mpi").validate()
    with pytest.raises(ConfigError, match="weight_sync"):
        RolloutConfig(engine="ray", weight_sync="broadcast").validate()
    with pytest.raises(ConfigError, match="contradicts"):
        RolloutConfig(engine="ray", weight_sync="nccl", collective_backend="gloo").validate()
    with pytest.raises(ConfigError, match="engine: local"):
        RolloutConfig(engine="local", weight_sync="collective").validate()
    assert resolve_backend(RolloutConfig(weight_sync="collective")) == "gloo"
    assert resolve_backend(RolloutConfig(weight_sync="collective", gpus_per_worker=1)) == "nccl"
    assert resolve_backend(RolloutConfig(weight_sync="nccl")) == "nccl"
    if not torch.cuda.is_available():
        for cfg in (
            RolloutConfig(engine="ray", weight_sync="nccl"),
            RolloutConfig(engine="ray", weight_sync="collective", collective_backend="nccl"),
        ):
            with pytest.raises(RuntimeError, match="needs CUDA"):
                make_weight_sync(cfg)
