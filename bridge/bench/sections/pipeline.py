"""The whole pipeline (pattern -> engine -> null sink) vs the engine alone, with the same config."""

from __future__ import annotations

from ..context import BenchContext
from ..results import Comparison, Row, Section
from ..stats import latency_summary, ratio, spread
from .columns import LATENCY


def run(ctx: BenchContext) -> Section:
    section = Section("pipeline", "Whole pipeline vs engine alone", list(LATENCY))
    config = ctx.config()
    engine_row, engine_run, pipeline_run, error = ctx.engine_vs_pipeline(config)
    section.rows.append(engine_row)
    stream_run = ctx.stream_runs.get(repr(config))
    if stream_run is not None:  # the same engine, calls queued back to back (no per-call sync)
        section.rows.append(
            Row("engine stream", dict(engine_row.params), stream_run.metrics(with_memory=False))
        )
    pipeline_row = Row("pipeline", {"source": "pattern", "sink": "null", "size": engine_row.params["size"]})
    if pipeline_run is None:
        pipeline_row.error = error
    else:
        pipeline_row.params["source_fps"] = round(pipeline_run.source_fps, 1)
        pipeline_row.params["dropped"] = pipeline_run.dropped
        pipeline_row.metrics = {"fps": pipeline_run.fps, "frames": pipeline_run.frames}
        pipeline_row.metrics.update(latency_summary(pipeline_run.e2e_ms))
    section.rows.append(pipeline_row)
    engine_fps = engine_run.fps if engine_run else None
    section.comparisons.append(
        Comparison(
            "pipeline / engine fps",
            ratio(pipeline_row.metrics.get("fps"), engine_fps),
            explanation="the bridge's overhead; target on a GPU: at least 0.95",
        )
    )
    section.comparisons.append(
        Comparison(
            "pipeline / engine stream fps",
            ratio(pipeline_row.metrics.get("fps"), stream_run.fps if stream_run else None),
            explanation="against the engine with no per-call sync (on a GPU the stricter one)",
        )
    )
    per_round = ctx.round_ratios.get(repr(config), [])
    rounds = spread(per_round)
    if rounds is not None and rounds.count > 1:
        section.comparisons.append(
            Comparison(
                "pipeline / engine fps, per round",
                rounds.median,
                explanation="each pipeline round against the engine alone just before and after it; "
                + rounds.describe(),
                samples=[round(r, 4) for r in per_round],
            )
        )
    frame_ms = 1000.0 / engine_fps if engine_fps else None
    section.comparisons.append(
        Comparison(
            "e2e p50 latency / engine frame time",
            ratio(pipeline_row.metrics.get("p50_ms"), frame_ms),
            unit="frames",
            explanation="capture timestamp to sink; target on a GPU: under 2",
        )
    )
    section.notes.append(
        "Latency columns: per engine call for the engine alone, capture-to-sink for the pipeline. "
        "Engine alone (synchronised per call), engine stream (synchronised once per round) and the "
        "pipeline alternate in rounds on one engine; the pattern source runs faster than the engine."
    )
    return section
