"""Access to SpoutGL (Windows only), shared by the Spout source and sink.

Spout shares GPU textures between Windows applications (TouchDesigner, Resolume, OBS with the
Spout plugin). We move frames through SpoutGL's CPU image calls (`receiveImage`/`sendImage`),
which create their own hidden OpenGL context, so the daemon needs no window.
"""

from __future__ import annotations

import sys
from types import ModuleType

from bridge.errors import BackendMissing

GL_RGBA = 0x1908
"""OpenGL's GL_RGBA enum, so that we need not import PyOpenGL for one constant."""


def is_windows() -> bool:
    return sys.platform == "win32"


def import_spoutgl() -> ModuleType:
    if not is_windows():
        raise BackendMissing("Spout exists only on Windows; on this platform use ndi:NAME instead")
    try:
        import SpoutGL
    except ImportError as exc:
        raise BackendMissing('Spout needs SpoutGL: pip install "sd-bridge[spout]"') from exc
    return SpoutGL
