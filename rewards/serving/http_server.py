"""A stdlib HTTP server exposing one reward over `rewards.serving.protocol` (loopback by default).

Routes: GET /health -> {"reward": name, "status": "ok"}; POST /score -> scores (see protocol.py).
Replies, all JSON with {"error"} on failure:
- 400: a malformed request (missing or non-numeric Content-Length, bad JSON, not the protocol's shape);
- 413: a body over `max_body` bytes (not read);
- 422: a well-formed batch the reward rejects (it raised ValueError / TypeError / KeyError, e.g. metadata it cannot
  score) - never retried by the client, since the same request would fail again;
- 500: any other scoring failure (retried by the client);
- 503: more than `max_concurrent` requests in flight (retried by the client after a pause).
Each connection has a socket timeout (`timeout_s`), so a client that stops sending cannot hold a thread forever.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from rewards.contract import Reward
from rewards.serving.handling import (
    REJECTED,
    RequestError,
    content_length,
    decode_score_request,
    scoring_error,
)
from rewards.serving.protocol import encode_output

__all__ = ["make_server", "serve_in_thread"]

log = logging.getLogger(__name__)

# largest request body accepted by default (bytes): a batch of 16 1024^2 PNGs fits comfortably
MAX_BODY = 64 * 1024 * 1024


def make_server(
    reward: Reward,
    host: str = "127.0.0.1",
    port: int = 0,
    max_body: int = MAX_BODY,
    timeout_s: float = 60.0,
    max_concurrent: int = 8,
) -> ThreadingHTTPServer:
    """An HTTP server bound to (host, port) scoring with `reward`; port 0 picks a free port (see server_port).

    Requests are handled in threads (at most `max_concurrent` at once; more get 503) but scored one at a time (a
    lock) because most models are not thread-safe.
    """
    if max_body < 1 or timeout_s <= 0 or max_concurrent < 1:
        raise ValueError("make_server: need max_body >= 1, timeout_s > 0 and max_concurrent >= 1")
    lock = threading.Lock()
    slots = threading.BoundedSemaphore(max_concurrent)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = timeout_s  # socket timeout of each connection (StreamRequestHandler applies it)

        def log_message(self, fmt: str, *args) -> None:
            log.info("%s %s", self.address_string(), fmt % args)

        def _reply(self, status: int, obj: dict) -> None:
            body = json.dumps(obj).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            if self.path.rstrip("/") == "/health":
                self._reply(200, {"reward": reward.name, "status": "ok"})
            else:
                self._reply(404, {"error": f"unknown path {self.path}; use GET /health or POST /score"})

        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            if not slots.acquire(blocking=False):
                self.close_connection = True
                self._reply(503, {"error": f"busy: {max_concurrent} requests in flight; retry later"})
                return
            try:
                self._score()
            finally:
                slots.release()

        def _score(self) -> None:
            if self.path.rstrip("/") != "/score":
                self._reply(404, {"error": f"unknown path {self.path}; use POST /score"})
                return
            try:
                length = content_length(self.headers.get("Content-Length"), max_body)
            except RequestError as e:
                self.close_connection = True  # the body is not read: the connection cannot be reused
                self._reply(e.status, {"error": e.message})
                return
            try:
                batch = decode_score_request(self.rfile.read(length), reward.name)
                with lock:
                    try:
                        out = reward(batch)
                    except Exception as err:  # noqa: BLE001 - every scoring failure becomes a 422 or a 500
                        if not isinstance(err, REJECTED):
                            log.exception("reward '%s' failed", reward.name)
                        raise scoring_error(reward.name, err) from err
            except RequestError as e:
                self._reply(e.status, {"error": e.message})
                return
            self._reply(200, encode_output(reward.name, out))

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def serve_in_thread(
    reward: Reward, host: str = "127.0.0.1", port: int = 0, **limits
) -> tuple[ThreadingHTTPServer, str]:
    """Start a server in a daemon thread; returns (server, base_url). Call server.shutdown() to stop it.
    `limits`: max_body, timeout_s, max_concurrent (see make_server)."""
    server = make_server(reward, host, port, **limits)
    threading.Thread(target=server.serve_forever, daemon=True, name=f"reward-server-{reward.name}").start()
    h, p = server.server_address[:2]
    return server, f"http://{h}:{p}"
