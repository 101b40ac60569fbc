"""The HTML report: tables, plots (matplotlib PNGs if installed, else inline SVG) and sample trajectories.

`write_html_report(out_dir, tables, curves, samples)` writes `<out_dir>/report.html`. Sample images are
referenced by paths relative to `out_dir` (never embedded), so the folder can be moved or served as is; every
referenced file must exist (checked here). Used by `scripts/eval.py` and `make demo`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from irg_rl.eval.svg_plot import bar_chart_svg, line_chart_svg

__all__ = ["Table", "Curve", "SampleView", "write_html_report", "format_value", "markdown_table"]


@dataclass
class Table:
    """A results table."""

    # heading shown above the table
    title: str
    # column headers
    columns: list[str]
    # rows of cells (numbers are formatted to 3 decimals; None shows as a dash)
    rows: list[list[Any]]
    # text shown under the table (settings, definitions)
    note: str = ""


@dataclass
class Curve:
    """A plot: `line` (numeric x per series) or `bar` (x = group labels shared by the series)."""

    # plot title
    title: str
    # x-axis label
    x_label: str
    # y-axis label
    y_label: str
    # series name -> (xs, ys); for bars xs are the group labels
    series: dict[str, tuple[list, list]]
    # line | bar
    kind: str = "line"


@dataclass
class SampleView:
    """One trajectory shown in the report: prompt, think_1, image_1, think_2, image_2 and rewards."""

    # heading (e.g. the stage and prompt id)
    title: str
    # the prompt
    prompt: str
    # turn-1 plan text ("" if none)
    think_1: str = ""
    # path of image_1 (absolute or relative to the report folder), or None
    image_1: str | None = None
    # turn-2 reflection text ("" if none)
    think_2: str = ""
    # path of image_2, or None
    image_2: str | None = None
    # reward label -> value (e.g. {"turn 1 strict": 1.0, ...})
    rewards: dict[str, Any] = field(default_factory=dict)
    # path of the no-think baseline image, or None
    no_think_image: str | None = None


def format_value(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def markdown_table(columns: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(format_value(c).replace("|", "/") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _coerce(obj: Any, cls: type) -> Any:
    return obj if isinstance(obj, cls) else cls(**obj)


def _rel_image(out_dir: Path, path: str | None, where: str) -> str | None:
    if path is None:
        return None
    p = Path(path)
    full = p if p.is_absolute() else out_dir / p
    if not full.is_file():
        raise FileNotFoundError(f"report: {where}: image {full} does not exist")
    return Path(os.path.relpath(full.resolve(), out_dir.resolve())).as_posix()


def _plot(out_dir: Path, curve: Curve, index: int) -> str:
    """HTML for one plot: a matplotlib PNG under plots/ when matplotlib is installed, else inline SVG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        plt = None
    if curve.kind not in ("line", "bar"):
        raise ValueError(f"report: curve '{curve.title}': kind must be 'line' or 'bar', got {curve.kind!r}")
    groups: list[str] = []
    if curve.kind == "bar":
        for xs, _ in curve.series.values():
            groups += [str(x) for x in xs if str(x) not in groups]
    bars = {
        name: [dict(zip(map(str, xs), ys, strict=True)).get(g) for g in groups]
        for name, (xs, ys) in curve.series.items()
    }
    if plt is None:
        if curve.kind == "line":
            return line_chart_svg(curve.title, curve.x_label, curve.y_label, curve.series)
        return bar_chart_svg(curve.title, curve.y_label, groups, bars)
    fig, ax = plt.subplots(figsize=(5.2, 3.0), dpi=100)
    if curve.kind == "line":
        for name, (xs, ys) in curve.series.items():
            ax.plot(xs, [math.nan if y is None else y for y in ys], marker=".", label=name)
    else:
        width = 0.8 / max(len(bars), 1)
        for s, (name, vals) in enumerate(bars.items()):
            ax.bar(
                [g + s * width for g in range(len(groups))],
                [math.nan if v is None else v for v in vals],
                width,
                label=name,
            )
        ax.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))], groups)
    ax.set(title=curve.title, xlabel=curve.x_label, ylabel=curve.y_label)
    ax.legend(fontsize=8)
    fig.tight_layout()
    (out_dir / "plots").mkdir(exist_ok=True)
    name = f"plots/plot_{index}.png"
    fig.savefig(out_dir / name)
    plt.close(fig)
    return f'<img src="{name}" alt="{escape(curve.title)}">'


