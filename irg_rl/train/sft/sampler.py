"""Streaming, rank-sharded, resumable sampling over the six IRGL learning modes.

Each mode is an endless, deterministic sequence of rows (epoch e = the mode's parquet files in an order shuffled by
`(seed, mode, e)`, rows in file order). Global index g of that sequence is read by rank `g % world_size`, so ranks
never share a row. Only the parquet row group holding the current row is decoded (a 300K-row dataset never has to
fit in memory). A rank's position is a small state dict: per-mode next index, the mixing RNG, a sample counter and
any sample held back by the token budget. Resuming with the same process count continues exactly; with a different
count every mode restarts at the smallest unread global index over the old ranks (at most world_size - 1 rows per
mode are read twice, none skipped).
"""

from __future__ import annotations

import bisect
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from irg_rl.data.format import (
    CONVERSATION_COLUMN,
    Conversation,
    DataFormatError,
    ReadStats,
    mode_files,
    parse_conversation,
)
from irg_rl.data.modes import check_mode


@dataclass
class RawSample:
    """One conversation drawn by the sampler, with where it came from."""

    # learning mode (folder name)
    mode: str
    # global index in the mode's endless sequence
    index: int
    # parquet file it was read from
    file: str
    # row inside that file
    row: int
    # the parsed conversation
    conversation: Conversation
    # unique id of the sample across ranks and steps (seeds its noise and dropout)
    uid: int


def _seed_for(*parts: object) -> int:
    return zlib.crc32("|".join(str(p) for p in parts).encode())


class ModeStream:
    """Endless row stream of one learning mode, sharded over ranks by global index."""

    def __init__(
        self,
        root: str | Path | Sequence[str | Path],
        mode: str,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle_files: bool = True,
        on_error: str = "raise",
        check_images: bool = False,
        stats: ReadStats | None = None,
    ):
        self.mode = check_mode(mode)
        roots = as_roots(root)
        # the roots' files in root order, each root's sorted: one mode can be spread over several datasets
        self.files = [f for r in roots for f in mode_files(r, mode)]
        if not self.files:
            where = ", ".join(str(Path(r) / mode) for r in roots)
            raise FileNotFoundError(
                f"no parquet files for mode '{mode}' under {where}; "
                f"give it weight 0 in data.mode_weights or build the data"
            )
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.shuffle_files, self.on_error, self.check_images = shuffle_files, on_error, check_images
        self.stats = stats if stats is not None else ReadStats()
        self._row_groups: list[list[int]] = []  # per file: cumulative row counts at row-group starts
        self.rows_per_file: list[int] = []
        for f in self.files:
            try:
                meta = pq.ParquetFile(f).metadata
            except Exception as exc:  # pyarrow raises several types for unreadable files
                raise DataFormatError(f, -1, "<file>", f"is not a readable parquet file ({exc})") from None
            starts, n = [], 0
            for i in range(meta.num_row_groups):
                starts.append(n)
                n += meta.row_group(i).num_rows
            self._row_groups.append(starts)
            self.rows_per_file.append(n)
        self.total = sum(self.rows_per_file)
        if self.total == 0:
            raise DataFormatError(self.files[0], -1, CONVERSATION_COLUMN, f"mode '{mode}' has no rows")
        self.next_index = rank
        self._cache_key: tuple[int, int] | None = None
        self._cache: list = []

    def _file_order(self, epoch: int) -> list[int]:
        order = list(range(len(self.files)))
        if self.shuffle_files:
            np.random.default_rng(_seed_for(self.seed, self.mode, epoch)).shuffle(order)
        return order

    def locate(self, index: int) -> tuple[int, int]:
        """(file number, row in file) of global index `index`."""
        epoch, pos = divmod(index, self.total)
        for f in self._file_order(epoch):
            if pos < self.rows_per_file[f]:
                return f, pos
            pos -= self.rows_per_file[f]
        raise AssertionError("unreachable")

    def _cell(self, f: int, row: int):
        group = bisect.bisect_right(self._row_groups[f], row) - 1
        if self._cache_key != (f, group):
            table = pq.ParquetFile(self.files[f]).read_row_group(group, columns=[CONVERSATION_COLUMN])
            self._cache, self._cache_key = table.column(0).to_pylist(), (f, group)
        return self._cache[row - self._row_groups[f][group]]

    def read_at(self, index: int) -> tuple[str, int, Conversation]:
        """Parse global index `index`; raises `DataFormatError` (file, row, field) if the row is malformed."""
        f, row = self.locate(index)
        conv = parse_conversation(self._cell(f, row), str(self.files[f]), row, self.check_images)
        return str(self.files[f]), row, conv

    def next(self) -> tuple[int, str, int, Conversation]:
        """The next row of this rank: `(global index, file, row, conversation)`; skips bad rows if asked."""
        for _ in range(self.total + 1):
            index = self.next_index
            self.next_index += self.world_size
            try:
                file, row, conv = self.read_at(index)
            except DataFormatError as exc:
                if self.on_error == "raise":
                    raise
                self.stats.skipped += 1
                if len(self.stats.errors) < 20:
                    self.stats.errors.append(str(exc))
                continue
            self.stats.rows += 1
            return index, file, row, conv
        raise DataFormatError(
            self.files[0], -1, CONVERSATION_COLUMN, f"every row of mode '{self.mode}' is malformed"
        )


