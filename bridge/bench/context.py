"""What every section shares: options, the engine cache, the pipeline runner, and a way to log."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .engines import EngineBuildError, EngineCache
from .inputs import FrameSource, moving_frames, no_frames, pattern_frames, static_frames
from .measure import EngineRun, merge_runs, split, streamed_calls, timed_calls, warm_up
from .options import BenchOptions
from .pipeline import PipelineRun, PipelineRunner, merge_pipeline_runs, run_daemon_pipeline
from .results import Row
from .stats import bracketed_ratios
from .worker import run_in_worker

ONE_STEP = [35]
"""The issue's target setting: 1-step img2img (sd-turbo's usual single step)."""
TWO_STEPS = [32, 45]
"""Two denoising steps, so that stream batch and sequential differ."""
PIPELINE_ROUNDS = 15
"""Rounds the engine-alone and pipeline measurements alternate in (each pipeline round restarts
the runtime's threads and drops its first output frame, so they cannot alternate call by call)."""


@dataclass
class BenchContext:
    options: BenchOptions
    engines: EngineCache
    accels: list[str]
    run_pipeline: PipelineRunner = run_daemon_pipeline
    log: Callable[[str], None] = lambda _message: None
    device_seen: list[torch.device] = field(default_factory=list)
    baseline_rss_mb: float | None = None
    """Process peak RSS before the first engine was built."""
    _pipeline_runs: dict[str, tuple[PipelineRun | None, str | None]] = field(default_factory=dict)
    _engine_fps: dict[str, float] = field(default_factory=dict)
    stream_runs: dict[str, EngineRun] = field(default_factory=dict)
    """Per config: the engine alone as a stream (no per-call sync), from `engine_vs_pipeline`."""
    round_ratios: dict[str, list[float]] = field(default_factory=dict)
    """Per config: each pipeline round's fps over the engine alone's in the rounds around it."""

    @property
    def primary_accel(self) -> str:
        """The backend the comparison sections use: the first one measured."""
        return self.accels[0] if self.accels else "torch"

    @property
    def cuda(self) -> bool:
        return any(d.type == "cuda" for d in self.device_seen)

    def config(self, **changes: Any) -> Any:
        """The bench's base EngineConfig (1-step img2img at the main size) with changes."""
        from engine import EngineConfig

        width, height = self.options.main_size
        base: dict[str, Any] = {
            "model": self.options.model,
            "width": width,
            "height": height,
            "t_index_list": list(ONE_STEP),
            "frame_buffer_size": 1,
            "mode": "img2img",
            "cfg_type": "self",
            "guidance_scale": 1.2,
            "use_denoising_batch": True,
            "similarity_filter": False,
            "accel": self.primary_accel,
            "device": self.options.device,
            "seed": 2,
        }
        base.update(changes)
        return EngineConfig(**base)

    def engine(self, config: Any, key: str | None = None) -> Any:
        engine = self.engines.get(config, key)
        device = torch.device(engine.device)
        if device not in self.device_seen:
            self.device_seen.append(device)
        return engine

    def source(self, kind: str, engine: Any) -> FrameSource:
        if kind == "none":
            return no_frames()
        make = {"static": static_frames, "moving": moving_frames, "pattern": pattern_frames}[kind]
        batch = int(getattr(engine, "frame_buffer_size", 1) or 1)
        return make(batch, engine.width, engine.height, torch.device(engine.device), engine.dtype)

    def measure(
        self, label: str, config: Any, *, inputs: str = "pattern", profile: bool = False
    ) -> tuple[Row, EngineRun | None]:
        """One configuration timed on its own (a group of one)."""
        return self.measure_group([RowSpec(label, config, inputs, profile)])[0]

    def measure_group(self, specs: list[RowSpec]) -> list[tuple[Row, EngineRun | None]]:
        """Time several configurations against each other, interleaved call by call.

        Every engine is built and warmed up first; then the timed calls take turns (A B C A B C
        ...), all on one worker thread. A load change on a shared machine, or a GPU warming up,
        then hits every row alike instead of whichever happened to run last, so the ratios between
        rows stay meaningful. A configuration that fails becomes its row's error; the others go on.
        """
        results: dict[str, tuple[Row, EngineRun | None]] = {}
        live: dict[str, tuple[RowSpec, Any, FrameSource, dict[str, Any]]] = {}
        for spec in specs:
            params = _params(spec)
            self.log(f"{spec.label}: building")
            try:
                engine = self.engine(spec.config, key=spec.label)
                if spec.brushes:
                    from engine.regions.bench import stripe_regions

                    engine.update(regions=stripe_regions(spec.brushes, engine.height, engine.width))
                source = self.source(params["inputs"], engine)
            except Exception as exc:  # noqa: BLE001 - a failing configuration must not end the run
                results[spec.label] = (self._failed(spec.label, params, exc), None)
                continue
            live[spec.label] = (spec, engine, source, params)
        self.log(f"timing {', '.join(live)} in turns")
        runs = run_in_worker(lambda: self._take_turns(live, results))
        for label, (spec, engine, _source, params) in live.items():
            if label in results:
                continue
            run = merge_runs(runs[label])
            self._engine_fps[repr(spec.config)] = run.fps
            params.update(_engine_facts(engine))
            results[label] = (Row(label, params, run.metrics(with_memory=self.cuda)), run)
            self.log(f"{label}: {run.fps:.2f} fps")
        return [results[spec.label] for spec in specs]

    def _take_turns(
        self,
        live: dict[str, tuple[RowSpec, Any, FrameSource, dict[str, Any]]],
        results: dict[str, tuple[Row, EngineRun | None]],
    ) -> dict[str, list[EngineRun]]:
        """Warm every engine up, then give each one timed call in turn; failures go to `results`."""
        warmup = self.options.warmup
        runs: dict[str, list[EngineRun]] = {label: [] for label in live}
        active = dict(live)
        for label, (_spec, engine, source, params) in list(active.items()):
            try:
                warm_up(engine, source, warmup)
            except Exception as exc:  # noqa: BLE001
                results[label] = (self._failed(label, params, exc), None)
                del active[label]
        for index in range(warmup, warmup + self.options.frames):
            for label, (spec, engine, source, params) in list(active.items()):
                try:
                    runs[label].append(
                        timed_calls(engine, source, start=index, count=1, profile=spec.profile)
                    )
                except Exception as exc:  # noqa: BLE001
                    results[label] = (self._failed(label, params, exc), None)
                    del active[label]
        return runs

    def _failed(self, label: str, params: dict[str, Any], exc: BaseException) -> Row:
        if isinstance(exc, (KeyboardInterrupt, MemoryError)):
            raise exc
        if isinstance(exc, EngineBuildError):
            error = f"could not build: {exc}"
        else:
            error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        self.log(f"{label}: {error}")
        return Row(label, params, error=error)

    def engine_vs_pipeline(self, config: Any) -> tuple[Row, EngineRun | None, PipelineRun | None, str | None]:
        """The engine alone and the whole pipeline on the same engine, interleaved in rounds."""
        label = "engine alone"
        params = _params(RowSpec(label, config))
        self.log("engine alone vs pipeline: building and warming up")
        try:
            engine = self.engine(config)
            source = self.source("pattern", engine)
            run_in_worker(lambda: warm_up(engine, source, self.options.warmup))
        except Exception as exc:  # noqa: BLE001
            row = self._failed(label, params, exc)
            return row, None, None, row.error
        engine_runs: list[EngineRun] = []
        stream_runs: list[EngineRun] = []
        pipeline_runs: list[PipelineRun] = []
        error: str | None = None
        index = self.options.warmup
        for count in split(self.options.frames, PIPELINE_ROUNDS):
            try:
                engine_runs.append(
                    run_in_worker(lambda i=index, n=count: timed_calls(engine, source, start=i, count=n))
                )
                stream_runs.append(
                    run_in_worker(lambda i=index, n=count: streamed_calls(engine, source, start=i, count=n))
                )
            except Exception as exc:  # noqa: BLE001
                row = self._failed(label, params, exc)
                return row, None, None, row.error
            index += count
            if error is None:
                engine_fps = merge_runs(engine_runs).fps
                run, error = self._pipeline_chunk(engine, config, count, engine_fps)
                if run is not None:
                    pipeline_runs.append(run)
        engine_run = merge_runs(engine_runs)
        self._engine_fps[repr(config)] = engine_run.fps
        self.stream_runs[repr(config)] = merge_runs(stream_runs)
        params.update(_engine_facts(engine))
        pipeline_run = None if error else merge_pipeline_runs(pipeline_runs)
        if pipeline_run is not None:
            self.round_ratios[repr(config)] = bracketed_ratios(
                [r.fps for r in pipeline_runs], [r.fps for r in engine_runs]
            )
        self._pipeline_runs[repr(config)] = (pipeline_run, error)
        pipeline_fps = f"{pipeline_run.fps:.2f} fps" if pipeline_run else "failed"
        self.log(f"engine alone: {engine_run.fps:.2f} fps; pipeline: {pipeline_fps}")
        return Row(label, params, engine_run.metrics(with_memory=self.cuda)), engine_run, pipeline_run, error

    def pipeline_run(self, config: Any) -> tuple[PipelineRun | None, str | None]:
        """The pipeline on `config` (measured once per run; the pipeline and stages sections share it)."""
        key = repr(config)
        if key not in self._pipeline_runs:
            self.log("pipeline: building and measuring")
            try:
                engine = self.engine(config)
            except Exception as exc:  # noqa: BLE001
                return None, self._failed("pipeline", {}, exc).error
            self._pipeline_runs[key] = self._pipeline_chunk(
                engine, config, self.options.frames, self._engine_fps.get(key), warmup=self.options.warmup
            )
        return self._pipeline_runs[key]

    def _pipeline_chunk(
        self, engine: Any, config: Any, frames: int, engine_fps: float | None, warmup: int = 1
    ) -> tuple[PipelineRun | None, str | None]:
        # The pattern runs at twice the engine's rate so the engine never waits for input,
        # and the wait for the whole run allows ten times the engine's pace (a shared machine).
        source_fps = min(max(30.0, 2.0 * engine_fps), 1000.0) if engine_fps else 60.0
        frame_s = 1.0 / engine_fps if engine_fps else 5.0
        timeout_s = 30.0 + 10.0 * frame_s * (frames + warmup)
        try:
            run = self.run_pipeline(
                engine, config, frames=frames, warmup=warmup, source_fps=source_fps, timeout_s=timeout_s
            )
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - reported in the rows, the run goes on
            message = f"{type(exc).__name__}: {exc}".splitlines()[0]
            self.log(f"pipeline: failed: {message}")
            return None, message
        return run, None


@dataclass
class RowSpec:
    """One configuration to time: its row label, engine config, input kind and whether to profile."""

    label: str
    config: Any
    inputs: str = "pattern"
    """`pattern` (the daemon's test card, as the pipeline sees it), `static` or `moving` (noise)."""
    profile: bool = False
    brushes: int = 0
    """Regional-prompt brushes painted on the engine (vertical stripes, one prompt each)."""


def _params(spec: RowSpec) -> dict[str, Any]:
    config = spec.config
    return {
        "accel": config.accel,
        "mode": config.mode,
        "size": f"{config.width}x{config.height}",
        "t_index_list": list(config.t_index_list),
        "cfg_type": config.cfg_type,
        "use_denoising_batch": config.use_denoising_batch,
        "similarity_filter": config.similarity_filter,
        "inputs": spec.inputs if config.mode == "img2img" else "none",
        "brushes": spec.brushes,
    }


def _engine_facts(engine: Any) -> dict[str, Any]:
    """What the engine says it ran (UNet batch rows, lag, active backend), for the JSON."""
    facts: dict[str, Any] = {}
    try:
        stats = engine.stats()
    except Exception:  # noqa: BLE001 - facts are optional
        stats = {}
    for key in ("unet_batch", "lag", "dtype"):
        if key in stats:
            facts[key] = stats[key]
    status = getattr(engine, "accel_status", None)
    if status is not None:
        facts["accel_active"] = getattr(status, "active", None)
    return facts
