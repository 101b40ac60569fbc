"""Readers of each benchmark's published prompt-file format -> `list[EvalPrompt]`.

Formats (read from the public repositories; the files themselves are not shipped):
- ShapesWorld: the generated held-out split, or a JSONL file of GenEval-schema objects.
- GenEval `prompts/evaluation_metadata.jsonl`: one object per line, {"tag", "include", "exclude"?, "prompt"}.
- WISE: `data_verified/*_verified.json` (+ `merge.json`) or `WISE_legacy/data/*.json` (+ `*_rewrite.json`), JSON
  lists of {"prompt_id", "Prompt", "Explanation", "Category"?, "Subcategory"} (see `load_wise`).
- TIIF-Bench: `<type>_prompts.jsonl` lines {"type", "short_description", "long_description"}, and the
  line-aligned `<type>_eval_prompts.jsonl` lines {"type", "yn_question_list", "yn_answer_list"} in the sibling
  folder whose name ends in `_eval_prompts` (e.g. data/testmini_prompts + data/testmini_eval_prompts).
- GenAI-Bench `genai_image.json`: a dict id -> {"prompt", "basic_skills"?, "advanced_skills"?, ...}
  (skills as a list or a comma-separated string; assumption: these key names, checked against the dataset card).
- OneIG-Bench `OneIG-Bench.csv`: columns category, id, prompt_en (prompt_cn for `language=zh`); ids restart per
  category, so our id is `<category>_<id>`.
- DPG-Bench (ELLA `dpg_bench/`): `prompts/<item_id>.txt` holds each prompt; `dpg_bench.csv` holds one row per
  question: item_id, text, proposition_id, dependency ("0" = none, else comma-separated parent proposition ids),
  category_broad, category_detailed, tuple, question_natural_language.
Judge-scored sets carry their questions in `metadata["questions"]` (what `vlm_judge` asks), with
`question_weights`, `expected_answers` or `dependencies` where the benchmark aggregates answers that way
(applied by `irg_rl.eval.scoring`).
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from irg_rl.data.geneval_metadata import check_metadata
from irg_rl.data.jsonl import read_jsonl_objects
from irg_rl.data.task_plugin import build_task
from irg_rl.eval.prompt import EvalPrompt, PromptSetError

__all__ = [
    "load_task",
    "load_geneval",
    "load_wise",
    "load_tiif",
    "load_genai",
    "load_oneig",
    "load_dpg",
    "read_jsonl",
    "wise_questions",
    "wise_category",
    "wise_overall",
    "WISE_CATEGORIES",
    "WISE_WEIGHTS",
]

# WISE's WiScore weights of consistency, realism and aesthetic quality (each judged 0-2)
WISE_WEIGHTS = (0.7, 0.2, 0.1)


def _safe_id(text: str) -> str:
    """A filesystem-safe id (output folder name)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "item"


def read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """[(line number, object)] of a JSONL file; a bad line raises `PromptSetError` naming file and line."""
    return read_jsonl_objects(path, PromptSetError)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise PromptSetError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from e


def _need(obj: dict, key: str, where: str, kind: type = str) -> Any:
    if key not in obj:
        raise PromptSetError(f"{where}: missing key '{key}' (keys present: {sorted(obj)})")
    value = obj[key]
    if not isinstance(value, kind):
        raise PromptSetError(f"{where}: '{key}' must be a {kind.__name__}, got {type(value).__name__}")
    return value


