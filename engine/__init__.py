"""The StreamDiffusion engine: tensors in, tensors out, no I/O.

Importing this package loads no model; see `engine.config.EngineConfig` and
`engine.protocol.FrameEngine`.
"""

from .config import EngineConfig
from .protocol import FrameEngine

__all__ = ["EngineConfig", "FrameEngine"]
