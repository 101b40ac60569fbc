"""The `make demo` pipeline on ShapesWorld: stages that reuse finished work on a rerun."""
