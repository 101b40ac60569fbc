"""`scripts/serve_reward.py`: expose any registered reward over HTTP (loopback by default)."""

from __future__ import annotations

import argparse
import logging
import sys

from rewards.folder import parse_args_kv
from rewards.registry import build_reward
from rewards.serving.http_server import make_server

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Serve one registered reward over HTTP (JSON + base64 PNG).")
    p.add_argument("--reward", required=True, help="registered reward name or package.module:factory")
    p.add_argument(
        "--arg", action="append", default=[], help="reward argument key=value (YAML value); repeatable"
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback; 0.0.0.0 exposes it)")
    p.add_argument("--port", type=int, default=8765, help="port (0 picks a free one)")
    p.add_argument(
        "--max-body-mb", type=float, default=64.0, help="largest request body accepted (MiB; 413 above)"
    )
    p.add_argument("--timeout-s", type=float, default=60.0, help="socket timeout of each connection")
    p.add_argument("--max-concurrent", type=int, default=8, help="requests in flight at once (503 above)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    reward = build_reward({"name": a.reward, "args": parse_args_kv(a.arg)})
    server = make_server(
        reward,
        a.host,
        a.port,
        max_body=int(a.max_body_mb * 1024 * 1024),
        timeout_s=a.timeout_s,
        max_concurrent=a.max_concurrent,
    )
    host, port = server.server_address[:2]
    print(f"serving reward '{reward.name}' on http://{host}:{port} (POST /score, GET /health)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
