"""Score a folder of images with one reward: `python scripts/score.py --reward shapes --images DIR --metadata M.jsonl`.

`--list` lists the registered rewards. See rewards/folder.py for the metadata format.
"""

import sys

from rewards.folder import main

if __name__ == "__main__":
    sys.exit(main())
