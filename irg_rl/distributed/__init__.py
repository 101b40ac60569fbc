"""Helpers shared by the rollout workers and the trainers under accelerate / DeepSpeed: ZeRO-3 gathering and
lockstep schedules (`zero3`), and the merged-weights export that checkpoints and weight sync read (`weight_export`)."""
