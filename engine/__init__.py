"""The StreamDiffusion engine: tensors in, tensors out, no I/O.

Importing this package loads no model and no heavy module beyond torch: `load_engine` and the
rest are imported on first use.

    from engine import EngineConfig, load_engine
    eng = load_engine(EngineConfig(model="random:tiny", width=64, height=64))
    out = eng(frames)                # (N, 3, H, W) in [0, 1] -> same shape, lagging len(t_index_list)-1
    eng.update(prompt="neon city", guidance_scale=1.5)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .config import EngineConfig
from .errors import EngineError, ModelNotAvailable
from .protocol import FrameEngine

if TYPE_CHECKING:
    from .conditioning import SinglePrompt, TextConditioning
    from .load import load_engine
    from .models import Models, load_models
    from .schedule import t_index_from_strength
    from .stream import StreamEngine

_LAZY = {
    "load_engine": ".load",
    "StreamEngine": ".stream",
    "Models": ".models",
    "load_models": ".models",
    "t_index_from_strength": ".schedule",
    "TextConditioning": ".conditioning",
    "SinglePrompt": ".conditioning",
}

__all__ = [
    "EngineConfig",
    "EngineError",
    "FrameEngine",
    "ModelNotAvailable",
    "Models",
    "SinglePrompt",
    "StreamEngine",
    "TextConditioning",
    "load_engine",
    "load_models",
    "t_index_from_strength",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
