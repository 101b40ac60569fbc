"""Controlled wrong scenes (the stand-in for a weak image_1): each kind breaks at least one GenEval clause.

Kinds that cannot break a prompt's clauses are not offered for it (GenEval's includes are "at least", so an
extra object only breaks counting prompts, through their exclude clause).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from irg_rl.tasks.shapes.layout import as_rng, cell_object, cell_of, layout_scene, relations_between
from irg_rl.tasks.shapes.world import Scene, SceneObject, ShapesWorldConfig

CORRUPTION_KINDS: tuple[str, ...] = (
    "wrong_count",
    "wrong_color",
    "wrong_position",
    "missing_object",
    "extra_object",
    "wrong_shape",
    "extra_copy",
    "rebind",
)
# the kinds drawn by default. Two errors the tiny model's own first images often make are opt-in
# (ShapesDataConfig.corruption_kinds) so that the default data stay as they were: "extra_copy" (one more copy of a
# drawn object) and "rebind" (an object takes the shape, or else the colour, of another object in the scene).
DEFAULT_CORRUPTION_KINDS: tuple[str, ...] = tuple(
    k for k in CORRUPTION_KINDS if k not in ("extra_copy", "rebind")
)


def applicable_corruptions(
    meta: dict, cfg: ShapesWorldConfig, allowed: tuple[str, ...] | list[str] = DEFAULT_CORRUPTION_KINDS
) -> list[str]:
    """The corruption kinds among `allowed` that make this prompt fail."""
    kinds = ["missing_object"]
    # an extra object breaks every prompt when the world forbids extras, else only the exclude clause
    if cfg.forbid_extra_objects or meta.get("exclude"):
        kinds.append("extra_copy")
    if meta.get("tag") == "counting" or meta.get("exclude"):
        kinds += ["wrong_count", "extra_object"]
    if any("color" in r for r in meta["include"]) and len(cfg.colors) > 1:
        kinds.append("wrong_color")
    if any("position" in r for r in meta["include"]):
        kinds.append("wrong_position")
    if _rebind_pairs(meta):
        kinds.append("rebind")
    if len(cfg.shapes) > 1:
        kinds.append("wrong_shape")
    return [k for k in CORRUPTION_KINDS if k in kinds and k in allowed]


def _free_spot(scene: Scene, cfg: ShapesWorldConfig, rng: np.random.Generator) -> tuple[float, float]:
    """Centre for one more object that overlaps nothing (a free cell in grid layout)."""
    if cfg.layout == "grid":
        used = {cell_of(o, cfg) for o in scene}
        free = [c for c in range(cfg.grid_size**2) if c not in used]
        o = cell_object("square", "red", free[int(rng.integers(len(free)))], cfg)
        return o.cx, o.cy
    s, n = float(cfg.object_px), cfg.image_size
    for _ in range(5000):
        x, y = rng.uniform(s / 2 + 1, n - s / 2 - 1, size=2)
        if all(max(abs(x - o.cx), abs(y - o.cy)) >= s + 2 for o in scene):
            return float(x), float(y)
    raise ValueError("no free spot for an extra object; lower object_size or object counts")


def _copy_in_free_spot(
    scene: Scene, pick: int, cfg: ShapesWorldConfig, rng: np.random.Generator
) -> SceneObject:
    """One more copy of scene[pick], placed where it overlaps nothing."""
    x, y = _free_spot(scene, cfg, rng)
    return dataclasses.replace(scene[pick], cx=x, cy=y)


def _objects_of(meta: dict) -> list[int]:
    """Include index of each object layout_scene makes (objects come in include order)."""
    owner = []
    for i, req in enumerate(meta["include"]):
        owner += [i] * req["count"]
    return owner


def _rebind_pairs(meta: dict) -> list[tuple[int, int, str]]:
    """(include a, include b, attribute) triples such that giving one of a's objects b's attribute breaks the
    prompt: the shape when the two classes differ, else the colour when both are coloured differently."""
    inc = meta["include"]
    pairs = []
    for a in range(len(inc)):
        for b in range(len(inc)):
            if a == b:
                continue
            if inc[a]["class"] != inc[b]["class"]:
                pairs.append((a, b, "shape"))
            elif inc[a].get("color") and inc[b].get("color") and inc[a]["color"] != inc[b]["color"]:
                pairs.append((a, b, "color"))
    return pairs


def corrupt(
    meta: dict,
    cfg: ShapesWorldConfig,
    rng: np.random.Generator | int | None = None,
    kind: str | None = None,
    scene: Scene | None = None,
    allowed: tuple[str, ...] | list[str] = DEFAULT_CORRUPTION_KINDS,
) -> tuple[Scene, str]:
    """A wrong scene for the prompt and its kind (drawn among the applicable kinds when `kind` is None).

    scene: the correct scene to corrupt (as made by `layout_scene` for this prompt, objects in include order);
    a fresh layout is drawn when None. The input scene is not modified.
    allowed: the kinds that may be drawn (an explicit `kind` must be applicable among CORRUPTION_KINDS).
    """
    rng = as_rng(rng)
    kinds = applicable_corruptions(meta, cfg, allowed if kind is None else CORRUPTION_KINDS)
    if not kinds:
        raise ValueError(f"no corruption among {list(allowed)} can break prompt '{meta['prompt']}'")
    if kind is None:
        # the generic kinds (missing_object, wrong_shape) are drawn half as often as the others
        w = np.array([1.0 if k in ("missing_object", "wrong_shape") else 2.0 for k in kinds])
        kind = kinds[int(rng.choice(len(kinds), p=w / w.sum()))]
    elif kind not in kinds:
        raise ValueError(f"corruption '{kind}' cannot break prompt '{meta['prompt']}'; applicable: {kinds}")
    scene = list(scene) if scene is not None else layout_scene(meta, cfg, rng)
    owner = _objects_of(meta)
    pick = int(rng.integers(len(scene)))
    if kind == "missing_object":
        del scene[pick]
    elif kind == "wrong_count":
        req = meta["include"][0]
        if req["count"] > 1 and rng.random() < 0.5:
            del scene[pick]
        else:
            scene.append(_copy_in_free_spot(scene, pick, cfg, rng))
    elif kind == "extra_copy":
        scene.append(_copy_in_free_spot(scene, pick, cfg, rng))
    elif kind == "rebind":
        pairs = _rebind_pairs(meta)
        a, b, attr = pairs[int(rng.integers(len(pairs)))]
        ks = [k for k, i in enumerate(owner) if i == a]
        k = ks[int(rng.integers(len(ks)))]
        donor = scene[owner.index(b)]
        scene[k] = dataclasses.replace(scene[k], **{attr: getattr(donor, attr)})
    elif kind == "extra_object":
        req = meta["exclude"][0]
        x, y = _free_spot(scene, cfg, rng)
        color = cfg.colors[int(rng.integers(len(cfg.colors)))]
        scene.append(SceneObject(req["class"], color, x, y, float(cfg.object_px)))
    elif kind == "wrong_color":
        colored = [k for k, i in enumerate(owner) if "color" in meta["include"][i]]
        k = colored[int(rng.integers(len(colored)))]
        others = [c for c in cfg.colors if c != scene[k].color]
        scene[k] = dataclasses.replace(scene[k], color=others[int(rng.integers(len(others)))])
    elif kind == "wrong_shape":
        others = [s for s in cfg.shapes if s != scene[pick].shape]
        scene[pick] = dataclasses.replace(scene[pick], shape=others[int(rng.integers(len(others)))])
    elif kind == "wrong_position":
        a = next(k for k, i in enumerate(owner) if "position" in meta["include"][i])
        b = owner.index(int(meta["include"][owner[a]]["position"][1]))
        rel = meta["include"][owner[a]]["position"][0]
        pa, pb = scene[a], scene[b]
        scene[a] = dataclasses.replace(pa, cx=pb.cx, cy=pb.cy)
        scene[b] = dataclasses.replace(pb, cx=pa.cx, cy=pa.cy)
        assert rel not in relations_between(scene[a].box(), scene[b].box(), cfg.position_margin)
    return scene, kind
