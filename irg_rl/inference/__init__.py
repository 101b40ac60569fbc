"""IRG inference: flow-matching sampler maths (`sde`), and the two-round IRG engine."""

from .engine import IRGEngine
from .engine_config import EngineConfig, IRGSamplingConfig, TurnConfig
from .rescoring import RescoreOutput, rescore
from .research_baseline import research_generate
from .trajectory import ImageSegment, TextSegment, Trajectory, TrajectoryBatch

__all__ = [
    "EngineConfig",
    "IRGEngine",
    "IRGSamplingConfig",
    "ImageSegment",
    "RescoreOutput",
    "TextSegment",
    "Trajectory",
    "TrajectoryBatch",
    "TurnConfig",
    "research_generate",
    "rescore",
]
