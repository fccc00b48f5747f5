"""Where a frame's time goes: capture, upload, VAE encode, UNet, VAE decode, download, sink."""

from __future__ import annotations

from ..context import BenchContext
from ..conversion import measure_conversion
from ..results import Column, Row, Section
from ..stats import latency_summary
from ..worker import run_in_worker
from .columns import MEAN, P50, P95

STAGES: tuple[tuple[str, str, str], ...] = (
    ("capture", "capture", "pipeline"),
    ("queue", "queue (waiting for the engine)", "pipeline"),
    ("preprocess", "preprocess / upload", "conversion"),
    ("encode", "VAE encode", "engine"),
    ("unet", "UNet", "engine"),
    ("decode", "VAE decode", "engine"),
    ("postprocess", "download / postprocess", "conversion"),
    ("output", "sink (its own thread)", "pipeline"),
)
"""(sample key, label, where it is measured)."""

SHARE = Column("share", "share", "{:.0%}")

SOURCES = {
    "pipeline": "the runtime's per-frame timestamps (pattern -> engine -> null)",
    "conversion": "the daemon's TensorBridge timed alone on pattern frames",
    "engine": "the engine's own profile (engine.profile; it synchronises between stages)",
}


def run(ctx: BenchContext) -> Section:
    section = Section("stages", "Per-stage time", [P50, P95, MEAN, SHARE])
    config = ctx.config()
    samples: dict[str, list[float]] = {}
    errors: dict[str, str] = {}

    _, engine_run = ctx.measure("engine (profiled)", config, profile=True)
    if engine_run is None:
        errors["engine"] = "the engine could not be measured"
    elif not engine_run.stages_ms:
        errors["engine"] = "the engine reports no per-stage timings (engine.profile / last_timings)"
    else:
        samples.update(engine_run.stages_ms)

    pipeline_run, pipeline_error = ctx.pipeline_run(config)
    if pipeline_run is None:
        errors["pipeline"] = pipeline_error or "the pipeline could not be measured"
    else:
        samples.update(
            {k: v for k, v in pipeline_run.stages_ms.items() if k in ("capture", "queue", "output")}
        )

    try:
        opts = ctx.options
        engine = ctx.engine(config)
        samples.update(
            run_in_worker(lambda: measure_conversion(engine, frames=opts.frames, warmup=opts.warmup))
        )
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - reported in the rows
        errors["conversion"] = f"{type(exc).__name__}: {exc}".splitlines()[0]

    for key, label, where in STAGES:
        row = Row(label, {"stage": key, "measured_in": where})
        if samples.get(key):
            row.metrics = dict(latency_summary(samples[key]))
        else:
            row.error = errors.get(where, f"no samples for {key}")
        section.rows.append(row)
    total = sum(r.metrics.get("mean_ms") or 0.0 for r in section.rows)
    for row in section.rows:
        if row.metrics and total > 0:
            row.metrics["share"] = row.metrics["mean_ms"] / total
    section.notes += [f"{where}: {text}" for where, text in SOURCES.items()]
    section.notes.append("share = mean / sum of the means shown.")
    return section
