"""The engine's exceptions: one line each, naming what went wrong and how to fix it."""

from __future__ import annotations


class EngineError(RuntimeError):
    """Something the engine cannot do as asked (bad model spec, missing optional package...)."""


class ModelNotAvailable(EngineError):
    """A model is neither on disk nor downloadable right now (offline, no network, unknown id)."""

    def __init__(self, model: str, reason: str = "", fetch: str | None = None) -> None:
        """`fetch`: how to get this kind of model, when it is not a base model (a ControlNet, a depth
        model), which `sd-bridge fetch MODEL` would fetch as one."""
        self.model = model
        why = f" ({reason})" if reason else ""
        fetch = fetch or (
            f"`sd-bridge fetch {model}` (or `sd-bridge fetch --preset NAME`; or give a local folder or "
            ".safetensors file); `--model random:sd-turbo` runs the same pipeline offline with random "
            "weights"
        )
        super().__init__(f"model {model!r} is not available{why}. Fetch it while online with {fetch}.")


def net_fetch_hint(net: str) -> str:
    """How to fetch a ControlNet (for ModelNotAvailable)."""
    return (
        f"`sd-bridge fetch --controlnet PRE={net}` (or `sd-bridge fetch --preset NAME` for a preset's "
        "nets); `random:controlnet` runs offline with random weights"
    )


def depth_fetch_hint() -> str:
    """How to fetch a depth model (for ModelNotAvailable)."""
    return (
        "`sd-bridge fetch --preset NAME` (a preset with a depth net fetches its depth_model); "
        '`depth_model = "random:depth"` runs offline with random weights'
    )
