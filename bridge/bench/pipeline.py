"""The whole pipeline (pattern source -> engine -> null sink), measured through the daemon's runtime.

The runtime is the daemon's: the bench does not re-implement capture, conversion or output, it
drives the real ones and reads the per-stage timestamps the runtime keeps for every frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .stats import fps

PIPELINE_STAGES: tuple[str, ...] = ("capture", "preprocess", "postprocess", "sink")
"""Stages the runtime times around the engine (preprocess = convert + upload, postprocess = download)."""


@dataclass
class PipelineRun:
    frames: int
    seconds: float
    e2e_ms: list[float]
    """Per output frame: sink done minus capture timestamp."""
    stages_ms: dict[str, list[float]] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return fps(self.frames, self.seconds)


PipelineRunner = Callable[..., PipelineRun]
"""(engine, *, width, height, frames, warmup) -> PipelineRun."""


class PipelineUnavailable(RuntimeError):
    """The daemon runtime is not part of this build."""


def default_pipeline_runner(engine: Any, *, width: int, height: int, frames: int, warmup: int) -> PipelineRun:
    raise PipelineUnavailable("the daemon runtime (bridge.runtime) is not available in this build")
