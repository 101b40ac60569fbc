"""The one typed trajectory object passed between rollout, rewards and training (and saved for offline DPO).

A `Trajectory` is one sampled IRG episode: its context pieces (system, prompt) and its segments in order,
`think_1, image_1, think_2, image_2` (fewer for the baselines). Text segments hold the sampled token ids and their
log-probs (under the temperature-scaled sampling distribution); image segments hold the decoded image, the final
latent tokens, the clean re-encoded tokens when the image is a later condition, and for the SDE window the
transitions `(x_t, x_next, t, t_next)` and their Gaussian log-probs. `TrajectoryBatch` adds the sampling settings,
the per-branch context of every image (which segments each CFG branch saw) and padded tensor views.

A trajectory stopped by a keep verdict (`sampling.on_keep: stop`) still has an `image_2` segment: image_1's
image and latents, with no recorded SDE step (K = 0), so its round-2 image is never trained. Batches may mix
stopped and continued trajectories; `sde_logprobs` pads and `sde_mask` says which steps exist.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 1


@dataclass
class TextSegment:
    """A sampled text piece (a think)."""

    # think_1 | think_2
    name: str
    # the piece as it sits in the context: <|im_start|>, the sampled ids, and <|im_end|> when it was forced
    context_ids: list[int]
    # sampled token ids [n] (long): context_ids[1 : 1 + n]; <|im_end|> is included when it was sampled
    token_ids: torch.Tensor
    # log-prob of each sampled token under the sampling distribution (softmax(logits / T); T=0: T=1) [n]
    logprobs: torch.Tensor
    # decoded text of the sampled ids (special tokens dropped)
    text: str
    # why sampling stopped: eos (sampled <|im_end|>) | stop_string | length (truncated)
    stop_reason: str
    kind: str = "text"


@dataclass
class ImageSegment:
    """A generated image and, for its stochastic steps, what training needs to re-score them."""

    # image_1 | image_2
    name: str
    # decoded image, uint8 [H, W, 3]
    image: torch.Tensor
    # latent token grid (h, w)
    grid_hw: tuple[int, int]
    # generated latent tokens x_0 [n, P] (float32)
    latents: torch.Tensor
    # clean VAE tokens of the decoded-and-re-encoded image when it is a later condition [n, P], else None
    cond_tokens: torch.Tensor | None
    # denoising step index of each recorded SDE transition [K] (long; K = 0 for Euler)
    step_index: torch.Tensor
    # latents before each recorded step [K, n, P]
    x_t: torch.Tensor
    # latents after each recorded step (the sampled ones) [K, n, P]
    x_next: torch.Tensor
    # time of each recorded step [K]
    t: torch.Tensor
    # time after each recorded step [K]
    t_next: torch.Tensor
    # Gaussian log-prob of each recorded transition, averaged over latent dims [K]
    logprobs: torch.Tensor
    kind: str = "image"


Segment = TextSegment | ImageSegment


@dataclass
class Trajectory:
    """One IRG episode for one prompt."""

    # the user prompt
    prompt: str
    # task metadata of the prompt (e.g. GenEval schema); {} if none
    metadata: dict
    # index of the prompt in the generate() call
    prompt_index: int
    # index of this sample among the prompt's G samples
    sample_index: int
    # seed of this trajectory's noise and token draws
    seed: int
    # system piece ids <|im_start|> ... <|im_end|> ([] = no system prompt)
    system_ids: list[int]
    # prompt piece ids <|im_start|> ... <|im_end|>
    prompt_ids: list[int]
    # segments in context order
    segments: list[Segment] = field(default_factory=list)
    # think_2's verdict on image_1: keep | revise | none (no clear verdict); None when verdicts are not read
    verdict: str | None = None
    # True when the keep verdict ended the trajectory (sampling.on_keep: stop): image_2 is image_1, not sampled
    stopped: bool = False

    def segment(self, name: str) -> Segment:
        for s in self.segments:
            if s.name == name:
                return s
        raise KeyError(f"trajectory has no segment {name!r}; it has {[s.name for s in self.segments]}")

    def has(self, name: str) -> bool:
        return any(s.name == name for s in self.segments)

    @property
    def final_image(self) -> torch.Tensor:
        return [s for s in self.segments if s.kind == "image"][-1].image


def _state(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _state(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_state(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _state(v) for k, v in obj.items()}
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    return obj


def _segment_from(d: dict) -> Segment:
    if d["kind"] == "text":
        return TextSegment(**d)
    d = dict(d)
    d["grid_hw"] = tuple(d["grid_hw"])
    return ImageSegment(**d)


@dataclass
class TrajectoryBatch:
    """Trajectories of one generate() call, ordered prompt-major (p0 s0, p0 s1, ..., p1 s0, ...)."""

    # the trajectories
    trajectories: list[Trajectory]
    # the IRGSamplingConfig used, as a dict
    settings: dict
    # euler | sde
    mode: str
    # per image: CFG branch name -> context segment names, e.g. {"image_2": {"main": [...], ...}}
    branch_segments: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    # wall-clock seconds and counters of the call (think tokens, denoising steps, ...)
    stats: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.trajectories)

    def __getitem__(self, i: int) -> Trajectory:
        return self.trajectories[i]

    def subset(self, index: list[int]) -> TrajectoryBatch:
        return TrajectoryBatch(
            [self.trajectories[i] for i in index], self.settings, self.mode, self.branch_segments, {}
        )

    def texts(self, name: str) -> list[str]:
        return [t.segment(name).text for t in self.trajectories]

    def images(self, name: str) -> list[torch.Tensor]:
        return [t.segment(name).image for t in self.trajectories]

    def text_tensors(self, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Padded sampled ids [N, L] (long), recorded log-probs [N, L], mask [N, L] (bool) of text segment `name`."""
        segs = [t.segment(name) for t in self.trajectories]
        L = max((s.token_ids.numel() for s in segs), default=0)
        ids = torch.zeros(len(segs), L, dtype=torch.long)
        lp = torch.zeros(len(segs), L)
        mask = torch.zeros(len(segs), L, dtype=torch.bool)
        for i, s in enumerate(segs):
            n = s.token_ids.numel()
            ids[i, :n], lp[i, :n], mask[i, :n] = s.token_ids, s.logprobs, True
        return ids, lp, mask

    def sde_logprobs(self, name: str) -> torch.Tensor:
        """Recorded SDE-step log-probs [N, K] of image segment `name`, 0 past a trajectory's own steps.

        K is the most steps any trajectory recorded: every sampled image of a call records the same window, and a
        trajectory stopped before image_2 records none (see `sde_mask`)."""
        segs = [t.segment(name) for t in self.trajectories]
        K = max((s.logprobs.numel() for s in segs), default=0)
        out = torch.zeros(len(segs), K)
        for i, s in enumerate(segs):
            out[i, : s.logprobs.numel()] = s.logprobs
        return out

    def sde_mask(self, name: str) -> torch.Tensor:
        """bool [N, K]: True where trajectory i recorded SDE step j of image segment `name` (see `sde_logprobs`)."""
        counts = [t.segment(name).logprobs.numel() for t in self.trajectories]
        K = max(counts, default=0)
        return torch.arange(K)[None, :] < torch.tensor(counts, dtype=torch.long)[:, None]

    def verdicts(self) -> list[str | None]:
        return [t.verdict for t in self.trajectories]

    def stopped(self) -> torch.Tensor:
        """bool [N]: trajectories ended by a keep verdict (no image_2 sampled)."""
        return torch.tensor([t.stopped for t in self.trajectories], dtype=torch.bool)

    def save(self, path: str | Path) -> Path:
        """Write the batch to one file (torch format, loadable with weights_only=True)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {"format": "irg_rl.TrajectoryBatch", "version": FORMAT_VERSION, **_state(self)}
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> TrajectoryBatch:
        path = Path(path)
        state = torch.load(path, weights_only=True)
        if not isinstance(state, dict) or state.get("format") != "irg_rl.TrajectoryBatch":
            raise ValueError(f"{path}: not a saved TrajectoryBatch (missing format marker)")
        if state.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path}: TrajectoryBatch version {state.get('version')} != {FORMAT_VERSION}")
        trajs = []
        for d in state["trajectories"]:
            d = dict(d)
            d["segments"] = [_segment_from(s) for s in d["segments"]]
            trajs.append(Trajectory(**d))
        return cls(trajs, state["settings"], state["mode"], state["branch_segments"], state["stats"])
