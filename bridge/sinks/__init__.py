"""Sinks: where frames go. `make_sink(spec)` turns a `--sink` spec into one (several may run at once).

Specs: auto | vcam | spout:NAME | ndi:NAME | window | file:PATH | null
"""

from __future__ import annotations

from bridge.errors import SpecError

from .base import Sink

SINK_SPECS = "auto, vcam, spout:NAME, ndi:NAME, window, file:PATH, null"
DEFAULT_FILE = "out/sd-bridge.mp4"


def resolve_auto(spec: str) -> str:
    """`auto` is the preview window where a display exists, else a file in out/."""
    if spec.strip().lower() != "auto":
        return spec
    from .window import has_display

    return "window" if has_display() else f"file:{DEFAULT_FILE}"


def make_sink(spec: str) -> Sink:
    spec = resolve_auto(spec)
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "null":
        from .null import NullSink

        return NullSink()
    if kind == "file":
        from .file import FileSink

        return FileSink(arg)
    if kind == "window":
        from .window import WindowSink

        return WindowSink()
    if kind == "vcam":
        from .vcam import VcamSink

        return VcamSink(arg or None)
    if kind == "ndi":
        from .ndi import NdiSink

        return NdiSink(arg)
    if kind == "spout":
        from .spout import SpoutSink

        return SpoutSink(arg)
    raise SpecError(f"unknown sink {spec!r}; expected one of: {SINK_SPECS}")


__all__ = ["DEFAULT_FILE", "SINK_SPECS", "Sink", "make_sink", "resolve_auto"]
