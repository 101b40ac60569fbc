"""GenEval as a reward: the rule engine (rules.py), pluggable detectors (detectors.py), CLIP colour (color.py)."""
