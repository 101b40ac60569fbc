"""Serve one registered reward over HTTP: `python scripts/serve_reward.py --reward NAME [--host H --port P]`."""

import sys

from rewards.serving.cli import main

if __name__ == "__main__":
    sys.exit(main())
