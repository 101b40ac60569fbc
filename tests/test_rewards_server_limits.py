"""The reward server's answers to bad and heavy traffic: 400 for a malformed Content-Length, 413 over the body
limit, 422 (never retried) for a batch the reward rejects, 503 beyond the concurrency bound, a socket timeout for
a stalled client, and a loopback load test in which every request is answered once."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from PIL import Image

from rewards import Reward, RewardBatch, RewardOutput
from rewards.serving.http_client import HttpReward, RemoteError
from rewards.serving.http_server import serve_in_thread
from rewards.serving.protocol import encode_batch


class Picky(Reward):
    """Counts calls; rejects metadata without 'ok'; sleeps `delay` seconds per batch; scores the prompt length."""

    name = "picky"

    def __init__(self, delay: float = 0.0):
        super().__init__()
        self.delay, self.calls, self.lock = delay, 0, threading.Lock()

    def score(self, batch):
        with self.lock:
            self.calls += 1
        time.sleep(self.delay)
        for i, m in enumerate(batch.metadata):
            if not m.get("ok"):
                raise ValueError(f"sample {i}: metadata needs 'ok'")
        return RewardOutput(
            scores=torch.tensor([float(len(p)) for p in batch.prompts]), details=[{}] * len(batch)
        )


def _batch(prompts, ok=True):
    return RewardBatch(
        prompts=list(prompts),
        images=[Image.new("RGB", (4, 4))] * len(prompts),
        metadata=[{"ok": ok}] * len(prompts),
    )


def _raw(url: str, head: bytes, body: bytes = b"") -> tuple[int, dict]:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(4096)
        head_end = data.index(b"\r\n\r\n")
        status = int(data.split(b" ")[1])
        length = int(
            [ln for ln in data[:head_end].split(b"\r\n") if ln.lower().startswith(b"content-length")][
                0
            ].split(b":")[1]
        )
        body_bytes = data[head_end + 4 :]
        while len(body_bytes) < length:
            body_bytes += s.recv(4096)
        return status, json.loads(body_bytes)


def test_malformed_content_length_gets_400_and_a_huge_one_413():
    server, url = serve_in_thread(Picky(), max_body=1000)
    try:
        status, reply = _raw(url, b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        assert status == 400 and "not a number" in reply["error"]
        status, reply = _raw(url, b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
        assert status == 413 and "limit of 1000" in reply["error"]
    finally:
        server.shutdown()


def test_rejected_batch_is_422_and_not_retried():
    reward = Picky()
    server, url = serve_in_thread(reward)
    try:
        client = HttpReward("picky", url, timeout_s=5, retries=3)
        with pytest.raises(RemoteError, match="HTTP 422.*metadata needs 'ok'"):
            client(_batch(["a"], ok=False))
        assert reward.calls == 1  # one attempt: a 4xx is not retried
        assert client(_batch(["abc"])).scores.tolist() == [3.0]
    finally:
        server.shutdown()


def test_stalled_client_is_timed_out():
    server, url = serve_in_thread(Picky(), timeout_s=0.5)
    try:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")  # then nothing
            t0 = time.monotonic()
            assert s.recv(4096) == b""  # the server gave up on the body and closed the connection
            assert time.monotonic() - t0 < 4
    finally:
        server.shutdown()


def test_load_every_request_answered_once_and_overload_is_503():
    reward = Picky(delay=0.02)
    server, url = serve_in_thread(reward, max_concurrent=4)
    try:
        client = HttpReward("picky", url, timeout_s=10, retries=8)
        prompts = [f"p{'x' * i}" for i in range(40)]
        with ThreadPoolExecutor(max_workers=12) as pool:
            scores = list(pool.map(lambda p: client(_batch([p])).scores.tolist(), prompts))
        assert scores == [[float(len(p))] for p in prompts]  # each answered, with its own answer
        assert reward.calls >= len(prompts)  # 503s were retried; no request was scored into another's reply
    finally:
        server.shutdown()


def test_a_burst_past_the_concurrency_bound_gets_503_not_silence():
    server, url = serve_in_thread(Picky(delay=1.0), max_concurrent=2)
    body = json.dumps({"reward": "picky", "batch": encode_batch(_batch(["a"]))}).encode()
    head = f"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            statuses = list(pool.map(lambda _: _raw(url, head, body)[0], range(6)))
    finally:
        server.shutdown()
    # two slots, six simultaneous requests of 1 s: some are served, the others turned away with 503
    assert len(statuses) == 6 and set(statuses) == {200, 503}
