"""Spout receiver (SpoutGL, Windows only)."""

from __future__ import annotations

import numpy as np

from bridge.errors import BridgeError, SpecError
from bridge.spout import GL_RGBA, import_spoutgl


class SpoutSource:
    fps = None
    keep_alpha = False
    """RGBA frames instead of RGB (a mask source: TouchDesigner's alpha sent over Spout)."""

    def __init__(self, sender: str) -> None:
        if not sender:
            raise SpecError("spout: expected a sender name, e.g. spout:TDSyphonSpoutOut")
        self.sender = sender
        self.name = f"spout:{sender}"
        self._rx = None
        self._buf: np.ndarray | None = None

    def preflight(self) -> None:
        import_spoutgl()

    def open(self, width: int, height: int) -> None:
        spoutgl = import_spoutgl()
        rx = spoutgl.SpoutReceiver()
        rx.setReceiverName(self.sender)
        self._rx = rx
        self._buf = None

    def read(self) -> np.ndarray | None:
        rx = self._rx
        assert rx is not None
        ok = rx.receiveImage(self._buf, GL_RGBA, False, 0)
        if rx.isUpdated():  # first connection or the sender changed size: (re)allocate
            w, h = rx.getSenderWidth(), rx.getSenderHeight()
            if w <= 0 or h <= 0:
                raise BridgeError(f"{self.name}: the sender reports an empty frame {w}x{h}")
            self._buf = np.zeros((h, w, 4), dtype=np.uint8)
            return None
        if not ok or self._buf is None:
            rx.waitFrameSync(self.sender, 100)
            return None
        is_new = getattr(rx, "isFrameNew", None)
        if is_new is not None and not is_new():
            rx.waitFrameSync(self.sender, 100)
            return None
        # Always a copy: the next receive writes into the same buffer.
        return self._buf.copy() if self.keep_alpha else np.ascontiguousarray(self._buf[..., :3])

    def close(self) -> None:
        if self._rx is not None:
            self._rx.releaseReceiver()
            self._rx = None
