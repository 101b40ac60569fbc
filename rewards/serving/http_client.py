"""`HttpReward`: a reward scored by a remote server speaking `rewards.serving.protocol` (see serve_reward.py)."""

from __future__ import annotations

from rewards.contract import Reward, RewardBatch, RewardOutput
from rewards.serving.protocol import ProtocolError, decode_output, encode_batch
from rewards.serving.transport import RemoteError, post_json

__all__ = ["HttpReward", "RemoteError"]


class HttpReward(Reward):
    """Remote reward over HTTP (JSON + base64 PNG); bounded timeouts, retries with exponential backoff."""

    def __init__(
        self,
        name: str,
        url: str,
        timeout_s: float = 120.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        batch_size: int = 0,
    ) -> None:
        super().__init__()
        self.name = name
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.batch_size = batch_size

    @property
    def endpoint(self) -> str:
        return f"{self.url}/score"

    def score(self, batch: RewardBatch) -> RewardOutput:
        size = self.batch_size or len(batch)
        chunks = [list(range(i, min(i + size, len(batch)))) for i in range(0, len(batch), size)]
        return RewardOutput.concat([self._score_chunk(batch.select(idx)) for idx in chunks])

    def _score_chunk(self, batch: RewardBatch) -> RewardOutput:
        who = f"reward '{self.name}'"
        reply = post_json(
            self.endpoint,
            {"reward": self.name, "batch": encode_batch(batch)},
            who=who,
            timeout_s=self.timeout_s,
            retries=self.retries,
            backoff_s=self.backoff_s,
        )
        try:
            return decode_output(reply, len(batch))
        except ProtocolError as e:
            raise RemoteError(f"{who} at {self.endpoint}: malformed response body ({e})") from e
