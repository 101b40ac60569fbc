"""Ray rollout: the Ray path and the local path give the same loss; a rollout worker killed in the middle of a
step is replaced and every trajectory is counted exactly once; a failing reward (in process or on a Ray actor)
surfaces an error naming it, never a silent 0."""

from __future__ import annotations

import pytest
import ray
import torch
from _engine_helpers import PROMPTS, components, sampling
from _rl_helpers import grpo_recipe, random_checkpoint, ray_local  # noqa: F401  (module-wide Ray)

from irg_rl.inference import IRGEngine
from irg_rl.rollout import RolloutConfig, SampleRequest, WorkerSpec
from irg_rl.rollout.local import LocalRollout
from irg_rl.rollout.pool import RolloutPool
from irg_rl.rollout.rewards import RewardsConfig, RewardScorer
from irg_rl.rollout.weight_sync import export_weights
from irg_rl.train.rl.grpo import GRPOTrainer
from rewards import RewardError, RewardSpec

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("rl_ray_ckpt"))


def test_ray_and_local_paths_give_the_same_loss(ckpt, tmp_path):
    losses = {}
    for engine in ("local", "ray"):
        over = {
            "rollout.engine": engine,
            "rollout.num_workers": 2,
            "rollout.cpus_per_worker": 0.5,
            "rollout.chunk_prompts": 1,
            "eval.num_prompts": 0,
            "train.save_every": 0,
        }
        trainer = GRPOTrainer(grpo_recipe(ckpt, tmp_path / engine, **over))
        stats = trainer.run()[-1]
        losses[engine] = stats
    a, b = losses["local"], losses["ray"]
    assert a["reward/image_2_mean"] == b["reward/image_2_mean"]
    for key in ("first/loss", "last/loss", "last/text/ratio_mean", "last/flow/ratio_mean"):
        assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), key
    assert a["last/loss"] != 0.0


def test_killed_rollout_worker_is_replaced_and_every_trajectory_counted_once():
    model, tok, vae = components(seed=5)
    spec = WorkerSpec(model.config, tok, vae, sampling(temperature=0.7))
    cfg = RolloutConfig(engine="ray", num_workers=2, cpus_per_worker=0.5, chunk_prompts=1)
    request = SampleRequest(PROMPTS * 2, [{} for _ in range(4)], 2, seed=11, mode="sde")
    weights = export_weights(model)

    local = LocalRollout(spec, RolloutConfig(engine="local"))
    local.set_weights(0, weights, full=True)
    expected = local.sample(request)

    pool = RolloutPool(spec, cfg)
    pool.set_weights(0, weights, full=True)
    killed = [ray.get(pool.workers[0].pid.remote())]

    def kill_first(p: RolloutPool) -> None:  # called right after the chunks are queued on the workers
        ray.kill(p.workers[0], no_restart=True)

    pool.on_submitted = kill_first
    got = pool.sample(request)
    pool.on_submitted = None
    assert killed and pool.restarts == 1
    assert ray.get(pool.workers[0].pid.remote()) != killed[0]
    assert ray.get(pool.workers[0].get_version.remote()) == 0  # the replacement got the latest weights
    ids = [(t.prompt_index, t.sample_index) for t in got.trajectories]
    assert ids == [(p, k) for p in range(4) for k in range(2)]  # each exactly once, in order
    for a, b in zip(expected.trajectories, got.trajectories, strict=True):
        assert a.seed == b.seed
        assert torch.equal(a.segment("think_2").token_ids, b.segment("think_2").token_ids)
        torch.testing.assert_close(a.segment("image_2").logprobs, b.segment("image_2").logprobs)
    pool.shutdown()


@pytest.mark.parametrize("serve", ["local", "ray"])
def test_failing_reward_raises_an_error_naming_it(serve):
    model, tok, vae = components(seed=5)
    batch = IRGEngine(model, tok, vae, sampling()).generate(PROMPTS, [{}, {}], 1, "euler")
    bad = RewardSpec(
        name="shapes", alias="broken_shapes", serve=serve, num_cpus=0.25, args={"world": {"image_size": -3}}
    )
    scorer = RewardScorer(RewardsConfig(image=[bad], metrics=[]))
    with pytest.raises(RewardError, match="reward 'broken_shapes' failed"):
        scorer.submit(batch).result()
    scorer.shutdown()
