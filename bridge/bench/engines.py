"""Building engines for the bench: one at a time, reused while the configuration stays the same.

Full-size models are gigabytes; holding every configuration's engine at once would run a
machine out of memory, so the cache keeps only the last one and frees it before building the next.
"""

from __future__ import annotations

import gc
import importlib.util
from collections.abc import Callable
from typing import Any

import torch

EngineFactory = Callable[[Any], Any]
"""EngineConfig -> FrameEngine."""


class EngineBuildError(RuntimeError):
    """An engine that could not be built (a missing backend, a bad model); one line."""


def default_factory(config: Any) -> Any:
    """`engine.load_engine`, then make sure the asked-for backend serves before anything is timed."""
    from engine import load_engine

    engine = load_engine(config)
    ensure_accel(engine, config)
    return engine


def ensure_accel(engine: Any, config: Any) -> str:
    """The backend serving `engine`, once it serves `config.accel`; else an `EngineBuildError`.

    A figure labelled `tensorrt` must come from TensorRT: if the engine has not applied its
    backend, apply it now, building in the foreground (not in the background as the daemon
    does); if a background build is running, wait for it; refuse a silent fallback.
    """
    requested = str(getattr(config, "accel", "auto"))
    status = getattr(engine, "accel_status", None)
    if status is None:
        try:
            from engine.accel import apply
        except ImportError:
            if requested in ("torch", "auto"):
                return "torch"
            raise EngineBuildError(
                f"accel {requested!r} is not part of this build (no engine.accel)"
            ) from None
        try:
            apply(engine, config, background=False)
        except Exception as exc:  # noqa: BLE001 - AccelUnavailable and build failures: one line
            raise EngineBuildError(_one_line(exc)) from exc
        status = engine.accel_status
    elif getattr(status, "building", False):
        status.wait()
    if getattr(status, "error", None):
        raise EngineBuildError(_one_line(status.error))
    active = str(getattr(status, "active", requested))
    if requested != "auto" and active != requested:
        raise EngineBuildError(f"asked for accel {requested!r} but the engine serves with {active!r}")
    return active


def _one_line(exc: object) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class EngineCache:
    def __init__(self, factory: EngineFactory | None = None) -> None:
        self.factory = factory or default_factory
        self._key: str | None = None
        self._engine: Any = None
        self.builds = 0
        self.build_seconds: list[float] = []

    def get(self, config: Any) -> Any:
        key = repr(config)
        if key == self._key and self._engine is not None:
            return self._engine
        self.release()
        import time

        start = time.perf_counter()
        try:
            engine = self.factory(config)
        except (KeyboardInterrupt, MemoryError):
            raise
        except EngineBuildError:
            raise
        except Exception as exc:  # noqa: BLE001 - any build failure becomes a row's error
            raise EngineBuildError(_one_line(exc)) from exc
        self.build_seconds.append(time.perf_counter() - start)
        self.builds += 1
        self._key, self._engine = key, engine
        return engine

    def release(self) -> None:
        if self._engine is None:
            return
        device = getattr(self._engine, "device", None)
        self._key, self._engine = None, None
        gc.collect()
        if device is not None and torch.device(device).type == "cuda":
            torch.cuda.empty_cache()


def resolve_accels(requested: list[str], device: str) -> tuple[list[str], list[str]]:
    """(backends to measure, notes on those left out). `available` expands to what this machine runs.

    On the CPU, `compile` is left out of `available`: inductor compiling a full-size UNet takes
    minutes on a small CPU and is not how anyone runs sd-bridge live; ask for it by name to measure it.
    """
    cuda = torch.cuda.is_available() and device in ("auto", "cuda") or device.startswith("cuda")
    resolved: list[str] = []
    notes: list[str] = []
    for name in requested:
        if name != "available":
            resolved.append(name)
            continue
        resolved.append("torch")
        if cuda:
            resolved.append("compile")
        else:
            notes.append(
                "compile not measured: no CUDA (ask with --accel torch,compile to measure it on the CPU)"
            )
        if cuda and importlib.util.find_spec("tensorrt") is not None:
            resolved.append("tensorrt")
        else:
            notes.append(
                "tensorrt not measured: needs CUDA and the tensorrt package "
                "(pip install 'sd-bridge[tensorrt]')"
            )
    return list(dict.fromkeys(resolved)), notes
