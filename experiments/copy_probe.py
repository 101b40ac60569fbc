"""Does image_2's flow use image_1's VAE block? A ShapesWorld SFT diagnostic.

For rows of the `improving_full_learning` mode, the flow-matching loss (MSE on image_2's noised latent tokens) is
computed twice with the same noise and timestep: with image_1's clean VAE block in the context and with it removed
(its ViT block stays). A model that copies image_1 where the reflection says keep gets a much lower loss with the
block. Rows are split by whether image_1 is already correct (image_2 = image_1) or corrupted (one object differs).

    python -m experiments.copy_probe --model runs/demo/sft_stage2 --data runs/demo/data [--rows 200]
"""

from __future__ import annotations

import argparse

from experiments.probes.copy_probe import MODE, probe


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="SFT run folder or checkpoint")
    ap.add_argument("--data", required=True, help="ShapesWorld data folder (with metadata.jsonl)")
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rows = probe(args.model, args.data, args.rows, args.seed)
    print(f"model {args.model}, data {args.data}, {MODE}, image_2 flow MSE (same noise and t):")
    print("| image_1 | rows | with image_1's VAE block | without | change with the block |")
    print("|---|---|---|---|---|")
    for kind, pairs in rows.items():
        if pairs:
            w = sum(p[0] for p in pairs) / len(pairs)
            wo = sum(p[1] for p in pairs) / len(pairs)
            print(f"| {kind} | {len(pairs)} | {w:.5f} | {wo:.5f} | {100 * (w / wo - 1):+.2f}% |")


if __name__ == "__main__":
    main()