def _read_csv(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict]]:
    """[(row number, row dict)] of a CSV file with a header holding `required` columns (row 1 = header)."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in required if c not in header]
        if missing:
            raise PromptSetError(
                f"{path}: missing column(s) {missing} in the header {header}; expected at least {list(required)}"
            )
        return [
            (n, {(k or "").strip(): (v or "") for k, v in row.items()}) for n, row in enumerate(reader, 2)
        ]


# ---- task plug-ins (ShapesWorld) and GenEval ----------------------------------------------------------------------------


def _geneval_prompt(obj: dict, where: str, index: int) -> EvalPrompt:

    prompt = _need(obj, "prompt", where)
    _need(obj, "include", where, list)
    try:
        check_metadata(obj, where=where)
    except ValueError as e:
        raise PromptSetError(str(e)) from e
    return EvalPrompt(id=f"{index:05d}", prompt=prompt, metadata=dict(obj), category=str(obj.get("tag", "")))


def load_task(
    name: str, path: Path | None = None, num: int | None = None, **options: Any
) -> list[EvalPrompt]:
    """Held-out prompts of task plug-in `name` built with `options` (ShapesWorld: its world fields): every prompt
    of the split (or `num` of them), or the GenEval-schema JSONL at `path`, each row checked against the task."""
    task = build_task(name, options, where=f"prompt set '{name}'")
    if path is None:
        metas = task.heldout_prompts(num)
        return [_geneval_prompt(m, f"{name} held-out prompt {i}", i) for i, m in enumerate(metas)]
    out = []
    for i, (n, obj) in enumerate(read_jsonl(path)):
        where = f"{path}:{n}"
        try:
            task.check_prompt(obj, where=where)
        except ValueError as e:
            raise PromptSetError(str(e)) from e
        out.append(_geneval_prompt(obj, where, i))
    return out


def load_geneval(path: Path) -> list[EvalPrompt]:
    """GenEval's evaluation_metadata.jsonl (ids 00000, 00001, ... as GenEval's output folders)."""
    return [_geneval_prompt(obj, f"{path}:{n}", i) for i, (n, obj) in enumerate(read_jsonl(path))]


# ---- WISE -------------------------------------------------------------------------------------------------

# WISE's categories by prompt id (both releases), and their weights in the overall WiScore
WISE_CATEGORIES = (
    ("culture", 1, 400, 0.4),
    ("time", 401, 520, 0.12),
    ("space", 521, 640, 0.12),
    ("biology", 641, 760, 0.12),
    ("physics", 761, 880, 0.12),
    ("chemistry", 881, 1000, 0.12),
)
WISE_SCORINGS = ("verified", "legacy")
WISE_VARIANTS = ("auto", "original", "rewrite", "verified")


def wise_category(prompt_id: int) -> str | None:
    """WISE's category of a prompt id (1-400 culture, 401-520 time, ..., 881-1000 chemistry), else None."""
    for name, lo, hi, _ in WISE_CATEGORIES:
        if isinstance(prompt_id, int) and lo <= prompt_id <= hi:
            return name
    return None


def wise_overall(category_scores: dict[str, float]) -> float:
    """Overall WiScore: 0.4 x culture + 0.12 x each of the five other categories (all six are needed)."""
    missing = [name for name, *_ in WISE_CATEGORIES if name not in category_scores]
    if missing:
        raise ValueError(
            f"wise_overall: no score for {missing}; the overall WiScore needs all six categories"
        )
    return sum(w * category_scores[name] for name, _, _, w in WISE_CATEGORIES)


def wise_questions(prompt: str, explanation: str, scoring: str = "verified") -> list[str]:
    """The judge question(s) for one WISE image. `verified` (the current release): one binary question, 1 = the
    image realises the prompt's world-knowledge meaning and is realistic and usable. `legacy` (the original
    release): consistency, realism and aesthetic quality, each 0-2."""
    context = f'The prompt was: "{prompt}". What the prompt means: "{explanation}".'
    if scoring == "verified":
        return [
            f"{context} Does the image correctly show what the prompt means (not just something the prompt "
            f"mentions), and is it realistic and visually usable? Beauty does not matter. Answer with one line "
            f"'Score: N/1': 1 = yes, 0 = no."
        ]
    if scoring != "legacy":
        raise PromptSetError(f"WISE scoring must be one of {WISE_SCORINGS}, got {scoring!r}")
    reply = "Answer with one line 'Score: N/2'."
    return [
        f"{context} How completely and accurately does the image show what the prompt means? "
        f"0 = key elements missing or contradicted, 1 = partly, 2 = fully. {reply}",
        f"{context} How realistic is the image (physics, materials, lighting, space)? "
        f"0 = clearly implausible, 1 = minor flaws, 2 = photorealistic. {reply}",
        f"{context} How good is the image aesthetically (composition, colour, style)? "
        f"0 = unappealing, 1 = acceptable, 2 = exceptional. {reply}",
    ]


