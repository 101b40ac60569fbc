"""Request handling shared by the reward servers (stdlib `http_server`, Ray Serve `ray_serve`): one place decides
what is a 400, a 413, a 422 or a 500, so every server answers the same input the same way.

- 400: missing or non-numeric Content-Length, a length out of range, a body that is not the protocol's JSON;
- 413: a body over the server's limit (not read);
- 422: a well-formed batch the reward rejects (ValueError / TypeError / KeyError): never retried by the client;
- 500: any other scoring failure (retried by the client).
"""

from __future__ import annotations

import json

from rewards.contract import RewardBatch
from rewards.serving.protocol import ProtocolError, decode_batch

__all__ = ["REJECTED", "RequestError", "content_length", "decode_score_request", "scoring_error"]

# errors of a reward that mean "this input cannot be scored" (client error, 422) rather than a server failure
REJECTED = (ValueError, TypeError, KeyError)


class RequestError(Exception):
    """An HTTP error reply: `status` and the message for the {"error"} body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def content_length(raw: str | None, max_body: int) -> int:
    """The request's body size from its Content-Length header; RequestError 400 / 413 when it cannot be read."""
    try:
        length = int(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise RequestError(400, f"Content-Length {raw!r} is missing or not a number") from None
    if length <= 0:
        raise RequestError(400, f"Content-Length {length} out of range (1..{max_body})")
    if length > max_body:
        raise RequestError(413, f"request of {length} bytes is over the server's limit of {max_body}")
    return length


def decode_score_request(body: bytes, reward_name: str) -> RewardBatch:
    """The batch of a POST /score body for the reward `reward_name`; RequestError 400 when malformed."""
    try:
        req = json.loads(body)
        if not isinstance(req, dict):
            raise ProtocolError("request: expected a JSON object")
        asked = req.get("reward")
        if asked is not None and asked != reward_name:
            raise ProtocolError(f"request.reward: this server scores '{reward_name}', not '{asked}'")
        return decode_batch(req.get("batch"))
    except (ValueError, ProtocolError) as e:
        raise RequestError(400, str(e)) from None


def scoring_error(reward_name: str, err: Exception) -> RequestError:
    """The reply for an exception raised while scoring: 422 for a rejected input, 500 otherwise."""
    if isinstance(err, REJECTED):
        return RequestError(422, f"reward '{reward_name}' rejected the batch: {type(err).__name__}: {err}")
    return RequestError(500, f"reward '{reward_name}' failed: {type(err).__name__}: {err}")
