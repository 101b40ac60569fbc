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
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    reward = build_reward({"name": a.reward, "args": parse_args_kv(a.arg)})
    server = make_server(reward, a.host, a.port)
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
