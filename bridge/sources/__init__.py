"""Sources: where frames come from. `open_source(spec)` turns a `--source` spec into one.

Specs: pattern | screen[:N | :x,y,w,h] | spout:NAME | ndi:NAME | camera:N | file:PATH | image:PATH
"""

from __future__ import annotations

from bridge.errors import SpecError

from .base import Source

SOURCE_SPECS = "pattern, screen[:N|:x,y,w,h], spout:NAME, ndi:NAME, camera:N, file:PATH, image:PATH"


def open_source(spec: str, fps: float = 30.0, keep_alpha: bool = False) -> Source:
    """Build (not yet open) the source a spec names; raise SpecError with the valid forms if unknown.

    `keep_alpha`: sources that can carry transparency (ndi, spout, image) deliver RGBA frames; the
    others deliver RGB whatever is asked. For a mask source, whose alpha can be the mask.
    """
    source = _make_source(spec, fps)
    if keep_alpha and hasattr(source, "keep_alpha"):
        source.keep_alpha = True
    return source


def _make_source(spec: str, fps: float) -> Source:
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "pattern":
        from .pattern import PatternSource

        return PatternSource(fps=fps)
    if kind == "screen":
        from .screen import ScreenSource

        return ScreenSource(arg, fps=fps)
    if kind == "spout":
        from .spout import SpoutSource

        return SpoutSource(arg)
    if kind == "ndi":
        from .ndi import NdiSource

        return NdiSource(arg)
    if kind == "camera":
        from .opencv import CameraSource

        return CameraSource(arg)
    if kind == "file":
        from .opencv import FileSource

        return FileSource(arg)
    if kind == "image":
        from .opencv import ImageSource

        return ImageSource(arg, fps=fps)
    raise SpecError(f"unknown source {spec!r}; expected one of: {SOURCE_SPECS}")


__all__ = ["SOURCE_SPECS", "Source", "open_source"]
