"""`scripts/grpo.py` with rank-dependent micro-batches (rank r cuts its batch into r + 1 pieces), so the ranks
have different numbers of forward/backward passes to run: ZeRO-3 hangs unless the trainer pads them
(tests/test_rl_zero3.py launches this instead of scripts/grpo.py)."""

import os

from irg_rl.train.rl import grpo


def _ragged_micro_batches(self, n: int) -> list[list[int]]:
    k = min(n, int(os.environ.get("RANK", "0")) + 1)
    bounds = [round(i * n / k) for i in range(k + 1)]
    return [list(range(a, b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


if __name__ == "__main__":
    grpo.GRPOTrainer._micro_batches = _ragged_micro_batches
    grpo.main()
