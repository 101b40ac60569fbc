"""JSON POST with bounded timeouts and retries with exponential backoff (shared by reward and judge clients)."""

from __future__ import annotations

import json
import time
from typing import Any

import requests

__all__ = ["RemoteError", "post_json"]


class RemoteError(RuntimeError):
    """A remote scorer failed; the message names the reward, the endpoint and the last error."""


# HTTP statuses worth retrying: the server may recover (overload, restart, transient upstream failure)
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def post_json(
    url: str,
    body: dict,
    who: str,
    timeout_s: float,
    retries: int,
    backoff_s: float = 0.5,
    max_backoff_s: float = 10.0,
    headers: dict[str, str] | None = None,
    session: requests.Session | None = None,
) -> Any:
    """POST `body` as JSON to `url` and return the decoded JSON reply.

    Connection errors, timeouts and retryable statuses are retried `retries` times in all, sleeping
    backoff_s * 2**k between attempts (capped). A non-retryable 4xx or a reply that is not JSON fails at once.
    Every failure raises RemoteError naming `who` (the reward) and `url`.
    """
    data = json.dumps(body).encode("utf-8")
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    post = (session or requests).post
    last = "no attempt made"
    for attempt in range(retries):
        if attempt:
            time.sleep(min(backoff_s * 2 ** (attempt - 1), max_backoff_s))
        try:
            # (connect, read) timeouts: a dead host fails fast, a slow scorer gets the full budget
            resp = post(url, data=data, headers=hdrs, timeout=(min(timeout_s, 10.0), timeout_s))
        except requests.Timeout:
            last = f"timed out after {timeout_s:g} s"
            continue
        except requests.ConnectionError as e:
            last = f"connection failed ({type(e).__name__}: {e})"
            continue
        if resp.status_code != 200:
            last = f"HTTP {resp.status_code}: {_error_text(resp)}"
            if resp.status_code in RETRY_STATUSES:
                continue
            raise RemoteError(f"{who} at {url}: request rejected, {last}")
        try:
            return resp.json()
        except ValueError as e:
            raise RemoteError(
                f"{who} at {url}: malformed response body (not JSON: {resp.text[:200]!r})"
            ) from e
    raise RemoteError(f"{who} at {url}: failed after {retries} attempt(s); last error: {last}")


def _error_text(resp: requests.Response) -> str:
    try:
        obj = resp.json()
        if isinstance(obj, dict) and "error" in obj:
            return str(obj["error"])[:500]
    except ValueError:
        pass
    return resp.text[:500]
