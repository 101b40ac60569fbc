"""HTML report: tables, SVG plots, sample trajectories whose image files exist (relative references)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from irg_rl.eval.report import Curve, SampleView, Table, markdown_table, write_html_report
from irg_rl.eval.svg_plot import bar_chart_svg, line_chart_svg


def referenced_images(html_path: Path) -> list[Path]:
    html = html_path.read_text()
    return [html_path.parent / src for src in re.findall(r'<img src="([^"]+)"', html)]


def test_report_references_existing_images(tmp_path):
    out = tmp_path / "report"
    imgs = tmp_path / "report" / "samples" / "p0"
    imgs.mkdir(parents=True)
    for name in ("turn1.png", "turn2.png"):
        Image.new("RGB", (32, 32), (200, 10, 10)).save(imgs / name)
    sample = SampleView(
        "stage 2 / p0",
        "a photo of a red circle",
        "<think> plan & go",
        str(imgs / "turn1.png"),
        "reflect\x00",
        "samples/p0/turn2.png",
        {"turn 2 strict": 1.0},
    )
    table = Table("Held-out scores", ["row", "strict"], [["GRPO", 0.5], ["stage 2", None]], note="n=10")
    curves = [
        Curve("reward over RL steps", "step", "reward", {"GRPO": ([0, 1, 2], [0.1, float("nan"), 0.3])}),
        {
            "title": "score per stage",
            "x_label": "",
            "y_label": "strict",
            "series": {"irg": (["s1", "s2"], [0.2, 0.4])},
            "kind": "bar",
        },
    ]
    path = write_html_report(out, [table], curves, [sample])
    html = path.read_text()
    refs = referenced_images(path)
    assert len(refs) == 2 and all(r.is_file() for r in refs)
    assert 'src="samples/p0/turn1.png"' in html  # absolute paths become relative to the report
    assert "&lt;think&gt; plan &amp; go" in html and "<svg" in html and "GRPO" in html and "–" in html
    with pytest.raises(FileNotFoundError, match="sample 0"):
        write_html_report(out, [], [], [SampleView("x", "p", image_1="samples/missing.png")])


def test_svg_charts_are_well_formed_xml():
    ET.fromstring(line_chart_svg("t", "x", "y", {"a": ([0, 1, 2], [0.0, 0.5, 1.0]), "b": ([0], [2.0])}))
    ET.fromstring(bar_chart_svg("t", "y", ["g1", "g2"], {"a": [0.1, None], "b": [0.3, 0.7]}))
    ET.fromstring(line_chart_svg("empty", "x", "y", {}))


def test_markdown_table():
    md = markdown_table(["a", "b"], [["x|y", 0.12345], ["z", None]])
    assert md.splitlines() == ["| a | b |", "|---|---|", "| x/y | 0.123 |", "| z | – |"]
