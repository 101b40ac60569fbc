"""Prompt-set loaders: each benchmark's published format, written here in small files, read into EvalPrompt."""

from __future__ import annotations

import csv
import json

import pytest

from irg_rl.eval import PromptSetError, load_prompt_set
from irg_rl.eval.loaders import WISE_WEIGHTS


def _jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_shapes_generated_heldout_and_file(tmp_path):
    from irg_rl.tasks.shapes import ShapesWorldConfig, enumerate_prompts

    ps = load_prompt_set("shapes")
    held = enumerate_prompts(ShapesWorldConfig(), "heldout")
    assert [p.prompt for p in ps] == [m["prompt"] for m in held]
    assert {p.category for p in ps} == {m["tag"] for m in held}
    assert load_prompt_set("shapes", limit=3, num=10)[2].id == "00002"
    f = _jsonl(tmp_path / "prompts_heldout.jsonl", held[:2])
    assert [p.metadata for p in load_prompt_set("shapes", f)] == held[:2]
    bad = _jsonl(
        tmp_path / "bad.jsonl",
        [{"tag": "colors", "include": [{"class": "hexagon", "count": 1}], "prompt": "x"}],
    )
    with pytest.raises(PromptSetError, match=r"bad.jsonl:1.*hexagon"):
        load_prompt_set("shapes", bad)


def test_geneval_metadata_jsonl(tmp_path):
    rows = [
        {"tag": "single_object", "include": [{"class": "bench", "count": 1}], "prompt": "a photo of a bench"},
        {
            "tag": "counting",
            "include": [{"class": "dog", "count": 2}],
            "exclude": [{"class": "dog", "count": 3}],
            "prompt": "a photo of two dogs",
        },
    ]
    ps = load_prompt_set("geneval", _jsonl(tmp_path / "evaluation_metadata.jsonl", rows))
    assert [p.id for p in ps] == ["00000", "00001"]
    assert ps[1].category == "counting" and ps[1].metadata["exclude"] == [{"class": "dog", "count": 3}]
    (tmp_path / "broken.jsonl").write_text(json.dumps(rows[0]) + "\n{not json\n")
    with pytest.raises(PromptSetError, match=r"broken.jsonl:2: not valid JSON"):
        load_prompt_set("geneval", tmp_path / "broken.jsonl")
    no_prompt = _jsonl(tmp_path / "np.jsonl", [{"tag": "x", "include": [{"class": "a", "count": 1}]}])
    with pytest.raises(PromptSetError, match=r"np.jsonl:1: missing key 'prompt'"):
        load_prompt_set("geneval", no_prompt)
    with pytest.raises(PromptSetError, match="--prompts-file"):
        load_prompt_set("geneval")


def test_wise_json_list_file_and_folder(tmp_path):
    items = [
        {
            "prompt_id": 1,
            "Prompt": "The national flower of Japan in full bloom",
            "Explanation": "cherry blossoms",
            "Category": "Cultural knowledge",
            "Subcategory": "Festival",
        },
        {"prompt_id": 2, "Prompt": "Ice at 20 C", "Explanation": "melting water", "Subcategory": "Physics"},
    ]
    (tmp_path / "wise").mkdir()
    (tmp_path / "wise" / "cultural_common_sense.json").write_text(json.dumps(items))
    ps = load_prompt_set("wise", tmp_path / "wise")
    # the original release's category file: legacy scoring (three 0-2 questions); tag = WiScore category of the id
    assert [p.id for p in ps] == ["1", "2"] and [p.category for p in ps] == ["culture", "culture"]
    meta = ps[0].metadata
    assert len(meta["questions"]) == 3 and meta["question_weights"] == list(WISE_WEIGHTS)
    assert "cherry blossoms" in meta["questions"][0] and meta["wise_scoring"] == "legacy"
    (tmp_path / "w.json").write_text(json.dumps([{"prompt_id": 3, "Prompt": "x"}]))
    with pytest.raises(PromptSetError, match=r"w.json\[0\]: missing key 'Explanation'"):
        load_prompt_set("wise", tmp_path / "w.json")