def as_roots(root: str | Path | Sequence[str | Path]) -> list[Path]:
    """One dataset root or several, as a list of existing folders (a missing one is an error naming it)."""
    roots = [Path(root)] if isinstance(root, (str, Path)) else [Path(r) for r in root]
    if not roots:
        raise ValueError("no dataset root given")
    for r in roots:
        if not r.is_dir():
            raise FileNotFoundError(f"IRGL data root not found: {r} (data.root / data.extra_roots)")
    return roots


class MixedSampler:
    """Draws samples from the modes by weight; mandatory modes first in every micro-batch."""

    def __init__(
        self,
        root: str | Path | Sequence[str | Path],
        mode_weights: dict[str, float],
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        mandatory_modes: list[str] | tuple[str, ...] = (),
        shuffle_files: bool = True,
        on_error: str = "raise",
        check_images: bool = False,
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world size {world_size}")
        self.rank, self.world_size, self.seed = rank, world_size, seed
        # "skip": malformed rows (and corrupt images found when packing) are counted in `stats` and skipped
        self.on_error = on_error
        self.stats = ReadStats()
        self.modes = [m for m, w in mode_weights.items() if w > 0]
        if not self.modes:
            raise ValueError("data.mode_weights: no mode has a positive weight")
        weights = np.array([mode_weights[m] for m in self.modes], dtype=np.float64)
        self.probs = weights / weights.sum()
        self.mandatory = list(mandatory_modes)
        for m in self.mandatory:
            if m not in self.modes:
                raise ValueError(f"data.mandatory_modes: '{m}' has no positive weight in data.mode_weights")
        self.streams = {
            m: ModeStream(root, m, rank, world_size, seed, shuffle_files, on_error, check_images, self.stats)
            for m in self.modes
        }
        self.rng = np.random.default_rng(_seed_for(seed, "mix", rank))
        self.counter = 0
        self.held: list[RawSample] = []

    def _draw(self, mode: str) -> RawSample:
        index, file, row, conv = self.streams[mode].next()
        uid = self.counter * self.world_size + self.rank
        self.counter += 1
        return RawSample(mode, index, file, row, conv, uid)

    def next_sample(self, mode: str | None = None) -> RawSample:
        """A sample of `mode`, or of a mode drawn by weight (a held-back sample comes first)."""
        if mode is None and self.held:
            return self.held.pop(0)
        if mode is None:
            mode = self.modes[int(self.rng.choice(len(self.modes), p=self.probs))]
        return self._draw(mode)

    def hold(self, sample: RawSample) -> None:
        """Give back a sample that did not fit the current micro-batch; it opens the next one."""
        self.held.append(sample)

    def micro_batch_start(self) -> list[RawSample]:
        """Samples that must open a micro-batch: held-back ones, then one per mandatory mode not among them."""
        out, self.held = self.held, []
        present = {s.mode for s in out}
        out += [self._draw(m) for m in self.mandatory if m not in present]
        return out

    # -- resumable position ------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "rank": self.rank,
            "world_size": self.world_size,
            "seed": self.seed,
            "next_index": {m: s.next_index for m, s in self.streams.items()},
            "rng": self.rng.bit_generator.state,
            "counter": self.counter,
            "held": [[s.mode, s.index, s.uid] for s in self.held],
        }

    def load_state_dict(self, states: list[dict], step: int = 0) -> None:
        """Restore from the states of all ranks of the saved run (`states[r]` = old rank r)."""
        old_world = len(states)
        if old_world == self.world_size:
            st = states[self.rank]
            for m, s in self.streams.items():
                s.next_index = int(st["next_index"].get(m, self.rank))
            self.rng.bit_generator.state = st["rng"]
            self.counter = int(st["counter"])
            self.held = []
            for mode, index, uid in st["held"]:
                file, row, conv = self.streams[mode].read_at(index)
                self.held.append(RawSample(mode, index, file, row, conv, uid))
            return
        # different process count: restart every mode at the smallest unread global index
        for m, s in self.streams.items():
            unread = [int(st["next_index"][m]) for st in states if m in st["next_index"]]
            unread += [int(index) for st in states for mode, index, _ in st["held"] if mode == m]
            start = min(unread) if unread else 0
            s.next_index = start + (self.rank - start) % self.world_size
        self.counter = max(int(st["counter"]) for st in states) * old_world // self.world_size + 1
        self.rng = np.random.default_rng(_seed_for(self.seed, "mix", self.rank, "resume", step))
        self.held = []
