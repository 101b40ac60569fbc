"""`scripts/serve_reward.py`: expose any registered reward over HTTP (loopback by default), with the stdlib server
(`--backend http`, one process) or Ray Serve (`--backend ray_serve`: replicas, request batching, Serve's proxy)."""

from __future__ import annotations

import argparse
import logging
import sys

from rewards.registry import build_reward
from rewards.serving.http_server import make_server
from rewards.spec import parse_args_kv

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
    p.add_argument(
        "--backend", choices=["http", "ray_serve"], default="http", help="stdlib server or Ray Serve"
    )
    p.add_argument("--replicas", type=int, default=1, help="ray_serve: reward replicas")
    p.add_argument(
        "--max-batch-size", type=int, default=8, help="ray_serve: requests scored in one reward call"
    )
    p.add_argument(
        "--batch-wait-s", type=float, default=0.01, help="ray_serve: wait this long to fill a batch"
    )
    p.add_argument("--num-cpus", type=float, default=1.0, help="ray_serve: CPUs per replica")
    p.add_argument("--num-gpus", type=float, default=0.0, help="ray_serve: GPUs per replica")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if a.backend == "ray_serve":
        return _serve_with_ray(a)
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


def _serve_with_ray(a) -> int:
    import time

    from ray import serve

    from rewards.serving.ray_serve import serve_reward

    url = serve_reward(
        {"name": a.reward, "args": parse_args_kv(a.arg)},
        host=a.host,
        port=a.port,
        num_replicas=a.replicas,
        max_batch_size=a.max_batch_size,
        batch_wait_s=a.batch_wait_s,
        max_ongoing_requests=a.max_concurrent,
        max_body=int(a.max_body_mb * 1024 * 1024),
        num_cpus=a.num_cpus,
        num_gpus=a.num_gpus,
    )
    print(
        f"serving reward '{a.reward}' with Ray Serve on {url} (POST /score, GET /health, GET /stats)",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
