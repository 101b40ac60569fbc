"""Synthetic tasks the framework ships with (ShapesWorld: `irg_rl.tasks.shapes`)."""
