"""A stdlib HTTP server exposing one reward over `rewards.serving.protocol` (loopback by default).

Routes: GET /health -> {"reward": name, "status": "ok"}; POST /score -> scores (see protocol.py).
Bad requests get 400 with {"error"}, scoring failures 500 with {"error"} (the client retries those).
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from rewards.contract import Reward
from rewards.serving.protocol import ProtocolError, decode_batch, encode_output

__all__ = ["make_server", "serve_in_thread"]

log = logging.getLogger(__name__)

# largest request body accepted (bytes); a batch of 64 1024^2 PNGs is well under this
MAX_BODY = 512 * 1024 * 1024


def make_server(reward: Reward, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server bound to (host, port) scoring with `reward`; port 0 picks a free port (see server_port).

    Requests are handled in threads but scored one at a time (a lock) because most models are not thread-safe.
    """
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

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
            if self.path.rstrip("/") != "/score":
                self._reply(404, {"error": f"unknown path {self.path}; use POST /score"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0 or length > MAX_BODY:
                self._reply(400, {"error": f"Content-Length {length} out of range (1..{MAX_BODY})"})
                return
            try:
                req = json.loads(self.rfile.read(length))
                if not isinstance(req, dict):
                    raise ProtocolError("request: expected a JSON object")
                asked = req.get("reward")
                if asked is not None and asked != reward.name:
                    raise ProtocolError(f"request.reward: this server scores '{reward.name}', not '{asked}'")
                batch = decode_batch(req.get("batch"))
            except (ValueError, ProtocolError) as e:
                self._reply(400, {"error": str(e)})
                return
            try:
                with lock:
                    out = reward(batch)
            except Exception as e:  # noqa: BLE001 - report any scoring failure to the client as a 500
                log.exception("reward '%s' failed", reward.name)
                self._reply(500, {"error": f"reward '{reward.name}' failed: {type(e).__name__}: {e}"})
                return
            self._reply(200, encode_output(reward.name, out))

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def serve_in_thread(
    reward: Reward, host: str = "127.0.0.1", port: int = 0
) -> tuple[ThreadingHTTPServer, str]:
    """Start a server in a daemon thread; returns (server, base_url). Call server.shutdown() to stop it."""
    server = make_server(reward, host, port)
    threading.Thread(target=server.serve_forever, daemon=True, name=f"reward-server-{reward.name}").start()
    h, p = server.server_address[:2]
    return server, f"http://{h}:{p}"
