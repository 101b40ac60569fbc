"""Small self-contained SVG charts (line and bar) for the HTML report when matplotlib is not installed."""

from __future__ import annotations

import math
from html import escape

__all__ = ["line_chart_svg", "bar_chart_svg", "PALETTE"]

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
W, H, L, R, T, B = 520, 300, 56, 130, 30, 44  # size and margins (left/right/top/bottom) in px


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    return [round(start + i * step, 10) for i in range(int((hi - start) / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _frame(title: str, x_label: str, y_label: str, y_lo: float, y_hi: float) -> list[str]:
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="13">{escape(title)}</text>',
        f'<text x="{L + (W - L - R) / 2}" y="{H - 6}" text-anchor="middle">{escape(x_label)}</text>',
        f'<text x="14" y="{T + (H - T - B) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {T + (H - T - B) / 2})">{escape(y_label)}</text>',
        f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
        f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>',
    ]
    for t in _ticks(y_lo, y_hi):
        y = _y(t, y_lo, y_hi)
        parts.append(f'<line x1="{L - 4}" y1="{y:.1f}" x2="{W - R}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    return parts


def _y(v: float, lo: float, hi: float) -> float:
    return H - B - (v - lo) / (hi - lo or 1.0) * (H - T - B)


def _legend(names: list[str]) -> list[str]:
    parts = []
    for i, name in enumerate(names):
        y = T + 6 + 16 * i
        color = PALETTE[i % len(PALETTE)]
        parts.append(f'<rect x="{W - R + 10}" y="{y - 8}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{W - R + 24}" y="{y + 1}">{escape(name[:18])}</text>')
    return parts


def _range(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values + [0.0]), max(values + [0.0])
    if hi - lo < 1e-12:
        hi = lo + 1.0
    return lo, hi + 0.05 * (hi - lo)


def line_chart_svg(
    title: str, x_label: str, y_label: str, series: dict[str, tuple[list[float], list[float]]]
) -> str:
    """Lines of numeric (x, y) points, one per series name; NaN/None points are skipped."""
    pts = {
        k: [
            (float(x), float(y))
            for x, y in zip(xs, ys, strict=True)
            if y is not None and not math.isnan(float(y))
        ]
        for k, (xs, ys) in series.items()
    }
    xs_all = [x for p in pts.values() for x, _ in p] or [0.0, 1.0]
    ys_all = [y for p in pts.values() for _, y in p] or [0.0, 1.0]
    x_lo, x_hi = min(xs_all), max(xs_all)
    x_hi = x_hi if x_hi > x_lo else x_lo + 1.0
    y_lo, y_hi = _range(ys_all)
    parts = _frame(title, x_label, y_label, y_lo, y_hi)
    for t in _ticks(x_lo, x_hi):
        x = L + (t - x_lo) / (x_hi - x_lo) * (W - L - R)
        parts.append(f'<text x="{x:.1f}" y="{H - B + 14}" text-anchor="middle">{_fmt(t)}</text>')
    for i, p in enumerate(pts.values()):
        color = PALETTE[i % len(PALETTE)]
        xy = [(L + (x - x_lo) / (x_hi - x_lo) * (W - L - R), _y(y, y_lo, y_hi)) for x, y in p]
        if len(xy) > 1:
            path = " ".join(f"{a:.1f},{b:.1f}" for a, b in xy)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.8"/>')
        parts += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.2" fill="{color}"/>' for a, b in xy]
    parts += _legend(list(pts))
    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart_svg(title: str, y_label: str, groups: list[str], series: dict[str, list[float | None]]) -> str:
    """Grouped bars: one group per label in `groups`, one bar per series (None/NaN bars are left out)."""
    vals = [float(v) for vs in series.values() for v in vs if v is not None and not math.isnan(float(v))]
    y_lo, y_hi = _range(vals or [0.0, 1.0])
    parts = _frame(title, "", y_label, y_lo, y_hi)
    n_groups, n_series = max(len(groups), 1), max(len(series), 1)
    gw = (W - L - R) / n_groups
    bw = gw * 0.8 / n_series
    for g, label in enumerate(groups):
        x0 = L + g * gw + gw * 0.1
        parts.append(
            f'<text x="{L + (g + 0.5) * gw:.1f}" y="{H - B + 14}" text-anchor="middle">{escape(label[:16])}</text>'
        )
        for s, (_, vs) in enumerate(series.items()):
            v = vs[g] if g < len(vs) else None
            if v is None or math.isnan(float(v)):
                continue
            y, y0 = _y(float(v), y_lo, y_hi), _y(max(0.0, y_lo), y_lo, y_hi)
            color = PALETTE[s % len(PALETTE)]
            parts.append(
                f'<rect x="{x0 + s * bw:.1f}" y="{min(y, y0):.1f}" width="{bw * 0.92:.1f}" '
                f'height="{abs(y0 - y):.1f}" fill="{color}"><title>{_fmt(float(v))}</title></rect>'
            )
    parts += _legend(list(series))
    parts.append("</svg>")
    return "\n".join(parts)