def _wise_items(ids, text="p"):
    return [
        {
            "Prompt": f"{text} {i}",
            "Explanation": f"means {i}",
            "Category": "C",
            "Subcategory": "S",
            "prompt_id": i,
        }
        for i in ids
    ]


def test_wise_both_published_layouts(tmp_path):
    """WISE_legacy/data (category files + *_rewrite.json twins with the same ids) and data_verified (three
    *_verified.json + merge.json, a copy of all): twins and copies are never read together."""
    legacy = tmp_path / "WISE_legacy" / "data"
    legacy.mkdir(parents=True)
    parts = {"cultural_common_sense": range(1, 401), "spatio-temporal_reasoning": range(401, 641),
             "natural_science": range(641, 1001)}  # fmt: skip
    for name, ids in parts.items():
        (legacy / f"{name}.json").write_text(json.dumps(_wise_items(ids, "orig")))
        (legacy / f"{name}_rewrite.json").write_text(json.dumps(_wise_items(ids, "rewritten")))
    orig = load_prompt_set("wise", legacy)
    assert len(orig) == 1000 and orig[0].prompt == "orig 1" and len(orig[0].metadata["questions"]) == 3
    rew = load_prompt_set("wise", legacy, variant="rewrite")
    assert len(rew) == 1000 and all(p.prompt.startswith("rewritten") for p in rew)
    verified = tmp_path / "data_verified"
    verified.mkdir()
    for name, ids in parts.items():
        (verified / f"{name}_verified.json").write_text(json.dumps(_wise_items(ids, "v")))
    (verified / "merge.json").write_text(json.dumps(_wise_items(range(1, 1001), "v")))
    ver = load_prompt_set("wise", verified)
    assert len(ver) == 1000 and ver[0].metadata["wise_scoring"] == "verified"
    assert len(ver[0].metadata["questions"]) == 1 and ver[0].metadata["question_weights"] == [1.0]
    counts = {}
    for p in ver:
        counts[p.category] = counts.get(p.category, 0) + 1
    assert counts == {
        "culture": 400,
        "time": 120,
        "space": 120,
        "biology": 120,
        "physics": 120,
        "chemistry": 120,
    }
    assert len(load_prompt_set("wise", verified / "merge.json")) == 1000
    assert load_prompt_set("wise", legacy, scoring="verified")[0].metadata["question_weights"] == [1.0]
    with pytest.raises(PromptSetError, match="no files for WISE variant 'rewrite'"):
        load_prompt_set("wise", verified, variant="rewrite")


def test_wise_overall_wiscore_by_hand():
    from irg_rl.eval.loaders import wise_overall

    scores = {"culture": 0.5, "time": 1.0, "space": 0.0, "biology": 0.25, "physics": 0.75, "chemistry": 0.5}
    assert wise_overall(scores) == pytest.approx(0.4 * 0.5 + 0.12 * (1.0 + 0.0 + 0.25 + 0.75 + 0.5))
    with pytest.raises(ValueError, match="chemistry"):
        wise_overall({k: v for k, v in scores.items() if k != "chemistry"})


