"""Rewards served by Ray Serve: the HttpReward client scores through it, concurrent requests are batched and each
answered once, a request the reward rejects is a 422 that fails alone, a malformed one a 400 or 413."""

from __future__ import annotations

import json
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.request import urlopen

import pytest
from PIL import Image

from rewards.contract import RewardBatch
from rewards.serving.http_client import HttpReward
from rewards.serving.transport import RemoteError

TESTS = str(Path(__file__).parent)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def url():
    import ray
    from ray import serve

    from rewards.serving.ray_serve import serve_reward

    os.environ["PYTHONPATH"] = os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        yield serve_reward(
            {"name": "_serve_rewards:picky"},
            port=_free_port(),
            max_batch_size=8,
            batch_wait_s=0.5,
            num_cpus=0.5,
            max_body=1 << 20,
        )
    finally:
        serve.shutdown()
        ray.shutdown()


def _batch(prompts, ok=True):
    return RewardBatch(
        prompts=list(prompts),
        images=[Image.new("RGB", (4, 4))] * len(prompts),
        metadata=[{"ok": ok}] * len(prompts),
    )


def _raw(url: str, head: bytes) -> int:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port.split("/")[0])), timeout=10) as s:
        s.sendall(head)
        return int(s.recv(4096).split(b" ")[1])


def test_concurrent_requests_are_batched_and_each_answered_once(url):
    client = HttpReward("picky", url, retries=1)
    batches = [_batch(["x" * (i + 1), "y" * (2 * i + 1)]) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(client, batches))
    for i, out in enumerate(outs):
        assert out.scores.tolist() == [float(i + 1), float(2 * i + 1)]  # each request got its own rows back
    stats = json.loads(urlopen(f"{url}/stats", timeout=10).read())
    assert stats["requests"] == 8 and sum(stats["batches"]) == 8
    assert max(stats["batches"]) > 1  # several requests were scored in one reward call


def test_a_rejected_request_is_422_and_fails_alone(url):
    client = HttpReward("picky", url, retries=1)
    with ThreadPoolExecutor(2) as pool:
        good, bad = pool.submit(client, _batch(["ab"])), pool.submit(client, _batch(["c"], ok=False))
        assert good.result().scores.tolist() == [2.0]
        with pytest.raises(RemoteError, match="HTTP 422.*metadata needs 'ok'"):
            bad.result()


def test_malformed_length_is_400_and_too_large_413(url):
    path = "/score"
    assert _raw(url, f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".encode()) == 400
    assert _raw(url, f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {1 << 24}\r\n\r\n".encode()) == 413
    assert json.loads(urlopen(f"{url}/health", timeout=10).read())["reward"] == "picky"
