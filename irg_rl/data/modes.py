"""The six IRGL learning modes (folder names of the official release) and the paper's stage mixtures."""

from __future__ import annotations

INITIAL_THINKING_UNDERSTANDING = "initial_thinking_understanding_learning"
INITIAL_THINKING_GENERATION = "initial_thinking_generation_learning"
INITIAL_FULL = "initial_full_learning"
IMPROVING_THINKING_UNDERSTANDING = "improving_thinking_understanding_learning"
IMPROVING_THINKING_GENERATION = "improving_thinking_generation_learning"
IMPROVING_FULL = "improving_full_learning"

MODES: tuple[str, ...] = (
    INITIAL_THINKING_UNDERSTANDING,
    INITIAL_THINKING_GENERATION,
    INITIAL_FULL,
    IMPROVING_THINKING_UNDERSTANDING,
    IMPROVING_THINKING_GENERATION,
    IMPROVING_FULL,
)

# the modes whose rows reflect on an image_1
IMPROVING_MODES: tuple[str, ...] = (
    IMPROVING_THINKING_UNDERSTANDING,
    IMPROVING_THINKING_GENERATION,
    IMPROVING_FULL,
)

# Stage 1 samples all six modes, the two full modes twice as often; stage 2 trains only the full modes.
STAGE1_WEIGHTS: dict[str, float] = {m: (1.0 if m.endswith("full_learning") else 0.5) for m in MODES}
STAGE2_WEIGHTS: dict[str, float] = {INITIAL_FULL: 1.0, IMPROVING_FULL: 1.0}


def check_mode(name: str) -> str:
    """Return `name` if it is one of the six modes, else raise naming the valid ones."""
    if name not in MODES:
        import difflib

        close = difflib.get_close_matches(name, MODES, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"unknown learning mode '{name}'.{hint} Valid modes: {', '.join(MODES)}")
    return name