def test_tiif_prompts_with_eval_questions(tmp_path):
    pdir, edir = tmp_path / "testmini_prompts", tmp_path / "testmini_eval_prompts"
    pdir.mkdir()
    edir.mkdir()
    _jsonl(
        pdir / "2d_spatial_relation_prompts.jsonl",
        [
            {
                "type": "2d_spatial_relation",
                "short_description": "A cat beneath a microwave.",
                "long_description": "Long cat.",
            },
            {
                "type": "2d_spatial_relation",
                "short_description": "A cup left of a book.",
                "long_description": "Long cup.",
            },
        ],
    )
    _jsonl(
        edir / "2d_spatial_relation_eval_prompts.jsonl",
        [
            {
                "type": "2d_spatial_relation",
                "yn_question_list": ["Is there a cat?", "Is the cat above?"],
                "yn_answer_list": ["yes", "no"],
            },
            {
                "type": "2d_spatial_relation",
                "yn_question_list": ["Is there a cup?"],
                "yn_answer_list": ["Yes"],
            },
        ],
    )
    ps = load_prompt_set("tiif", pdir)
    assert [p.id for p in ps] == ["2d_spatial_relation_0000", "2d_spatial_relation_0001"]
    assert ps[0].prompt == "A cat beneath a microwave." and ps[0].metadata["expected_answers"] == [
        "yes",
        "no",
    ]
    assert (
        load_prompt_set("tiif", pdir / "2d_spatial_relation_prompts.jsonl", variant="long")[1].prompt
        == "Long cup."
    )
    _jsonl(
        pdir / "color_prompts.jsonl",
        [{"type": "color", "short_description": "a red ball", "long_description": "x"}],
    )
    with pytest.raises(PromptSetError, match=r"color_prompts.jsonl: cannot find its questions file"):
        load_prompt_set("tiif", pdir)


def test_genai_image_json(tmp_path):
    data = {
        "00001": {
            "id": "00001",
            "prompt": "A baker pulling bread",
            "basic_skills": "Attribute,Scene",
            "advanced_skills": "",
        },
        "00002": {
            "id": "00002",
            "prompt": "Three cats but no dog",
            "basic_skills": ["Counting"],
            "advanced_skills": ["Negation", "Counting"],
        },
    }
    (tmp_path / "genai_image.json").write_text(json.dumps(data))
    ps = load_prompt_set("genai", tmp_path / "genai_image.json")
    assert [p.id for p in ps] == ["00001", "00002"]
    assert ps[0].metadata["basic_skills"] == ["Attribute", "Scene"] and ps[0].category == "basic"
    assert ps[1].category == "advanced"
    (tmp_path / "g.json").write_text(json.dumps({"1": {"text": "no prompt key"}}))
    with pytest.raises(PromptSetError, match=r"g.json\['1'\]: missing key 'prompt'"):
        load_prompt_set("genai", tmp_path / "g.json")


def test_oneig_csv(tmp_path):
    f = _csv(
        tmp_path / "OneIG-Bench.csv",
        ["category", "id", "prompt_en", "prompt_cn", "type"],
        [
            ["Anime_Stylization", "000", "An anime fox", "动漫狐狸", "NP"],
            ["Portrait", "000", "A portrait", "肖像", "T"],
        ],
    )
    ps = load_prompt_set("oneig", f)
    assert [p.id for p in ps] == ["Anime_Stylization_000", "Portrait_000"]
    assert ps[0].category == "Anime_Stylization" and ps[0].metadata["type"] == "NP"
    assert load_prompt_set("oneig", f, language="zh")[1].prompt == "肖像"
    bad = _csv(tmp_path / "b.csv", ["category", "prompt_en"], [["x", "y"]])
    with pytest.raises(PromptSetError, match=r"b.csv: missing column\(s\) \['id'\]"):
        load_prompt_set("oneig", bad)


