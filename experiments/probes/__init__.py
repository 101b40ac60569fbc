"""Diagnostics of trained ShapesWorld checkpoints (copy probe, layout kept)."""