def _wise_files(path: Path, variant: str) -> tuple[list[Path], str]:
    """The prompt files of a WISE folder for `variant`, and the variant it resolved to.

    The two published layouts: the current release's `data_verified/` (three `*_verified.json` files, ids 1-1000,
    plus `merge.json`, a copy of all of them) and the original release's `WISE_legacy/data/` (three category files
    plus a `*_rewrite.json` twin of each, with the same prompt ids and rewritten prompts). Twins and copies are
    never read together: their ids collide."""
    if not path.is_dir():
        return [path], "file"
    files = sorted(path.glob("*.json"))
    if not files:
        raise PromptSetError(
            f"{path}: no *.json files; expected WISE's data_verified/ or WISE_legacy/data/ folder"
        )
    verified = [f for f in files if f.name.endswith("_verified.json")]
    rewrites = [f for f in files if f.name.endswith("_rewrite.json")]
    originals = [f for f in files if f not in verified and f not in rewrites and f.name != "merge.json"]
    if variant == "auto":
        variant = "verified" if verified or (path / "merge.json").is_file() else "original"
    if variant == "verified":
        chosen = verified or ([path / "merge.json"] if (path / "merge.json").is_file() else [])
    elif variant == "rewrite":
        chosen = rewrites
    elif variant == "original":
        chosen = originals
    else:
        raise PromptSetError(f"WISE variant must be one of {WISE_VARIANTS}, got {variant!r}")
    if not chosen:
        raise PromptSetError(
            f"{path}: no files for WISE variant '{variant}' (verified: *_verified.json or merge.json; original: "
            f"the category files; rewrite: *_rewrite.json); files present: {[f.name for f in files]}"
        )
    return chosen, variant


def load_wise(path: Path, variant: str = "auto", scoring: str | None = None) -> list[EvalPrompt]:
    """WISE prompts from one JSON file or a release folder (see `_wise_files`): `variant` auto (verified if
    present, else the original prompts) | original | rewrite | verified; `scoring` verified (binary, the default
    for the verified prompts) | legacy (three 0-2 questions, the default for the original release). The tag is
    the WiScore category of the prompt id (or the file's Subcategory where the id is outside 1-1000)."""
    files, resolved = _wise_files(path, variant)
    scoring = scoring or ("legacy" if resolved in ("original", "rewrite") else "verified")
    if scoring not in WISE_SCORINGS:
        raise PromptSetError(f"WISE scoring must be one of {WISE_SCORINGS}, got {scoring!r}")
    out = []
    for file in files:
        data = _read_json(file)
        if not isinstance(data, list):
            raise PromptSetError(f"{file}: expected a JSON list of prompt objects, got {type(data).__name__}")
        for i, obj in enumerate(data):
            where = f"{file}[{i}]"
            if not isinstance(obj, dict):
                raise PromptSetError(f"{where}: expected an object, got {type(obj).__name__}")
            if "prompt_id" not in obj:
                raise PromptSetError(f"{where}: missing key 'prompt_id' (keys present: {sorted(obj)})")
            prompt = _need(obj, "Prompt", where)
            explanation = _need(obj, "Explanation", where)
            sub = str(obj.get("Subcategory", "") or "")
            cat = str(obj.get("Category", "") or "")
            legacy = scoring == "legacy"
            meta = {
                "prompt_id": obj["prompt_id"],
                "explanation": explanation,
                "category": cat,
                "subcategory": sub,
                "wise_category": wise_category(obj["prompt_id"]),
                "wise_scoring": scoring,
                "questions": wise_questions(prompt, explanation, scoring),
                "question_names": ["consistency", "realism", "aesthetic_quality"] if legacy else ["wiscore"],
                "question_weights": list(WISE_WEIGHTS) if legacy else [1.0],
            }
            tag = wise_category(obj["prompt_id"]) or sub or cat
            out.append(EvalPrompt(_safe_id(obj["prompt_id"]), prompt, meta, tag))
    return out


