"""What every section shares: options, the engine cache, the pipeline runner, and a way to log."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .engines import EngineBuildError, EngineCache
from .inputs import FrameSource, moving_frames, no_frames, static_frames
from .measure import EngineRun, measure_engine
from .options import BenchOptions
from .pipeline import PipelineRun, PipelineRunner, run_daemon_pipeline
from .results import Row
from .worker import run_in_worker

ONE_STEP = [35]
"""The issue's target setting: 1-step img2img (sd-turbo's usual single step)."""
TWO_STEPS = [32, 45]
"""Two denoising steps, so that stream batch and sequential differ."""


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

    def engine(self, config: Any) -> Any:
        engine = self.engines.get(config)
        device = torch.device(engine.device)
        if device not in self.device_seen:
            self.device_seen.append(device)
        return engine

    def source(self, kind: str, engine: Any) -> FrameSource:
        if kind == "none":
            return no_frames()
        make = static_frames if kind == "static" else moving_frames
        batch = int(getattr(engine, "frame_buffer_size", 1) or 1)
        return make(batch, engine.width, engine.height, torch.device(engine.device), engine.dtype)

    def measure(
        self, label: str, config: Any, *, inputs: str = "moving", profile: bool = False
    ) -> tuple[Row, EngineRun | None]:
        """Build (or reuse) the engine for `config` and time it; a failure becomes the row's error."""
        params = {
            "accel": config.accel,
            "mode": config.mode,
            "size": f"{config.width}x{config.height}",
            "t_index_list": list(config.t_index_list),
            "cfg_type": config.cfg_type,
            "use_denoising_batch": config.use_denoising_batch,
            "similarity_filter": config.similarity_filter,
            "inputs": inputs if config.mode == "img2img" else "none",
        }
        self.log(f"{label}: building / measuring")
        try:
            engine = self.engine(config)
            source = self.source(params["inputs"], engine)
            run = run_in_worker(
                lambda: measure_engine(
                    engine, source, frames=self.options.frames, warmup=self.options.warmup, profile=profile
                )
            )
        except EngineBuildError as exc:
            self.log(f"{label}: could not build: {exc}")
            return Row(label, params, error=f"could not build: {exc}"), None
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - a failing configuration must not end the run
            self.log(f"{label}: failed: {exc}")
            return Row(label, params, error=f"{type(exc).__name__}: {exc}".splitlines()[0]), None
        self._engine_fps[repr(config)] = run.fps
        params.update(_engine_facts(engine))
        row = Row(label, params, run.metrics(with_memory=self.cuda))
        self.log(f"{label}: {run.fps:.2f} fps")
        return row, run

    def pipeline_run(self, config: Any) -> tuple[PipelineRun | None, str | None]:
        """The pipeline measured once per config (the pipeline and stages sections share it)."""
        key = repr(config)
        if key not in self._pipeline_runs:
            self._pipeline_runs[key] = self._measure_pipeline(config)
        return self._pipeline_runs[key]

    def _measure_pipeline(self, config: Any) -> tuple[PipelineRun | None, str | None]:
        self.log("pipeline: building / measuring")
        engine_fps = self._engine_fps.get(repr(config))
        # The pattern runs at twice the engine's rate so the engine never waits for input,
        # and the wait for the whole run allows ten times the engine's pace (a shared machine).
        source_fps = min(max(30.0, 2.0 * engine_fps), 1000.0) if engine_fps else 60.0
        frame_s = 1.0 / engine_fps if engine_fps else 5.0
        timeout_s = 30.0 + 10.0 * frame_s * (self.options.frames + self.options.warmup)
        try:
            engine = self.engine(config)
            run = self.run_pipeline(
                engine,
                config,
                frames=self.options.frames,
                warmup=self.options.warmup,
                source_fps=source_fps,
                timeout_s=timeout_s,
            )
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - reported in the rows, the run goes on
            message = f"{type(exc).__name__}: {exc}".splitlines()[0]
            self.log(f"pipeline: failed: {message}")
            return None, message
        self.log(f"pipeline: {run.fps:.2f} fps")
        return run, None


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
