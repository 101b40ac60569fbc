"""DiffusionNFT on the images and GRPO on the thinks, over IRG think-image-reflect-image trajectories.

accelerate launch --config_file recipes/accelerate/<cfg>.yaml scripts/nft.py --config recipes/shapes/nft.yaml [k=v ...]
(or: python scripts/nft.py --config ...)
"""

from irg_rl.train.rl.nft import main

if __name__ == "__main__":
    main()
