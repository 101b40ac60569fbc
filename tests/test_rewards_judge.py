"""VLM judge: the score parser on messy replies and the reward against a loopback OpenAI-compatible server."""

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from rewards import RewardBatch, build_reward
from rewards.builtins.judge_parse import parse_judge_score
from rewards.builtins.vlm_judge import chat_endpoint


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("Score: 8/10", 0.8),
        ("The image is good.\n**Score:** 7", 0.7),
        ("**7**", 0.7),
        ('```json\n{"score": 9, "reason": "close"}\n```', 0.9),
        ('Here you go: {"Rating": "6/10"}', 0.6),
        ("I'd give it 3 out of 5.", 0.6),
        ("Consistency 2/2, realism 1/2. Final score: 4/10", 0.4),
        ("Overall - 6.5", 0.65),
        ("  8. ", 0.8),
        ("Yes, the image shows a dog.", 1.0),
        ("No.", 0.0),
        ("Score: 15", None),  # out of range for a 0-10 scale
        ("I cannot judge this image.", None),
        ("", None),
    ],
)
def test_parser_on_messy_replies(reply, expected):
    got = parse_judge_score(reply, scale_max=10)
    assert got == (None if expected is None else pytest.approx(expected))


def test_parser_other_scales():
    assert parse_judge_score("score: 2", scale_max=2) == 1.0
    assert parse_judge_score("Yes", yes_no=False) is None


def test_chat_endpoint_forms():
    assert chat_endpoint("http://h:1") == "http://h:1/v1/chat/completions"
    assert chat_endpoint("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert chat_endpoint("http://h:1/v1/chat/completions") == "http://h:1/v1/chat/completions"


class _Judge(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):  # noqa: N802
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, req))
        text = req["messages"][-1]["content"][1]["text"]
        reply = {"dog": "Thinking... **Score:** 9/10", "cat": "no idea", "q1": "Yes", "q2": "No"}
        content = next((v for k, v in reply.items() if k in text), "5")
        body = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_vlm_judge_against_loopback_server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Judge)
    srv.daemon_threads, srv.requests = True, []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
        r = build_reward({"name": "vlm_judge", "args": {"url": url, "model": "qwen-judge", "retries": 1}})
        b = RewardBatch(
            prompts=["a dog", "a cat", "two birds"],
            images=[Image.new("RGB", (8, 8))] * 3,
            metadata=[{}, {}, {"questions": ["q1: is there a bird?", "q2: are there two?"]}],
        )
        out = r(b)
        assert out.scores[0] == pytest.approx(0.9)
        assert math.isnan(out.scores[1]) and out.details[1]["answers"][0]["reply"] == "no idea"
        assert out.scores[2] == pytest.approx(0.5)
        path, req = srv.requests[0]
        assert path == "/v1/chat/completions" and req["model"] == "qwen-judge"
        assert req["messages"][-1]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    finally:
        srv.shutdown()
