"""Short thinking texts: think_1 plans (varied templates) and four-part reflections on image_1.

Texts stay short with a small vocabulary so the tiny CPU model can learn them. A reflection is an analysis of
image_1 followed by the three headed sections of the IRG reflection format.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from irg_rl.tasks.shapes.layout import as_rng
from irg_rl.tasks.shapes.world import (
    NUMBER_WORDS,
    Scene,
    SceneObject,
    ShapesWorldConfig,
    article,
    noun_phrase,
    number_word,
    plural,
)

HEADINGS: tuple[str, ...] = (
    "Detailed Explanation of Required Improvements",
    "Step-by-Step Modification Guidance",
    "Final Comprehensive Prompt for the Improved Image",
)

# the reflection's verdict when image_1 is already right, and a pattern that finds it in a generated reflection
KEEP_SENTENCES = (
    "The first image already matches the prompt, so I keep it.",
    "This is already correct; I keep the image as it is.",
)
KEEP_VERDICT = re.compile(r"already (matches|correct)", re.IGNORECASE)
# the verdict when image_1 is wrong, and its pattern (recipes set sampling.keep_pattern / revise_pattern to these)
REVISE_SENTENCES = (
    "The first image does not match the prompt.",
    "This image has mistakes.",
    "The image is wrong.",
)
REVISE_VERDICT = re.compile(r"does not match|has mistakes|is wrong", re.IGNORECASE)

# how think_1's plan sentence opens (`write_think1` writes one of these; `planned_objects` reads them)
PLAN_OPENERS = ("I will place", "Plan:", "I will draw")

_ROWS = ("top", "middle", "bottom")
_COLS = ("left", "centre", "right")


def region(cx: float, cy: float, image_size: int) -> str:
    """'top left', 'centre', 'bottom right', ... (thirds of the image)."""
    r = _ROWS[min(int(3 * cy / image_size), 2)]
    c = _COLS[min(int(3 * cx / image_size), 2)]
    if r == "middle" and c == "centre":
        return "centre"
    return f"{r} {c}" if c != "centre" else f"{r} centre"


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def request_phrase(meta: dict) -> str:
    """What the prompt asks for, in words: 'two circles', 'a circle left of a square', 'a red circle and ...'."""
    inc = meta["include"]
    for req in inc:
        if "position" in req:
            ref = inc[req["position"][1]]
            return f"{noun_phrase(req['class'])} {req['position'][0]} {noun_phrase(ref['class'])}"
    return _join([noun_phrase(r["class"], r["count"], r.get("color")) for r in inc])


def _placed(obj: SceneObject, size: int) -> str:
    words = f"{obj.color} {obj.shape}"
    return f"{article(words)} {words} at the {region(obj.cx, obj.cy, size)}"


def scene_phrase(scene: Scene, cfg: ShapesWorldConfig) -> str:
    """'a red circle at the top left and a blue square at the centre'."""
    return _join([_placed(o, cfg.image_size) for o in scene])


def write_think1(
    meta: dict,
    rng: np.random.Generator | int | None = None,
    scene: Scene | None = None,
    cfg: ShapesWorldConfig | None = None,
) -> str:
    """A plan for the image, `<think> ... </think>`; names colours and places when `scene` (+ `cfg`) is given."""
    rng = as_rng(rng)
    req = request_phrase(meta)
    parts = [
        _pick(
            rng,
            [
                f"The prompt asks for {req}.",
                f"I need to draw {req}.",
                f"The image should show {req}.",
                f"The user wants {req}.",
            ],
        )
    ]
    for r in meta["include"]:
        if "position" in r:
            ref = meta["include"][r["position"][1]]["class"]
            rel = r["position"][0]
            parts.append(
                _pick(
                    rng,
                    [f"The {r['class']} must be {rel} the {ref}.", f"Keep the {r['class']} {rel} the {ref}."],
                )
            )
    if meta.get("exclude"):
        r = meta["include"][0]
        n = r["count"]
        parts.append(
            _pick(
                rng,
                [
                    f"Exactly {number_word(n)} {plural(r['class'], n)}, no more.",
                    f"I must count exactly {number_word(n)}.",
                ],
            )
        )
    if scene is not None:
        if cfg is None:
            raise ValueError(
                "write_think1: pass cfg together with scene (it gives the image size for places)"
            )
        objs = scene_phrase(scene, cfg)
        parts.append(_pick(rng, [f"{opener} {objs}." for opener in PLAN_OPENERS]))
    parts.append(
        _pick(rng, ["The background stays white.", "Use a plain white background.", "Keep it simple."])
    )
    return "<think> " + " ".join(parts) + " </think>"


def _clause_sentence(c: dict, meta: dict) -> str:
    if c["kind"] == "count":
        return f"It needs {noun_phrase(c['class'], c['need'])}, but I see {number_word(c['found'])}."
    if c["kind"] == "color":
        return (
            f"It needs {noun_phrase(c['class'], c['need'], c['color'])}, but I see {number_word(c['found'])}."
        )
    if c["kind"] == "position":
        ref = meta["include"][c["target"]]["class"]
        return f"The {c['class']} must be {c['relation']} the {ref}."
    if c["kind"] == "extra":
        return f"Nothing else should be drawn, but I also see {', '.join(c['extra'])}."
    return f"There must be fewer than {number_word(c['limit'])} {plural(c['class'], 2)}, but I see {number_word(c['found'])}."


def _check_item(c: dict, meta: dict) -> str:
    """One requirement of the prompt, as the checklist names it: 'a red circle', 'the circle left of the square'."""
    if c["kind"] == "count":
        return noun_phrase(c["class"], c["need"])
    if c["kind"] == "color":
        return noun_phrase(c["class"], c["need"], c["color"])
    if c["kind"] == "position":
        return f"the {c['class']} {c['relation']} the {meta['include'][c['target']]['class']}"
    if c["kind"] == "extra":
        return "nothing else"
    return f"fewer than {number_word(c['limit'])} {plural(c['class'], 2)}"


def check_items(score_of_image1, meta: dict) -> list[str]:
    """['a red circle, yes', 'a blue square, no', 'nothing else, yes']: every clause of the scorer's reading of
    image_1, in prompt order (an include's count is folded into its colour clause, which implies it)."""
    clauses = score_of_image1.clauses
    with_color = {c["include"] for c in clauses if c["kind"] == "color"}
    return [
        f"{_check_item(c, meta)}, {'yes' if c['ok'] else 'no'}"
        for c in clauses
        if not (c["kind"] == "count" and c["include"] in with_color)
    ]


def checklist(score_of_image1, meta: dict) -> str:
    """'Check: a red circle, yes; a blue square, no; nothing else, yes.' (`check_items` as one sentence)."""
    return "Check: " + "; ".join(check_items(score_of_image1, meta)) + "."


def _centre(o) -> tuple[float, float]:
    """(x, y) centre of a Detection (`center`) or a SceneObject (`cx`, `cy`)."""
    return o.center if hasattr(o, "center") else (o.cx, o.cy)


def edit_steps(detected, target: Scene, cfg: ShapesWorldConfig) -> list[str]:
    """Edits that turn the seen objects into the target scene: keep/move, recolour, reshape, add, remove.

    detected: objects with shape, color and center (Detection) or cx/cy (SceneObject).
    """

    seen = list(detected)
    todo = list(target)
    steps: list[str] = []
    size = cfg.image_size

    def take(match) -> list[tuple]:
        pairs = []
        for t in list(todo):
            cands = [d for d in seen if match(d, t)]
            if not cands:
                continue
            d = min(cands, key=lambda d: np.hypot(_centre(d)[0] - t.cx, _centre(d)[1] - t.cy))
            seen.remove(d)
            todo.remove(t)
            pairs.append((d, t))
        return pairs

    for d, t in take(lambda d, t: d.shape == t.shape and d.color == t.color):
        if np.hypot(_centre(d)[0] - t.cx, _centre(d)[1] - t.cy) > cfg.cell_px * 0.75:
            steps.append(f"Move the {d.color} {d.shape} to the {region(t.cx, t.cy, size)}.")
    for d, t in take(lambda d, t: d.shape == t.shape):
        steps.append(f"Make the {d.color} {d.shape} {t.color}.")
    for d, t in take(lambda d, t: d.color == t.color):
        steps.append(f"Turn the {d.color} {d.shape} into {article(t.shape)} {t.shape}.")
    for d in seen:
        steps.append(f"Remove the {d.color} {d.shape} at the {region(*_centre(d), size)}.")
    for t in todo:
        steps.append(f"Add {_placed(t, size)}.")
    return steps


def located_description(detected, cfg: ShapesWorldConfig) -> str:
    """'I see a red circle at the top left and a blue square at the centre.': every seen object with its place, in
    reading order (row by row of the layout grid, then left to right), or 'I see no shapes.'.

    detected: objects with shape, color and center (Detection) or cx/cy (SceneObject).
    """
    if not detected:
        return "I see no shapes."
    objs = [SceneObject(o.shape, o.color, *_centre(o), cfg.object_px) for o in detected]
    objs.sort(key=lambda o: (int(o.cy // cfg.cell_px), int(o.cx // cfg.cell_px), o.cx))
    return "I see " + scene_phrase(objs, cfg) + "."


def write_reflection(
    meta: dict,
    score_of_image1,
    rng: np.random.Generator | int | None = None,
    target_scene: Scene | None = None,
    cfg: ShapesWorldConfig | None = None,
    final_scene: bool = True,
    style: str = "verdict_first",
) -> str:
    """The four-part reflection on image_1, `<think> ... </think>`.

    score_of_image1: the ShapesScore of image_1 (its description and failed clauses drive the text).
    target_scene (+ cfg): the improved image's scene, for concrete edit steps and (when `final_scene`) the final
    prompt; with `final_scene=False` the final prompt is the user prompt alone.
    style: "checklist" puts `checklist(...)` between the description and the verdict; "verdict_first" does not;
    "located" is verdict_first with `located_description` as the first sentence (needs cfg)
    (ShapesWorldConfig.reflection_style).
    """
    rng = as_rng(rng)
    if target_scene is not None and cfg is None:
        raise ValueError("write_reflection: pass cfg together with target_scene")
    ok = score_of_image1.strict >= 1.0
    desc = score_of_image1.description
    if style == "checklist":
        desc += " " + checklist(score_of_image1, meta)
    elif style == "located":
        if cfg is None:
            raise ValueError("write_reflection: style 'located' needs cfg (it gives the places)")
        # the scorer's first sentence counts objects; the relation sentences after it stay
        rest = desc.split(". ", 1)[1] if ". " in desc else ""
        desc = (located_description(score_of_image1.objects, cfg) + " " + rest).strip()
    elif style != "verdict_first":
        raise ValueError(
            f"write_reflection: style must be 'checklist', 'verdict_first' or 'located', got {style!r}"
        )
    if ok:
        analysis = (
            desc
            + " "
            + _pick(
                rng,
                list(KEEP_SENTENCES),
            )
        )
        explain = "No improvements are needed."
        steps = ["Keep every shape as it is."]
    else:
        failed = score_of_image1.failed()
        analysis = (
            desc
            + " "
            + _pick(
                rng,
                list(REVISE_SENTENCES),
            )
        )
        # a failed colour clause already says what its include's failed count clause would
        color_fail = {c["include"] for c in failed if c["kind"] == "color"}
        failed = [c for c in failed if not (c["kind"] == "count" and c["include"] in color_fail)]
        explain = " ".join(dict.fromkeys(_clause_sentence(c, meta) for c in failed))
        steps = edit_steps(score_of_image1.objects, target_scene, cfg) if target_scene is not None else []
        if not steps:
            steps = ["Redraw the shapes so that every requirement holds."]
    final = meta["prompt"]
    if target_scene is not None and final_scene:
        final += ", with " + scene_phrase(target_scene, cfg)
    guide = " ".join(f"{i}. {s}" for i, s in enumerate(steps, start=1))
    body = f"{analysis}\n{HEADINGS[0]}: {explain}\n{HEADINGS[1]}: {guide}\n{HEADINGS[2]}: {final}."
    return f"<think> {body} </think>"


_STRUCTURE = re.compile(
    r"^\s*<think>(?P<a>.*?)"
    + "".join(rf"{re.escape(h)}:?(?P<s{i}>.*?)" for i, h in enumerate(HEADINGS))
    + r"</think>\s*$",
    re.S,
)


def reflection_has_structure(text: str) -> bool:
    """True when text is `<think> analysis H1: ... H2: ... H3: ... </think>` with every part non-empty."""
    m = _STRUCTURE.match(text or "")
    if m is None:
        return False
    if any(text.count(h) != 1 for h in HEADINGS):
        return False
    return all(m.group(g).strip(" \n:.") for g in ("a", "s0", "s1", "s2"))


_CHECKLIST = re.compile(r"Check:(?P<items>[^.]*)\.")
# write_think1's plan sentence and one placed object in it
_PLAN = re.compile("(?:" + "|".join(map(re.escape, PLAN_OPENERS)) + r") (?P<objects>[^.]*)\.")
_PLACED = re.compile(r"\ban? (?P<color>\w+) (?P<shape>\w+) at the ")
_OBJECT = re.compile(r"(?P<n>\w+) (?P<color>\w+) (?P<shape>\w+?)s?(?= and |, |\.|$)")


def checklist_items(think_2: str) -> list[str] | None:
    """The items of a reflection's checklist (`check_items`' wording), or None when it has none."""
    m = _CHECKLIST.search(think_2 or "")
    if m is None:
        return None
    return [item.strip() for item in m.group("items").split(";") if item.strip()]


def reflection_description(think_2: str) -> str:
    """The reflection's reading of image_1: its text before the checklist, the verdict or the first heading."""
    body = re.sub(r"</?think>", "", think_2 or "")
    cuts = [
        m.start()
        for m in (_CHECKLIST.search(body), KEEP_VERDICT.search(body), REVISE_VERDICT.search(body))
        if m
    ]
    cuts.append(body.find("\n") if "\n" in body else len(body))
    text = body[: min(cuts)].strip()
    # a verdict sentence opens with words before its matched phrase ("The first image already matches")
    return re.sub(r"\s*(The first image|This is|This image|The image)\s*$", "", text).strip()


def described_objects(text: str) -> Counter | None:
    """{(colour, shape): count} named by an "I see ..." sentence (`describe`'s counted wording or
    `located_description`'s placed one, any order; a colour and shape named twice add up), or None when the text
    does not open with one that parses."""
    first = text.split(".")[0]
    if first.strip() == "I see no shapes":
        return Counter()
    if not first.startswith("I see "):
        return None
    if " at the " in first:
        placed = Counter((m.group("color"), m.group("shape")) for m in _PLACED.finditer(first))
        return placed or None
    found: Counter = Counter()
    for m in _OBJECT.finditer(first[len("I see ") :]):
        if m.group("n") not in NUMBER_WORDS:
            return None
        found[(m.group("color"), m.group("shape"))] += NUMBER_WORDS.index(m.group("n"))
    return found or None


def planned_objects(think_1: str) -> Counter | None:
    """{(colour, shape): count} placed by think_1's plan sentence (`write_think1`'s wording: "I will place a red
    circle at the top left and a blue square at the centre."), or None when think_1 has no plan sentence."""
    m = _PLAN.search(think_1 or "")
    if m is None:
        return None
    return Counter((o.group("color"), o.group("shape")) for o in _PLACED.finditer(m.group("objects")))
