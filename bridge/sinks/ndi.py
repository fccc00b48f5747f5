"""NDI sender (cyndilib)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from bridge.errors import BackendMissing, SpecError
from bridge.frames import from_rgb
from bridge.sources.ndi import NDI_HINT


class NdiSink:
    fixed_size = False

    def __init__(self, stream: str) -> None:
        if not stream:
            raise SpecError("ndi: expected a stream name, e.g. ndi:sd-bridge")
        self.stream = stream
        self.name = f"ndi:{stream}"
        self._sender = None
        self._frame = None
        self._size = (0, 0)
        self._keep: np.ndarray | None = None

    def preflight(self) -> None:
        from bridge.sources.ndi import import_cyndilib

        import_cyndilib()

    def open(self, width: int, height: int, fps: float) -> None:
        try:
            from cyndilib.sender import Sender
            from cyndilib.video_frame import VideoSendFrame
            from cyndilib.wrapper.ndi_structs import FourCC
        except ImportError as exc:
            raise BackendMissing(NDI_HINT) from exc
        frame = VideoSendFrame()
        frame.set_resolution(width, height)
        frame.set_frame_rate(Fraction(max(1, round(fps)), 1))
        frame.set_fourcc(FourCC.BGRA)
        sender = Sender(self.stream, clock_video=False)
        sender.set_video_frame(frame)
        sender.open()
        self._sender, self._frame, self._size = sender, frame, (width, height)

    def write(self, image: np.ndarray, status: str = "") -> None:
        assert self._sender is not None
        bgra = from_rgb(image, "BGRA")
        self._keep = bgra  # an async send reads the buffer until the next call
        self._sender.write_video_async(bgra.ravel())

    def close(self) -> None:
        if self._sender is not None:
            self._sender.close()
            self._sender = None
            self._frame = None
