"""Building engines: the StreamDiffusion engine from `engine/`, or the passthrough."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge.errors import BridgeError
from engine import EngineConfig, FrameEngine

from .passthrough import PassthroughEngine

ENGINE_KINDS = ("stream", "passthrough")
EngineFactory = Callable[[EngineConfig], FrameEngine]


class ModelUnavailable(BridgeError):
    """The model cannot be loaded (not cached while offline, no such id, no engine package)."""


def build_engine(config: EngineConfig, kind: str = "stream", progress: Any = None) -> FrameEngine:
    """Build an engine; raise ModelUnavailable (one line) when the model cannot be had."""
    if kind == "passthrough":
        return PassthroughEngine(config.width, config.height, config.frame_buffer_size)
    if kind != "stream":
        raise BridgeError(f"unknown engine {kind!r}; expected one of: {', '.join(ENGINE_KINDS)}")
    from engine import ModelNotAvailable, load_engine

    try:
        return load_engine(config, progress=progress)
    except ModelNotAvailable as exc:
        raise ModelUnavailable(one_line(exc)) from exc
    except OSError as exc:  # huggingface_hub / diffusers report a missing model as OSError
        raise ModelUnavailable(f"model {config.model!r} cannot be loaded: {one_line(exc)}") from exc


def factory_for(kind: str, progress: Any = None) -> EngineFactory:
    return lambda config: build_engine(config, kind, progress)


def one_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__
