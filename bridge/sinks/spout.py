"""Spout sender (SpoutGL, Windows only)."""

from __future__ import annotations

import numpy as np

from bridge.errors import BridgeError, SpecError
from bridge.frames import from_rgb
from bridge.spout import GL_RGBA, import_spoutgl


class SpoutSink:
    fixed_size = False

    def __init__(self, sender: str) -> None:
        if not sender:
            raise SpecError("spout: expected a sender name, e.g. spout:sd-bridge")
        self.sender = sender
        self.name = f"spout:{sender}"
        self._tx = None

    def preflight(self) -> None:
        import_spoutgl()

    def open(self, width: int, height: int, fps: float) -> None:
        spoutgl = import_spoutgl()
        tx = spoutgl.SpoutSender()
        tx.setSenderName(self.sender)
        self._tx = tx

    def write(self, image: np.ndarray, status: str = "") -> None:
        assert self._tx is not None
        h, w = image.shape[:2]
        rgba = from_rgb(image, "RGBA")
        if not self._tx.sendImage(rgba, w, h, GL_RGBA, False, 0):
            raise BridgeError(f"{self.name}: SpoutGL refused the frame")

    def close(self) -> None:
        if self._tx is not None:
            self._tx.releaseSender()
            self._tx = None
