"""How often image_2 keeps image_1's layout in ShapesWorld evaluations (a reflection diagnostic).

python -m experiments.layout_kept runs/exp/ev64_start/eval_start runs/demo/eval_grpo [--every 4]
"""

from __future__ import annotations

import argparse

from experiments.probes.layout_kept import layout_kept_stats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("eval_dirs", nargs="+", help="folders written by scripts/eval.py")
    parser.add_argument("--every", type=int, default=1, help="read every n-th trajectory")
    args = parser.parse_args(argv)
    print("| evaluation | identical layout: all | when turn 1 right | when think_2 says keep |")
    print("|---|---|---|---|")
    for d in args.eval_dirs:
        st = layout_kept_stats(d, every=args.every)
        cells = [
            f"{st[k]['rate']:.3f} (n={st[k]['n']})" if st[k]["rate"] is not None else "– (n=0)" for k in st
        ]
        print(f"| {d} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
