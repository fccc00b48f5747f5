"""The engine's exceptions: one line each, naming what went wrong and how to fix it."""

from __future__ import annotations


class EngineError(RuntimeError):
    """Something the engine cannot do as asked (bad model spec, missing optional package...)."""


class ModelNotAvailable(EngineError):
    """A model is neither on disk nor downloadable right now (offline, no network, unknown id)."""

    def __init__(self, model: str, reason: str = "") -> None:
        self.model = model
        why = f" ({reason})" if reason else ""
        super().__init__(
            f"model {model!r} is not available{why}. Fetch it while online with "
            f"`sd-bridge fetch {model}` (or `sd-bridge fetch --preset NAME`; or give a local folder or "
            ".safetensors file); `--model random:sd-turbo` runs the same pipeline offline with random "
            "weights."
        )