def test_dpg_prompts_and_question_csv(tmp_path):
    root = tmp_path / "dpg_bench"
    (root / "prompts").mkdir(parents=True)
    (root / "prompts" / "partiprompts12.txt").write_text("A red car parked beside a tall tree.\n")
    header = [
        "item_id",
        "text",
        "keywords",
        "proposition_id",
        "dependency",
        "category_broad",
        "category_detailed",
        "tuple",
        "question_natural_language",
    ]
    rows = [
        [
            "partiprompts12",
            "A red car beside a tree.",
            "car",
            "1",
            "0",
            "entity",
            "whole",
            "entity - whole (car)",
            "Is there a car?",
        ],
        [
            "partiprompts12",
            "A red car beside a tree.",
            "red",
            "2",
            "1",
            "attribute",
            "color",
            "attribute - color (car, red)",
            "Is the car red?",
        ],
        [
            "partiprompts12",
            "A red car beside a tree.",
            "tree",
            "3",
            "0",
            "entity",
            "whole",
            "entity - whole (tree)",
            "Is there a tree?",
        ],
        [
            "coco5",
            "Two dogs on grass.",
            "dog",
            "1",
            "0",
            "entity",
            "whole",
            "entity - whole (dog)",
            "Are there dogs?",
        ],
    ]
    _csv(root / "dpg_bench.csv", header, rows)
    ps = load_prompt_set("dpg", root)
    assert [p.id for p in ps] == ["partiprompts12", "coco5"]
    assert ps[0].prompt == "A red car parked beside a tall tree."  # from prompts/*.txt
    assert ps[1].prompt == "Two dogs on grass."  # falls back to the csv text
    assert ps[0].metadata["dependencies"] == [[], [1], []] and ps[0].category == "entity"
    rows.append(["coco5", "Two dogs.", "x", "2", "7", "entity", "whole", "t", "Q?"])
    _csv(root / "dpg_bench.csv", header, rows)
    with pytest.raises(PromptSetError, match="proposition 2 depends on unknown proposition 7"):
        load_prompt_set("dpg", root)


def test_unknown_set_and_missing_path(tmp_path):
    with pytest.raises(PromptSetError, match="Did you mean 'geneval'"):
        load_prompt_set("genevel", tmp_path)
    with pytest.raises(PromptSetError, match="does not exist"):
        load_prompt_set("wise", tmp_path / "nope.json")


def test_genai_published_layout_reads_skills_from_genai_skills_json(tmp_path):
    # genai_image.json as published: id -> {id, prompt, prompt in Chinese, models}; skills in genai_skills.json as
    # tag -> [1-based prompt index] (the index's 5-digit form is the key)
    images = {
        f"{i:05d}": {"id": f"{i:05d}", "prompt": f"prompt {i}", "prompt in Chinese": "x", "models": {}}
        for i in range(1, 5)
    }
    (tmp_path / "genai_image.json").write_text(json.dumps(images))
    with pytest.raises(PromptSetError, match="genai_skills.json is missing"):
        load_prompt_set("genai", tmp_path / "genai_image.json")
    skills = {"attribute": [1, 2], "scene": [2], "counting": [3], "negation": [2, 3]}
    (tmp_path / "genai_skills.json").write_text(json.dumps(skills))
    ps = load_prompt_set("genai", tmp_path / "genai_image.json")
    assert [p.category for p in ps] == ["basic", "advanced", "advanced", "untagged"]
    assert ps[1].metadata["basic_skills"] == ["attribute", "scene"]
    assert ps[1].metadata["advanced_skills"] == ["negation"]
    (tmp_path / "genai_skills.json").write_text(json.dumps({"scene": [9]}))
    with pytest.raises(PromptSetError, match=r"prompt index 9 \(00009\) is not in genai_image.json"):
        load_prompt_set("genai", tmp_path / "genai_image.json")


def test_dpg_without_its_csv_names_the_missing_file(tmp_path):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "a.txt").write_text("a cat")
    with pytest.raises(PromptSetError, match=r"dpg_bench.csv is missing"):
        load_prompt_set("dpg", tmp_path)


def test_wise_overall_per_turn_needs_every_category():
    from irg_rl.eval.runner import wise_overall_per_turn

    names = ["culture", "time", "space", "biology", "physics", "chemistry"]
    cats = {n: {"turns": {"think": {"score": 1.0}, "irg": {"score": 0.5}}} for n in names}
    got = wise_overall_per_turn(cats)
    assert got == pytest.approx({"irg": 0.5, "think": 1.0})
    del cats["space"]
    assert wise_overall_per_turn(cats) is None
