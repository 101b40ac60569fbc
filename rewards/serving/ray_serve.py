"""Serve a reward with Ray Serve: replicas across a Ray cluster, request batching, and Serve's HTTP proxy (bound to
loopback by default) speaking the same JSON + base64 protocol as the stdlib server, so `HttpReward` (serve: http,
retries included) is the client either way.

    python scripts/serve_reward.py --backend ray_serve --reward shapes --replicas 2 --max-batch-size 16

Routes (under `route_prefix`): GET /health, GET /stats (this replica's request and batch counts), POST /score.
Concurrent requests that reach one replica within `batch_wait_s` are scored as one reward call (at most
`max_batch_size` requests) and split back; if that joint call fails, each request is scored alone so one bad
request cannot fail its neighbours. Replies follow `rewards.serving.handling` (400 / 413 / 422 / 500). Each
replica takes at most `max_ongoing_requests` at once (Serve queues or rejects the rest), and requests are bounded by
`max_body` bytes and Serve's own `request_timeout_s`.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from rewards.contract import RewardBatch, RewardOutput
from rewards.serving.handling import RequestError, content_length, decode_score_request, scoring_error
from rewards.serving.protocol import encode_output

__all__ = ["reward_app", "serve_reward", "MAX_BODY"]

# largest request body accepted by default (bytes)
MAX_BODY = 64 * 1024 * 1024


def _split(out: RewardOutput, sizes: list[int]) -> list[RewardOutput]:
    """A joint output cut back into the requests' outputs (`sizes` samples each, in order)."""
    bounds = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    return [out.select(list(range(a, b))) for a, b in pairwise(bounds)]


def reward_app(
    spec: dict[str, Any],
    num_replicas: int = 1,
    max_batch_size: int = 8,
    batch_wait_s: float = 0.01,
    max_ongoing_requests: int = 16,
    max_body: int = MAX_BODY,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
):
    """A Serve application (`serve.run` it) scoring with the reward `spec` (a RewardSpec dict, served locally
    inside each replica)."""
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    if num_replicas < 1 or max_batch_size < 1 or max_body < 1 or max_ongoing_requests < 1:
        raise ValueError(
            "reward_app: replicas, max_batch_size, max_ongoing_requests and max_body must be >= 1"
        )

    @serve.deployment(
        num_replicas=num_replicas,
        max_ongoing_requests=max_ongoing_requests,
        ray_actor_options={"num_cpus": num_cpus, "num_gpus": num_gpus},
    )
    class RewardDeployment:
        def __init__(self, reward_spec: dict[str, Any]) -> None:
            from rewards.registry import build_reward

            self.reward = build_reward({**reward_spec, "serve": "local"})
            self.requests = 0
            self.batches: list[int] = []

        def _score_one(self, batch: RewardBatch) -> RewardOutput | RequestError:
            try:
                return self.reward(batch)
            except Exception as err:  # noqa: BLE001 - becomes this request's 422 / 500
                return scoring_error(self.reward.name, err)

        @serve.batch(max_batch_size=max_batch_size, batch_wait_timeout_s=batch_wait_s)
        async def score_many(self, batches: list[RewardBatch]) -> list[RewardOutput | RequestError]:
            self.batches.append(len(batches))
            if len(batches) == 1:
                return [self._score_one(batches[0])]
            try:
                joint = self.reward(RewardBatch.concat(batches))
            except Exception:  # noqa: BLE001 - score each alone: only the failing request(s) get an error
                return [self._score_one(b) for b in batches]
            return _split(joint, [len(b) for b in batches])

        async def __call__(self, request: Request) -> JSONResponse:
            path = request.url.path.rstrip("/").rsplit("/", 1)[-1]
            if request.method == "GET" and path == "health":
                return JSONResponse({"reward": self.reward.name, "status": "ok"})
            if request.method == "GET" and path == "stats":
                return JSONResponse({"requests": self.requests, "batches": list(self.batches)})
            if request.method != "POST" or path != "score":
                return JSONResponse({"error": f"unknown route {request.method} {request.url.path}"}, 404)
            try:
                length = content_length(request.headers.get("content-length"), max_body)
                body = await request.body()
                if len(body) != length:
                    raise RequestError(400, f"body of {len(body)} bytes, Content-Length said {length}")
                batch = decode_score_request(body, self.reward.name)
            except RequestError as e:
                return JSONResponse({"error": e.message}, e.status)
            self.requests += 1
            out = await self.score_many(batch)
            if isinstance(out, RequestError):
                return JSONResponse({"error": out.message}, out.status)
            return JSONResponse(encode_output(self.reward.name, out))

    return RewardDeployment.bind(spec)


def serve_reward(
    spec: dict[str, Any],
    host: str = "127.0.0.1",
    port: int = 8000,
    route_prefix: str = "/",
    name: str = "reward",
    **app_options: Any,
) -> str:
    """Start Serve's HTTP proxy on (host, port) (loopback by default), deploy the reward there and return its
    base URL for `HttpReward` / `serve: http`. Joins a running Ray (RAY_ADDRESS) or starts a local one."""
    import ray
    from ray import serve

    if not ray.is_initialized():
        ray.init(include_dashboard=False)
    serve.start(http_options={"host": host, "port": port})
    serve.run(reward_app(spec, **app_options), name=name, route_prefix=route_prefix)
    prefix = route_prefix.rstrip("/")
    return f"http://{host}:{port}{prefix}"
