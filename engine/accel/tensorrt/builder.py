"""Building a serialized TensorRT engine from an ONNX file with TensorRT's Python API (10 and 11).

Precision comes from the ONNX file: the exporter writes fp16 graphs on CUDA. TensorRT 11 only
builds strongly typed networks, which then run in exactly those types; TensorRT 10 builds a weakly
typed network with the FP16 flag (the long-proven path for Stable Diffusion UNets). Tactic
timings go to a timing cache that makes later builds on the same GPU much faster.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..progress import Heartbeat, Progress, silent
from .profiles import PartSpec

log = logging.getLogger(__name__)


class EngineBuildError(RuntimeError):
    pass


def trt_major(trt: Any) -> int:
    return int(str(trt.__version__).split(".")[0])


def make_progress_monitor(trt: Any, progress: Progress, label: str) -> Any | None:
    """A `trt.IProgressMonitor` that turns the builder's phases into `progress` calls.

    TensorRT reports nested phases with step counts; the fraction shown is that of the outermost
    phase, the text names the innermost. Returning False from step_complete would cancel the
    build; we never do. Must be thread-safe: TensorRT may call it from its own threads.
    """
    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None

    class Monitor(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self.steps: dict[str, int] = {}
            self.parents: dict[str, str | None] = {}
            self.root: str | None = None

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self.steps[phase_name] = max(int(num_steps), 1)
            self.parents[phase_name] = parent_phase
            if parent_phase is None:
                self.root = phase_name
            progress(f"{label}: {phase_name}", self._fraction(phase_name, 0))

        def step_complete(self, phase_name: str, step: int) -> bool:
            progress(f"{label}: {phase_name}", self._fraction(phase_name, int(step) + 1))
            return True

        def phase_finish(self, phase_name: str) -> None:
            if phase_name == self.root:
                progress(f"{label}: {phase_name} done", 1.0)
            self.steps.pop(phase_name, None)

        def _fraction(self, phase_name: str, step: int) -> float | None:
            if phase_name != self.root:
                return None
            return step / self.steps.get(phase_name, 1)

    return Monitor()


def build_engine(
    trt: Any,
    onnx_path: Path,
    spec: PartSpec,
    *,
    precision: str,
    timing_cache: Path | None = None,
    workspace_bytes: int | None = None,
    progress: Progress = silent,
) -> bytes:
    """Parse `onnx_path`, add the spec's optimisation profile and return the serialized engine."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode since TensorRT 10
    parser = trt.OnnxParser(network, logger)
    # parse_from_file (not parse(bytes)) so weights stored next to a >2 GB model are found.
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT could not parse {onnx_path.name}: {errors or 'unknown error'}")

    config = builder.create_builder_config()
    if precision == "fp16" and trt_major(trt) < 11:
        config.set_flag(trt.BuilderFlag.FP16)
    if workspace_bytes:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)

    profile = builder.create_optimization_profile()
    for name in spec.inputs:
        low, opt, high = spec.profile[name]
        profile.set_shape(name, low, opt, high)
    config.add_optimization_profile(profile)

    cache_blob = b""
    if timing_cache is not None and timing_cache.exists():
        cache_blob = timing_cache.read_bytes()
    cache = config.create_timing_cache(cache_blob)
    if not config.set_timing_cache(cache, False):
        log.warning("timing cache %s does not fit this TensorRT/GPU; starting a new one", timing_cache)
        config.set_timing_cache(config.create_timing_cache(b""), False)

    label = f"building {spec.name}"
    monitor = make_progress_monitor(trt, progress, label)
    if monitor is not None:
        config.progress_monitor = monitor
        plan = builder.build_serialized_network(network, config)
    else:
        with Heartbeat(progress, label):
            plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineBuildError(f"TensorRT failed to build {spec.name} (see its log above)")

    if timing_cache is not None:
        timing_cache.parent.mkdir(parents=True, exist_ok=True)
        timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    return bytes(plan)
