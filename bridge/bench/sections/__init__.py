"""One module per bench section; each exposes `run(ctx) -> Section`."""

from __future__ import annotations

from collections.abc import Callable

from ..context import BenchContext
from ..results import Section
from . import batch, cfg, controlnet, memory, pipeline, regions, similarity, stages, temporal, throughput

SectionRunner = Callable[[BenchContext], Section]

RUNNERS: dict[str, SectionRunner] = {
    "throughput": throughput.run,
    "batch": batch.run,
    "cfg": cfg.run,
    "filter": similarity.run,
    "regions": regions.run,
    "temporal": temporal.run,
    "controlnet": controlnet.run,
    "pipeline": pipeline.run,
    "stages": stages.run,
    "memory": memory.run,
}