# ---- TIIF-Bench -------------------------------------------------------------------------------------------


def _tiif_eval_file(prompt_file: Path, eval_path: Path | None) -> Path | None:
    prefix = prompt_file.name.removesuffix(".jsonl").removesuffix("_prompts")
    name = f"{prefix}_eval_prompts.jsonl"
    if eval_path is not None:
        return eval_path / name if eval_path.is_dir() else eval_path
    folder = prompt_file.parent
    for cand in (folder.with_name(folder.name.replace("_prompts", "_eval_prompts")) / name, folder / name):
        if cand.is_file():
            return cand
    return None


def load_tiif(path: Path, variant: str = "short", eval_path: str | Path | None = None) -> list[EvalPrompt]:
    """TIIF-Bench prompts (`variant` short | long description) with their yes/no questions and answers."""
    if variant not in ("short", "long"):
        raise PromptSetError(f"tiif: variant must be 'short' or 'long', got {variant!r}")
    if path.is_dir():
        files = sorted(p for p in path.glob("*.jsonl") if not p.name.endswith("_eval_prompts.jsonl"))
    else:
        files = [path]
    if not files:
        raise PromptSetError(f"{path}: no <type>_prompts.jsonl files (TIIF-Bench data/testmini_prompts)")
    out = []
    for file in files:
        prefix = _safe_id(file.name.removesuffix(".jsonl").removesuffix("_prompts"))
        ev = _tiif_eval_file(file, Path(eval_path) if eval_path is not None else None)
        if ev is None or not ev.is_file():
            raise PromptSetError(
                f"{file}: cannot find its questions file {ev or prefix + '_eval_prompts.jsonl'}; TIIF-Bench scores "
                "images with yes/no questions: pass eval_path=<folder with *_eval_prompts.jsonl> "
                "(e.g. prompts.eval_path=data/testmini_eval_prompts)"
            )
        rows, evals = read_jsonl(file), read_jsonl(ev)
        if len(rows) != len(evals):
            raise PromptSetError(
                f"{file} has {len(rows)} prompts but {ev} has {len(evals)} rows; they must align"
            )
        for i, ((n, obj), (m, eobj)) in enumerate(zip(rows, evals, strict=True)):
            where, ewhere = f"{file}:{n}", f"{ev}:{m}"
            kind = _need(obj, "type", where)
            prompt = _need(obj, f"{variant}_description", where)
            questions = _need(eobj, "yn_question_list", ewhere, list)
            answers = _need(eobj, "yn_answer_list", ewhere, list)
            if eobj.get("type", kind) != kind:
                raise PromptSetError(
                    f"{ewhere}: type {eobj.get('type')!r} != prompt type {kind!r} at {where}"
                )
            if len(questions) != len(answers) or not questions:
                raise PromptSetError(
                    f"{ewhere}: {len(questions)} questions but {len(answers)} answers; need one answer per question"
                )
            bad = [a for a in answers if str(a).strip().lower() not in ("yes", "no")]
            if bad:
                raise PromptSetError(f"{ewhere}: yn_answer_list entries must be 'yes' or 'no', got {bad[:3]}")
            meta = {
                "type": kind,
                "variant": variant,
                "short_description": obj.get("short_description", ""),
                "long_description": obj.get("long_description", ""),
                "questions": [str(q) for q in questions],
                "expected_answers": [str(a).strip().lower() for a in answers],
            }
            out.append(EvalPrompt(f"{prefix}_{i:04d}", prompt, meta, kind))
    return out


# ---- GenAI-Bench, OneIG-Bench, DPG-Bench ------------------------------------------------------------------


