"""GenEval-style prompts over the ShapesWorld vocabulary, with exact metadata and disjoint splits.

The prompt space of a world is finite, so it is enumerated per tag and each prompt is assigned to the train or
held-out split by a stable hash of its text (the lowest-hash ``heldout_fraction`` of each tag, at least one, is
held out). A prompt therefore belongs to exactly one split whatever the seed.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import random

from irg_rl.data.task_plugin import BALANCES
from irg_rl.tasks.shapes.world import RELATIONS, TAGS, ShapesWorldConfig, noun_phrase

SPLITS = ("train", "heldout")


def _meta(tag: str, include: list[dict], prompt: str, exclude: list[dict] | None = None) -> dict:
    meta = {"tag": tag, "include": include}
    if exclude:
        meta["exclude"] = exclude
    meta["prompt"] = prompt
    return meta


def enumerate_tag(cfg: ShapesWorldConfig, tag: str) -> list[dict]:
    """Every prompt of one GenEval tag in this world, in a fixed order."""
    shapes, colors = cfg.shapes, cfg.colors
    pairs = list(itertools.permutations(shapes, 2))
    if tag == "single_object":
        return [_meta(tag, [{"class": s, "count": 1}], f"a photo of {noun_phrase(s)}") for s in shapes]
    if tag == "two_object":
        return [
            _meta(
                tag,
                [{"class": a, "count": 1}, {"class": b, "count": 1}],
                f"a photo of {noun_phrase(a)} and {noun_phrase(b)}",
            )
            for a, b in itertools.combinations(shapes, 2)
        ]
    if tag == "counting":
        return [
            _meta(
                tag,
                [{"class": s, "count": n}],
                f"a photo of {noun_phrase(s, n)}",
                exclude=[{"class": s, "count": n + 1}],
            )
            for s in shapes
            for n in range(2, cfg.max_count + 1)
        ]
    if tag == "colors":
        return [
            _meta(tag, [{"class": s, "count": 1, "color": c}], f"a photo of {noun_phrase(s, 1, c)}")
            for s in shapes
            for c in colors
        ]
    if tag == "position":
        # GenEval order: include[0] is the reference object, include[1] relates to it ("A left of B").
        return [
            _meta(
                tag,
                [{"class": b, "count": 1}, {"class": a, "count": 1, "position": [rel, 0]}],
                f"a photo of {noun_phrase(a)} {rel} {noun_phrase(b)}",
            )
            for a, b in pairs
            for rel in RELATIONS
        ]
    if tag == "color_attr":
        return [
            _meta(
                tag,
                [{"class": a, "count": 1, "color": ca}, {"class": b, "count": 1, "color": cb}],
                f"a photo of {noun_phrase(a, 1, ca)} and {noun_phrase(b, 1, cb)}",
            )
            for a, b in pairs
            for ca in colors
            for cb in colors
            if ca != cb
        ]
    raise ValueError(f"unknown GenEval tag '{tag}'; valid tags: {', '.join(TAGS)}")


def _hash01(text: str) -> float:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _heldout_texts(cfg: ShapesWorldConfig, metas: list[dict]) -> set[str]:
    """The held-out prompt texts of one tag: the lowest-hash fraction (at least one when the tag has two)."""
    texts = sorted((m["prompt"] for m in metas), key=_hash01)
    n_held = max(1, int(round(cfg.heldout_fraction * len(texts)))) if len(texts) > 1 else 0
    return set(texts[:n_held])


def split_of(meta: dict, cfg: ShapesWorldConfig) -> str:
    """'train' or 'heldout' for a prompt of this world (stable: depends only on the tag's prompt texts)."""
    return "heldout" if meta["prompt"] in _heldout_texts(cfg, enumerate_tag(cfg, meta["tag"])) else "train"


def enumerate_prompts(
    cfg: ShapesWorldConfig, split: str = "train", tags: list[str] | None = None
) -> list[dict]:
    """All prompts of a split (tags in GenEval order, then the fixed enumeration order)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    out = []
    for tag in tags or TAGS:
        metas = enumerate_tag(cfg, tag)
        held = _heldout_texts(cfg, metas)
        out += [m for m in metas if (m["prompt"] in held) == (split == "heldout")]
    return out


def generate_prompts(
    cfg: ShapesWorldConfig,
    num: int,
    seed: int = 0,
    split: str = "train",
    tags: list[str] | None = None,
    balance: str = "tag",
) -> list[dict]:
    """`num` GenEval metadata dicts from one split, deterministic in `seed`.

    balance "tag": tags take turns (round robin in GenEval's order, skipping tags with no prompt in this split);
    within a tag prompts are drawn from a seeded shuffle and only repeat once every prompt of the tag has been used.
    balance "prompt": every prompt of the split is equally likely (a seeded shuffle of the whole split, repeated),
    so tags appear in proportion to their prompt counts, as they do in the held-out evaluation.
    """
    if balance not in BALANCES:
        raise ValueError(f"generate_prompts: balance must be one of {BALANCES}, got {balance!r}")
    pools = {t: enumerate_prompts(cfg, split, [t]) for t in (tags or TAGS)}
    pools = {t: p for t, p in pools.items() if p}
    if not pools:
        raise ValueError(
            f"no prompts in split '{split}' for tags {tags or TAGS}; add shapes/colours to the world"
        )
    rng = random.Random(f"shapes-prompts-{seed}-{split}")
    if balance == "prompt":
        every = [m for pool in pools.values() for m in pool]
        out = []
        while len(out) < num:
            order = list(range(len(every)))
            rng.shuffle(order)
            out += [copy.deepcopy(every[i]) for i in order[: num - len(out)]]
        return out
    order = {t: [] for t in pools}
    out: list[dict] = []
    tag_cycle = itertools.cycle(list(pools))
    while len(out) < num:
        tag = next(tag_cycle)
        if not order[tag]:
            order[tag] = list(range(len(pools[tag])))
            rng.shuffle(order[tag])
        out.append(copy.deepcopy(pools[tag][order[tag].pop()]))
    return out


def validate_meta(meta: dict, cfg: ShapesWorldConfig, where: str = "metadata") -> dict:
    """Check a GenEval metadata dict against this world; raise ValueError naming the bad field."""
    if not isinstance(meta, dict):
        raise ValueError(
            f"{where}: expected a dict with 'tag', 'include', 'prompt', got {type(meta).__name__}"
        )
    for key in ("include", "prompt"):
        if key not in meta:
            raise ValueError(f"{where}: missing key '{key}' (GenEval schema: tag, include, exclude?, prompt)")
    include = meta["include"]
    if not isinstance(include, list) or not include:
        raise ValueError(
            f"{where}: 'include' must be a non-empty list of {{class, count, color?, position?}}"
        )
    for i, req in enumerate(list(include) + list(meta.get("exclude", []))):
        field = f"{where}: include[{i}]" if i < len(include) else f"{where}: exclude[{i - len(include)}]"
        if not isinstance(req, dict) or "class" not in req or "count" not in req:
            raise ValueError(f"{field}: needs 'class' and 'count', got {req!r}")
        if req["class"] not in cfg.shapes:
            raise ValueError(f"{field}.class: '{req['class']}' is not a shape of this world {cfg.shapes}")
        if not isinstance(req["count"], int) or req["count"] < 1:
            raise ValueError(f"{field}.count: must be a positive int, got {req['count']!r}")
        if "color" in req and req["color"] not in cfg.colors:
            raise ValueError(f"{field}.color: '{req['color']}' is not a colour of this world {cfg.colors}")
        if "position" in req:
            pos = req["position"]
            ok = isinstance(pos, (list, tuple)) and len(pos) == 2 and pos[0] in RELATIONS
            if not ok or not isinstance(pos[1], int) or not 0 <= pos[1] < min(i, len(include)):
                raise ValueError(
                    f"{field}.position: must be [relation, index of an earlier include] with relation in "
                    f"{list(RELATIONS)}, got {pos!r}"
                )
    return meta
