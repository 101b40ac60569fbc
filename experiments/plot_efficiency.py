"""Learning efficiency of RL seed studies: held-out turn-2 strict against training CPU-minutes, as an SVG
scatter (no plotting library needed) and a markdown table.

    python -m experiments.plot_efficiency --study GRPO=runs/exp/G_own_rl --study NFT=runs/exp/N_nft \
        --threads 1 --out docs/rl_efficiency.svg

Each study folder is a `python -m experiments.rl_seeds` output (`summary.json`, `train_seed*/metrics.jsonl`). CPU-minutes =
the sum of the logged step wall times x the torch threads each run used.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]


def study_points(folder: Path, threads: int) -> tuple[float, list[tuple[float, float]]]:
    """(start turn-2 strict, [(CPU-minutes, turn-2 strict) per seed])."""
    summary = json.loads((folder / "summary.json").read_text())
    points = []
    for seed, res in sorted(summary["seeds"].items()):
        rows = [
            json.loads(x) for x in (folder / f"train_seed{seed}" / "metrics.jsonl").read_text().splitlines()
        ]
        points.append((sum(r["time/step_s"] for r in rows) * threads / 60.0, res["irg"]))
    return summary["start"]["irg"], points


def svg(studies: dict[str, tuple[float, list[tuple[float, float]]]]) -> str:
    W, H, pad = 520, 340, 50
    xs = [x for _, pts in studies.values() for x, _ in pts]
    ys = [y for start, pts in studies.values() for _, y in pts] + [s for s, _ in studies.values()]
    x_hi, y_lo, y_hi = max(xs) * 1.1, min(ys) - 0.05, max(ys) + 0.05

    def px(x: float, y: float) -> tuple[float, float]:
        return pad + x / x_hi * (W - 2 * pad), H - pad - (y - y_lo) / (y_hi - y_lo) * (H - 2 * pad)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">'
    ]
    out.append(f'<rect width="{W}" height="{H}" fill="white"/>')
    x0, y0 = px(0, y_lo)
    x1, y1 = px(x_hi, y_hi)
    out.append(f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="black"/>')
    out.append(f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="black"/>')
    for i in range(5):
        y = y_lo + (y_hi - y_lo) * i / 4
        _, yy = px(0, y)
        out.append(f'<text x="{x0 - 6}" y="{yy + 4}" text-anchor="end">{y:.2f}</text>')
        x = x_hi * i / 4
        xx, _ = px(x, y_lo)
        out.append(f'<text x="{xx}" y="{y0 + 16}" text-anchor="middle">{x:.0f}</text>')
    out.append(f'<text x="{W / 2}" y="{H - 10}" text-anchor="middle">training CPU-minutes per run</text>')
    out.append(
        f'<text x="14" y="{H / 2}" text-anchor="middle" transform="rotate(-90 14 {H / 2})">held-out turn-2 strict</text>'
    )
    for k, (name, (start, pts)) in enumerate(studies.items()):
        c = COLOURS[k % len(COLOURS)]
        sx, sy = px(0, start)
        for x, y in pts:
            cx, cy = px(x, y)
            out.append(f'<line x1="{sx}" y1="{sy}" x2="{cx}" y2="{cy}" stroke="{c}" stroke-opacity="0.4"/>')
            out.append(f'<circle cx="{cx}" cy="{cy}" r="4" fill="{c}"/>')
        out.append(f'<circle cx="{sx}" cy="{sy}" r="4" fill="none" stroke="{c}"/>')
        out.append(f'<text x="{W - pad - 90}" y="{pad + 14 * k}" fill="{c}">&#9679; {name}</text>')
    out.append("</svg>")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", action="append", required=True, help="NAME=FOLDER (an rl_seeds.py output)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument("--out", required=True, help="SVG path")
    a = ap.parse_args()
    studies = {}
    for item in a.study:
        name, _, folder = item.partition("=")
        studies[name] = study_points(Path(folder), a.threads)
    Path(a.out).write_text(svg(studies))
    print("| study | start turn 2 | CPU-minutes per run (mean) | turn 2 per seed | mean |")
    print("|---|---|---|---|---|")
    for name, (start, pts) in studies.items():
        mins = sum(x for x, _ in pts) / len(pts)
        per = " / ".join(f"{y:.3f}" for _, y in pts)
        print(f"| {name} | {start:.3f} | {mins:.1f} | {per} | {sum(y for _, y in pts) / len(pts):.3f} |")


if __name__ == "__main__":
    main()
