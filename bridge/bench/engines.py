"""Building engines for the bench: the weights once, an engine per configuration on them."""

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


def ensure_accel(engine: Any, config: Any) -> str:
    """The backend serving `engine`, once it serves `config.accel`; else an `EngineBuildError`.

    A figure labelled `tensorrt` must come from TensorRT: if the engine has not applied its
    backend, apply it now, building in the foreground (not in the background as the daemon
    does); if a background build is running, wait for it; refuse a silent fallback.
    """
    requested = str(getattr(config, "accel", "auto"))
    status = getattr(engine, "accel_status", None)
    if status is None:
        from engine.accel import apply

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


class SharedModels:
    """An engine factory that loads the weights once and builds every engine on them.

    All the bench's configurations differ only in what the engine does with the models (size,
    mode, cfg_type, t_index_list, filter, backend), so one set of weights serves every engine:
    building is fast, and a section can hold all its engines at once to interleave them.
    """

    MODEL_FIELDS = ("model", "vae", "tiny_vae", "lcm_lora", "device", "dtype")

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._models: Any = None

    def __call__(self, config: Any) -> Any:
        from engine import StreamEngine, load_engine, load_models

        if getattr(config, "tome_ratio", 0):  # token merging patches the UNet itself: not shareable
            engine = load_engine(config)
        else:
            key = tuple(getattr(config, name, None) for name in self.MODEL_FIELDS)
            if key != self._key:
                self._key, self._models = None, None
                gc.collect()
                self._models = load_models(config)
                self._key = key
            engine = StreamEngine(self._models, config)
            if getattr(config, "controlnets", None):  # ControlNet (issue 17): the nets on the shared models
                from engine.controlnet import build_stack

                engine.set_controlnets(build_stack(self._models, config))
        ensure_accel(engine, config)
        return engine


class EngineCache:
    """The engines of the section being measured, by key; `release()` frees them all."""

    def __init__(self, factory: EngineFactory | None = None) -> None:
        self.factory = factory or SharedModels()
        self._engines: dict[str, Any] = {}
        self.builds = 0
        self.build_seconds: list[float] = []

    def get(self, config: Any, key: str | None = None) -> Any:
        key = key if key is not None else repr(config)
        if key in self._engines:
            return self._engines[key]
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
        self._engines[key] = engine
        return engine

    def release(self) -> None:
        """Free every engine (the shared weights stay with the factory)."""
        if not self._engines:
            return
        cuda = any(torch.device(getattr(e, "device", "cpu")).type == "cuda" for e in self._engines.values())
        self._engines.clear()
        gc.collect()
        if cuda:
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