def _skills(value: Any, where: str) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [s.strip() for s in value.split(",") if s.strip()]
    if isinstance(value, list):
        return [str(s) for s in value]
    raise PromptSetError(
        f"{where}: skills must be a list or a comma-separated string, got {type(value).__name__}"
    )


# GenAI-Bench's skill tags (genai_skills.json keys), by group
GENAI_BASIC = ("attribute", "scene", "spatial relation", "action relation", "part relation")
GENAI_ADVANCED = ("counting", "comparison", "differentiation", "negation", "universal")


def _genai_skill_file(path: Path, items: list[tuple[str, dict]]) -> dict[str, list[str]]:
    """key -> skill tags from `genai_skills.json` beside the prompt file: {tag: [1-based prompt index, ...]}, the
    index naming the prompt whose key is its 5-digit form (7 -> "00007"), as GenAI-Bench's own evaluation reads it."""
    f = path.parent / "genai_skills.json"
    data = _read_json(f)
    if not isinstance(data, dict):
        raise PromptSetError(
            f"{f}: expected a JSON object tag -> [prompt index, ...], got {type(data).__name__}"
        )
    keys = {k for k, _ in items}
    tags: dict[str, list[str]] = {}
    for tag, indices in data.items():
        if not isinstance(indices, list):
            raise PromptSetError(
                f"{f}[{tag!r}]: expected a list of prompt indices, got {type(indices).__name__}"
            )
        for idx in indices:
            key = f"{int(idx):05d}" if isinstance(idx, int) or str(idx).isdigit() else str(idx)
            if key not in keys:
                raise PromptSetError(f"{f}[{tag!r}]: prompt index {idx!r} ({key}) is not in {path.name}")
            tags.setdefault(key, []).append(str(tag))
    return tags


def load_genai(path: Path) -> list[EvalPrompt]:
    """GenAI-Bench `genai_image.json` (dict id -> item; a list of items with 'id' is accepted too) with its skill
    tags from `genai_skills.json` in the same folder (the published layout). Items that carry `basic_skills` /
    `advanced_skills` themselves need no skills file. Category: advanced if any advanced skill, basic if any basic
    one, else untagged (the release has 7 untagged prompts). Neither skill source present is an error: the
    per-skill scores would be lost silently."""
    data = _read_json(path)
    if isinstance(data, list):
        items = [(str(_need(d, "id", f"{path}[{i}]", object)), d) for i, d in enumerate(data)]
    elif isinstance(data, dict):
        items = [(str(k), v) for k, v in data.items()]
    else:
        raise PromptSetError(
            f"{path}: expected a JSON object id -> {{prompt, ...}}, got {type(data).__name__}"
        )
    for key, item in items:
        if not isinstance(item, dict):
            raise PromptSetError(
                f"{path}[{key!r}]: expected an object with 'prompt', got {type(item).__name__}"
            )
        _need(item, "prompt", f"{path}[{key!r}]")
    inline = any("basic_skills" in v or "advanced_skills" in v for _, v in items)
    skill_file = path.parent / "genai_skills.json"
    if not inline and not skill_file.is_file():
        raise PromptSetError(
            f"{path}: no skill tags: put GenAI-Bench's genai_skills.json beside it ({skill_file} is missing), as "
            f"published with genai_image.json"
        )
    tags = _genai_skill_file(path, items) if skill_file.is_file() else {}
    out = []
    for key, item in items:
        where = f"{path}[{key!r}]"
        prompt = item["prompt"]
        basic = _skills(item.get("basic_skills"), f"{where}.basic_skills")
        advanced = _skills(item.get("advanced_skills"), f"{where}.advanced_skills")
        basic += [t for t in tags.get(key, []) if t in GENAI_BASIC and t not in basic]
        advanced += [t for t in tags.get(key, []) if t in GENAI_ADVANCED and t not in advanced]
        meta = {"genai_id": key, "basic_skills": basic, "advanced_skills": advanced}
        category = "advanced" if advanced else ("basic" if basic else "untagged")
        out.append(EvalPrompt(_safe_id(key), prompt, meta, category))
    return out