_CSS = """
body{font-family:sans-serif;margin:24px;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}
.plots{display:flex;flex-wrap:wrap;gap:12px}.sample{border:1px solid #ddd;padding:10px;margin:12px 0}
.row{display:flex;gap:14px;align-items:flex-start}.img{text-align:center;font-size:12px}
.img img{width:160px;height:160px;image-rendering:pixelated;border:1px solid #999}
pre{white-space:pre-wrap;background:#fafafa;border:1px solid #eee;padding:6px;max-width:360px;font-size:12px}
.note{color:#555;font-size:13px}
"""


def _table_html(t: Table) -> str:
    head = "".join(f"<th>{escape(str(c))}</th>" for c in t.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(format_value(c))}</td>" for c in r) + "</tr>" for r in t.rows
    )
    note = f'<p class="note">{escape(t.note)}</p>' if t.note else ""
    return f"<h2>{escape(t.title)}</h2><table><tr>{head}</tr>{body}</table>{note}"


def _text(s: str) -> str:
    clean = "".join(ch if ch.isprintable() or ch in "\n\t" else "\ufffd" for ch in (s or ""))
    return escape(clean) or "<i>(none)</i>"


def _sample_html(out_dir: Path, s: SampleView, i: int) -> str:
    where = f"sample {i} ({s.title})"
    imgs = []
    for label, path in (("no-think", s.no_think_image), ("image 1", s.image_1), ("image 2", s.image_2)):
        rel = _rel_image(out_dir, path, where)
        if rel is not None:
            imgs.append(f'<div class="img"><img src="{escape(rel)}" alt="{label}"><br>{label}</div>')
    rewards = ", ".join(f"{escape(str(k))}: {escape(format_value(v))}" for k, v in s.rewards.items())
    return (
        f'<div class="sample"><h3>{escape(s.title)}</h3><p><b>Prompt:</b> {escape(s.prompt)}</p>'
        f'<div class="row"><div><b>think 1</b><pre>{_text(s.think_1)}</pre></div>'
        f"<div><b>think 2</b><pre>{_text(s.think_2)}</pre></div>{''.join(imgs)}</div>"
        f'<p class="note">{rewards}</p></div>'
    )


def write_html_report(
    out_dir: str | os.PathLike,
    tables: list[Table | dict],
    curves: list[Curve | dict],
    samples: list[SampleView | dict],
    title: str = "irg-rl evaluation report",
    filename: str = "report.html",
) -> Path:
    """Write `<out_dir>/<filename>` and return its path; images are referenced relative to `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = [_coerce(t, Table) for t in tables]
    curves = [_coerce(c, Curve) for c in curves]
    samples = [_coerce(s, SampleView) for s in samples]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"]
    parts.append(f"<style>{_CSS}</style></head><body><h1>{escape(title)}</h1>")
    parts += [_table_html(t) for t in tables]
    if curves:
        parts.append('<h2>Plots</h2><div class="plots">')
        parts += [f"<div>{_plot(out, c, i)}</div>" for i, c in enumerate(curves)]
        parts.append("</div>")
    if samples:
        parts.append("<h2>Sample trajectories</h2>")
        parts += [_sample_html(out, s, i) for i, s in enumerate(samples)]
    parts.append("</body></html>")
    path = out / filename
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
