"""Acceleration backends for the StreamDiffusion engine: `torch`, `compile`, `tensorrt`, `auto`.

The engine calls `apply(engine, config)` once after loading its models. `apply` swaps the
engine's three hot-path seams (`unet_fn`, `vae_encode_fn`, `vae_decode_fn`) and returns the name
of the backend now serving frames. TensorRT engines that are not cached yet are built in a
background thread while the `torch` seams serve (so the output is never black); when the build
finishes, the TensorRT seams are swapped in. `engine.accel_status` (an `AccelStatus`) tells
which backend is active, whether a build is running, its progress and any error.

Importing this package imports neither TensorRT nor anything CUDA-specific.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import torch

from .choose import AccelUnavailable, cuda_available, resolve_backend, tensorrt_importable
from .progress import Progress, silent

__all__ = ["AccelStatus", "AccelUnavailable", "apply", "build_tensorrt_engines", "resolve_backend"]

log = logging.getLogger(__name__)


@dataclass
class AccelStatus:
    """What `apply` did, updated by a background build. Safe to read from any thread."""

    requested: str
    active: str
    building: bool = False
    message: str = ""
    fraction: float | None = None
    error: str | None = None
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no build is running (True) or the timeout passes (False)."""
        return self._done.wait(timeout)

    def progress(self, message: str, fraction: float | None) -> None:
        self.message, self.fraction = message, fraction


def _device_and_dtype(engine: Any) -> tuple[torch.device, torch.dtype]:
    device = torch.device(getattr(engine, "device", None) or next(engine.unet.parameters()).device)
    dtype = getattr(engine, "dtype", None) or next(engine.unet.parameters()).dtype
    return device, dtype


def _gpu_present(device: torch.device) -> bool:
    """Whether `device` is a usable CUDA GPU (the one check tests replace, as CUDA can't exist there)."""
    return device.type == "cuda" and cuda_available()


def _fan_out(*sinks: Progress) -> Progress:
    def report(message: str, fraction: float | None) -> None:
        for sink in sinks:
            sink(message, fraction)

    return report


def apply(
    engine: Any,
    config: Any,
    progress: Progress | None = None,
    *,
    background: bool = True,
    trt: Any = None,
) -> str:
    """Accelerate `engine` per `config.accel`; return the backend serving frames now.

    - `background=True` (the daemon): a missing TensorRT engine is built in a thread while the
      torch seams serve; watch `engine.accel_status`. `False` (bench, CLI): build first, then return.
    - `progress(message, fraction)` receives build progress (see `engine.accel.progress`).
    - `trt`: a TensorRT module to use instead of importing `tensorrt` (tests).
    Raises `AccelUnavailable` (one-line message) for an explicit backend that can't run here.
    """
    from .torch_backend import apply_torch

    device, dtype = _device_and_dtype(engine)
    requested = getattr(config, "accel", "auto")
    trt_present = trt is not None or tensorrt_importable()
    cuda = _gpu_present(device)
    backend = resolve_backend(requested, trt_importable=trt_present, cuda=cuda)
    if backend == "tensorrt" and float(getattr(config, "tome_ratio", 0.0) or 0.0) > 0:
        # tomesd's token merging draws random indices per call; it can't be frozen into an engine.
        message = "token merging (tome_ratio > 0) can't run in TensorRT; set it to 0 or use compile"
        if requested == "tensorrt":
            raise AccelUnavailable(message)
        log.warning("%s; using compile", message)
        backend = "compile"
    status = AccelStatus(requested=requested, active="torch")
    engine.accel_status = status
    apply_torch(engine, device)
    if backend == "torch":
        status._done.set()
        return "torch"
    if backend == "compile":
        from .compile_backend import apply_compile

        if background and cuda:  # compiling a UNet on CUDA takes minutes: not on the engine thread
            return apply_compile(engine, device, background=True, status=status)
        status.active = apply_compile(engine, device)
        status._done.set()
        return status.active

    report = _fan_out(status.progress, progress or silent)
    try:
        builder, parts = _tensorrt_builder(engine, config, device, dtype, report, trt)
        cached = builder.all_cached(parts)
    except Exception as exc:
        return _tensorrt_failed(status, requested, exc)
    if cached or not background:
        try:
            _swap_in_tensorrt(engine, builder, parts, status)
        except Exception as exc:
            return _tensorrt_failed(status, requested, exc)
        status._done.set()
        return "tensorrt"

    status.building = True
    thread = threading.Thread(
        target=_background_build, args=(engine, builder, parts, status), name="tensorrt-build", daemon=True
    )
    thread.start()
    return "torch"


def _tensorrt_builder(
    engine: Any, config: Any, device: torch.device, dtype: torch.dtype, report, trt, force: bool = False
):
    from .choose import import_tensorrt
    from .tensorrt.backend import BuildPlan, EngineBuilder, engine_parts
    from .tensorrt.cache import EngineStore

    trt = trt or import_tensorrt()
    plan = BuildPlan.from_config(config, dtype)
    builder = EngineBuilder(
        trt,
        EngineStore(getattr(config, "engine_dir", None)),
        plan,
        device,
        dtype,
        progress=report,
        force=force,
    )
    return builder, engine_parts(engine.unet, engine.vae, plan)


def _swap_in_tensorrt(engine: Any, builder, parts, status: AccelStatus) -> None:
    from .seams import install_seams
    from .tensorrt.backend import prepare_runners, trt_seams

    fallback = (engine.unet_fn, engine.vae_encode_fn, engine.vae_decode_fn)
    runners = prepare_runners(builder, parts)
    install_seams(engine, *trt_seams(runners, fallback))
    engine.trt_runners = runners
    status.active = "tensorrt"


def _background_build(engine: Any, builder, parts, status: AccelStatus) -> None:
    try:
        _swap_in_tensorrt(engine, builder, parts, status)
        log.info("TensorRT engines ready; switched from torch to tensorrt")
    except Exception as exc:  # the show goes on with torch
        status.error = f"{type(exc).__name__}: {exc}"
        log.error("TensorRT build failed, staying on torch: %s", status.error)
    finally:
        status.building = False
        status._done.set()


def _tensorrt_failed(status: AccelStatus, requested: str, exc: Exception) -> str:
    """`auto` falls back to torch with a warning; an explicit `tensorrt` is an error."""
    status.error = f"{type(exc).__name__}: {exc}"
    status._done.set()
    if requested == "tensorrt":
        raise AccelUnavailable(f"TensorRT setup failed: {status.error}") from exc
    log.warning("TensorRT unavailable, using torch: %s", status.error)
    return "torch"


def build_tensorrt_engines(
    engine: Any, config: Any, progress: Progress | None = None, *, trt: Any = None, force: bool = False
) -> list[str]:
    """Build (or verify) the TensorRT engines for `engine` now; returns the parts that were built
    (an empty list means all were cached and load). `force` rebuilds even valid cached engines.
    `engine` is anything with `unet`, `vae`, `device` and `dtype` (a StreamEngine, or the loaded
    models). Used by `sd-bridge build-engines`."""
    device, dtype = _device_and_dtype(engine)
    if not _gpu_present(device):
        raise AccelUnavailable("TensorRT needs an NVIDIA GPU with a CUDA build of torch")
    builder, parts = _tensorrt_builder(engine, config, device, dtype, progress or silent, trt, force)
    from .tensorrt.backend import prepare_runners

    prepare_runners(builder, parts)
    return builder.built
