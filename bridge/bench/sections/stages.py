"""Where a frame's time goes: capture, upload, VAE encode, UNet, VAE decode, download, sink."""

from __future__ import annotations

from ..context import BenchContext
from ..results import Column, Row, Section
from ..stats import latency_summary
from .columns import MEAN, P50, P95

STAGES: tuple[tuple[str, str, str], ...] = (
    ("capture", "capture", "pipeline"),
    ("preprocess", "preprocess / upload", "pipeline"),
    ("encode", "VAE encode", "engine"),
    ("unet", "UNet", "engine"),
    ("decode", "VAE decode", "engine"),
    ("postprocess", "download / postprocess", "pipeline"),
    ("sink", "sink", "pipeline"),
)
"""(key, label, where it is measured)."""

SHARE = Column("share", "share", "{:.0%}")


def run(ctx: BenchContext) -> Section:
    section = Section("stages", "Per-stage time", [P50, P95, MEAN, SHARE])
    config = ctx.config()
    _, engine_run = ctx.measure("engine (profiled)", config, profile=True)
    pipeline_run, pipeline_error = ctx.pipeline_run(config)
    samples: dict[str, list[float]] = {}
    if engine_run is not None:
        samples.update(engine_run.stages_ms)
    if pipeline_run is not None:
        samples.update({k: v for k, v in pipeline_run.stages_ms.items() if k not in samples})
    for key, label, where in STAGES:
        row = Row(label, {"stage": key, "measured_in": where})
        if samples.get(key):
            row.metrics = {k.removeprefix("stage_"): v for k, v in latency_summary(samples[key]).items()}
        elif where == "pipeline" and pipeline_error:
            row.error = pipeline_error
        else:
            row.error = "not reported by the engine (engine.profile / last_timings)"
        section.rows.append(row)
    total = sum(r.metrics.get("mean_ms") or 0.0 for r in section.rows)
    for row in section.rows:
        if row.metrics and total > 0:
            row.metrics["share"] = row.metrics["mean_ms"] / total
    section.notes.append(
        "VAE encode / UNet / VAE decode come from the engine's own profile (it synchronises between "
        "stages); the others from the runtime's per-frame timestamps. share = mean / sum of means."
    )
    return section
