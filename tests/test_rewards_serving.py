"""Serving: the HTTP client against loopback servers (success, timeout, HTTP 500, malformed body), the reward
server wrapper, and the Ray actor wrapper."""

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from PIL import Image

from rewards import Reward, RewardBatch, RewardOutput, build_reward
from rewards.serving.http_client import HttpReward, RemoteError
from rewards.serving.http_server import serve_in_thread
from rewards.serving.protocol import decode_batch, encode_batch


class Redness(Reward):
    """Mean red channel in [0, 1]; NaN for prompts containing 'skip' (tests)."""

    name = "redness"

    def score(self, batch):
        v = [
            math.nan if "skip" in p else img.getpixel((0, 0))[0] / 255
            for p, img in zip(batch.prompts, batch.images, strict=True)
        ]
        return RewardOutput(scores=torch.tensor(v), details=[{"meta": m} for m in batch.metadata])


def make_redness():
    return Redness()


def _batch():
    return RewardBatch(
        prompts=["a", "skip me", "c"],
        images=[Image.new("RGB", (6, 6), (r, 0, 0)) for r in (0, 255, 51)],
        think_2=["x", "y", "z"],
        metadata=[{"include": [{"class": "circle", "count": 1}]}, {}, {"k": 1}],
    )


def test_protocol_round_trip_is_lossless():
    b = _batch()
    back = decode_batch(json.loads(json.dumps(encode_batch(b))))
    assert back.prompts == b.prompts and back.think_2 == b.think_2 and back.metadata == b.metadata
    assert [list(i.getdata()) for i in back.images] == [list(i.getdata()) for i in b.images]


def test_http_success_through_reward_server():
    server, url = serve_in_thread(Redness())
    try:
        r = build_reward({"name": "redness", "serve": "http", "url": url, "timeout_s": 5, "batch_size": 2})
        out = r(_batch())
        assert out.scores[0] == 0.0 and math.isnan(out.scores[1]) and out.scores[2] == pytest.approx(0.2)
        assert out.details[0]["meta"]["include"][0]["class"] == "circle"
        wrong = HttpReward("other", url, timeout_s=5, retries=1)
        with pytest.raises(
            RemoteError, match=r"reward 'other' at .*/score: request rejected, HTTP 400.*scores 'redness'"
        ):
            wrong(_batch())
    finally:
        server.shutdown()


class _Scripted(BaseHTTPRequestHandler):
    """Replies per a script set on the server: list of ('sleep', s) | ('status', code, body)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        srv = self.server
        srv.calls += 1
        step = srv.script[min(srv.calls - 1, len(srv.script) - 1)]
        if step[0] == "sleep":
            time.sleep(step[1])
            step = ("status", 200, json.dumps({"scores": [1.0, 1.0, 1.0], "details": [{}, {}, {}]}))
        body = step[2].encode()
        self.send_response(step[1])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def scripted():
    servers = []

    def start(*script):
        srv = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
        srv.daemon_threads = True
        srv.script, srv.calls = list(script), 0
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return srv, f"http://127.0.0.1:{srv.server_address[1]}"

    yield start
    for s in servers:
        s.shutdown()


def test_http_timeout_retries_then_names_reward_and_endpoint(scripted):
    srv, url = scripted(("sleep", 1.0))
    r = HttpReward("slow_reward", url, timeout_s=0.2, retries=2, backoff_s=0.01)
    t0 = time.time()
    with pytest.raises(
        RemoteError,
        match=r"reward 'slow_reward' at http://127\.0\.0\.1:\d+/score: failed after 2 .*timed out",
    ):
        r(_batch())
    assert srv.calls == 2 and time.time() - t0 < 5


def test_http_500_is_retried_with_backoff(scripted):
    ok = json.dumps({"scores": [0.5, None, 1], "details": [{}, {}, {}]})
    srv, url = scripted(("status", 500, '{"error": "boom"}'), ("status", 500, "{}"), ("status", 200, ok))
    out = HttpReward("flaky", url, timeout_s=5, retries=3, backoff_s=0.01)(_batch())
    assert srv.calls == 3 and out.scores[0] == 0.5 and math.isnan(out.scores[1])
    srv2, url2 = scripted(("status", 500, '{"error": "boom"}'))
    with pytest.raises(
        RemoteError, match=r"reward 'flaky' at .*: failed after 2 attempt\(s\); last error: HTTP 500: boom"
    ):
        HttpReward("flaky", url2, timeout_s=5, retries=2, backoff_s=0.01)(_batch())


@pytest.mark.parametrize(
    "body, msg",
    [
        ("not json at all", "not JSON"),
        ('{"scores": [1, 2]}', "2 scores for a batch of 3"),
        ('{"scores": ["a", 1, 2]}', "numbers"),
    ],
)
def test_http_malformed_body_fails_clearly(scripted, body, msg):
    srv, url = scripted(("status", 200, body))
    with pytest.raises(RemoteError, match=f"reward 'm' at .*malformed response body.*{msg}"):
        HttpReward("m", url, timeout_s=5, retries=3, backoff_s=0.01)(_batch())
    assert srv.calls == 1  # a malformed 200 is a server bug: not retried


def test_connection_refused_names_endpoint():
    with pytest.raises(
        RemoteError, match=r"reward 'gone' at http://127\.0\.0\.1:9/score: failed after 1.*connection"
    ):
        HttpReward("gone", "http://127.0.0.1:9", timeout_s=1, retries=1)(_batch())


def test_server_rejects_bad_requests_with_400():
    import requests

    server, url = serve_in_thread(Redness())
    try:
        resp = requests.post(f"{url}/score", json={"batch": {"prompts": ["a"], "images": ["!!"]}}, timeout=5)
        assert resp.status_code == 400 and "batch.images[0]" in resp.json()["error"]
        assert requests.get(f"{url}/health", timeout=5).json() == {"reward": "redness", "status": "ok"}
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_actor_scores_in_batches(ray_session):
    r = build_reward(
        {"name": "tests.test_rewards_serving:make_redness", "serve": "ray", "num_cpus": 1, "batch_size": 2}
    )
    out = r(_batch())
    assert out.scores[0] == 0.0 and math.isnan(out.scores[1]) and out.scores[2] == pytest.approx(0.2)
    refs = r.score_async(_batch())
    assert len(refs) == 2
    r.shutdown()


def test_serve_reward_script_exposes_a_registered_reward():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "serve_reward.py"
    proc = subprocess.Popen(
        [sys.executable, str(script), "--reward", "reflection_format", "--arg", "min_chars=1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "serving reward 'reflection_format' on http://127.0.0.1:" in line, line
        url = line.split(" on ")[1].split()[0]
        r = HttpReward("reflection_format", url, timeout_s=10, retries=2)
        b = RewardBatch(prompts=["p", "q"], images=[Image.new("RGB", (4, 4))] * 2, think_2=["", "x"])
        assert r(b).scores.tolist() == [0.0, 0.0]
        assert torch.isnan(r(RewardBatch(prompts=["p"], images=[Image.new("RGB", (4, 4))])).scores).all()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