def load_oneig(path: Path, language: str = "en") -> list[EvalPrompt]:
    """OneIG-Bench CSV (language en -> prompt_en, zh -> prompt_cn)."""
    column = {"en": "prompt_en", "zh": "prompt_cn"}.get(language)
    if column is None:
        raise PromptSetError(f"oneig: language must be 'en' or 'zh', got {language!r}")
    out = []
    for n, row in _read_csv(path, ("category", "id", column)):
        if not row[column].strip():
            raise PromptSetError(f"{path}: row {n}: empty '{column}'")
        meta = {k: v for k, v in row.items() if k and not k.startswith("prompt_")}
        out.append(
            EvalPrompt(_safe_id(f"{row['category']}_{row['id']}"), row[column].strip(), meta, row["category"])
        )
    return out


def _dpg_paths(path: Path) -> tuple[Path, Path | None]:
    if path.is_dir():
        csv_path = path / "dpg_bench.csv"
        prompts = path / "prompts"
    else:
        csv_path, prompts = path, path.parent / "prompts"
    if not csv_path.is_file():
        raise PromptSetError(
            f"{csv_path} is missing: DPG-Bench's questions and dependencies are in dpg_bench.csv; pass the "
            f"dpg_bench/ folder holding it (and prompts/) or the csv itself"
        )
    return csv_path, prompts if prompts.is_dir() else None


def _parents(text: str, where: str) -> list[int]:
    try:
        return [int(t) for t in str(text).replace(" ", "").split(",") if t and int(t) != 0]
    except ValueError as e:
        raise PromptSetError(f"{where}: dependency must be '0' or comma-separated ids, got {text!r}") from e


def load_dpg(path: Path) -> list[EvalPrompt]:
    """DPG-Bench: prompts from prompts/<item_id>.txt (else the csv 'text'), questions grouped per item."""
    csv_path, prompt_dir = _dpg_paths(path)
    need = ("item_id", "proposition_id", "dependency", "question_natural_language")
    items: dict[str, dict] = {}
    for n, row in _read_csv(csv_path, need):
        where = f"{csv_path}: row {n}"
        item = items.setdefault(row["item_id"].strip(), {"text": row.get("text", ""), "q": {}})
        try:
            pid = int(row["proposition_id"])
        except ValueError as e:
            raise PromptSetError(
                f"{where}: proposition_id must be an integer, got {row['proposition_id']!r}"
            ) from e
        if pid in item["q"]:
            raise PromptSetError(f"{where}: item {row['item_id']!r} repeats proposition_id {pid}")
        item["q"][pid] = (row["question_natural_language"].strip(), _parents(row["dependency"], where), row)
    out = []
    for item_id, item in items.items():
        txt = prompt_dir / f"{item_id}.txt" if prompt_dir is not None else None
        prompt = (
            txt.read_text(encoding="utf-8").strip()
            if txt is not None and txt.is_file()
            else item["text"].strip()
        )
        if not prompt:
            raise PromptSetError(
                f"{csv_path}: item {item_id!r} has no prompt (no {txt} and an empty 'text' column)"
            )
        pids = sorted(item["q"])
        for pid in pids:
            for parent in item["q"][pid][1]:
                if parent not in item["q"]:
                    raise PromptSetError(
                        f"{csv_path}: item {item_id!r} proposition {pid} depends on unknown proposition {parent}"
                    )
        broad = Counter(item["q"][p][2].get("category_broad", "") for p in pids).most_common(1)[0][0]
        meta = {
            "item_id": item_id,
            "questions": [item["q"][p][0] for p in pids],
            "proposition_ids": pids,
            "dependencies": [item["q"][p][1] for p in pids],
            "tuples": [item["q"][p][2].get("tuple", "") for p in pids],
            "categories": [item["q"][p][2].get("category_broad", "") for p in pids],
        }
        out.append(EvalPrompt(_safe_id(item_id), prompt, meta, broad))
    return out
