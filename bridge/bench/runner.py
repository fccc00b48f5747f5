"""Running the chosen sections in order and assembling the report."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from .clock import process_peak_rss_mb
from .context import BenchContext
from .engines import EngineCache, EngineFactory, resolve_accels
from .environment import describe_device, describe_environment, load_average, resolve_device
from .options import BenchOptions
from .pipeline import PipelineRunner, run_daemon_pipeline
from .results import Report
from .sections import RUNNERS
from .targets import evaluate_targets


def run_bench(
    options: BenchOptions,
    *,
    factory: EngineFactory | None = None,
    pipeline_runner: PipelineRunner | None = None,
    log: Callable[[str], None] | None = None,
    argv: list[str] | None = None,
) -> Report:
    """Measure every section in `options.sections`; a failing configuration becomes an error row."""
    accels, accel_notes = resolve_accels(options.accels, options.device)
    ctx = BenchContext(
        options=options,
        engines=EngineCache(factory),
        accels=accels,
        run_pipeline=pipeline_runner or run_daemon_pipeline,
        log=log or (lambda _message: None),
        baseline_rss_mb=process_peak_rss_mb(),
    )
    environment = describe_environment(resolve_device(options.device), argv)
    started = time.perf_counter()
    sections = []
    try:
        for name in options.sections:
            section_start = time.perf_counter()
            try:
                section = RUNNERS[name](ctx)
            finally:
                ctx.engines.release()  # the next section builds its own engines on the shared weights
            section.seconds = time.perf_counter() - section_start
            if name == "throughput":
                section.notes += accel_notes
            sections.append(section)
    finally:
        ctx.engines.release()
    if ctx.device_seen:  # the engine's own choice of device wins over our guess
        environment["device"] = describe_device(ctx.device_seen[0])
        environment["device_type"] = ctx.device_seen[0].type
    environment["load_average_end"] = load_average()
    environment["seconds"] = round(time.perf_counter() - started, 2)
    environment["engine_builds"] = ctx.engines.builds
    report = Report(environment=environment, options=_options_dict(options, accels), sections=sections)
    report.targets = evaluate_targets(report)
    return report


def _options_dict(options: BenchOptions, accels: list[str]) -> dict[str, Any]:
    out = asdict(options)
    out["sizes"] = [f"{w}x{h}" for w, h in options.sizes]
    out["main_size"] = list(options.main_size)
    out["accels_measured"] = accels
    return out
