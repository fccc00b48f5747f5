"""An OpenCV preview window with the status line drawn over the picture. `q` or Esc stops the daemon.

GUI toolkits (Cocoa on macOS in particular) only allow windows on the main thread, so `write()`
(its sink thread) only hands the newest frame over, and `pump()` (called by the main thread, which
`sd-bridge run` keeps free for signals and the status line anyway) creates the window and draws.
"""

from __future__ import annotations

import os
import sys
import threading

import cv2
import numpy as np

from bridge.errors import BackendMissing
from bridge.frames import from_rgb


def has_display() -> bool:
    """Whether a window can be shown: always on Windows and macOS, with DISPLAY/WAYLAND_DISPLAY on Linux."""
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class WindowSink:
    name = "window"
    fixed_size = False
    shows_status = True

    def __init__(self, title: str = "sd-bridge") -> None:
        self.title = title
        self.stop_requested = False
        self._size: tuple[int, int] | None = None
        self._shown_size: tuple[int, int] | None = None
        self._pending: np.ndarray | None = None
        self._lock = threading.Lock()
        self._window = False

    def preflight(self) -> None:
        self.open(64, 64, 30.0)

    def open(self, width: int, height: int, fps: float) -> None:
        if not has_display():
            raise BackendMissing("window: no display (DISPLAY is not set); use --sink file:out/sd-bridge.mp4")
        self._size = (width, height)

    def write(self, image: np.ndarray, status: str = "") -> None:
        bgr = from_rgb(image, "BGR")
        if status:
            _overlay(bgr, status)
        with self._lock:
            self._pending = bgr

    def pump(self) -> None:
        """Draw the newest frame and handle keys. Main thread only."""
        with self._lock:
            frame, self._pending = self._pending, None
        if frame is None:
            if self._window:
                self._keys()
            return
        try:
            if not self._window:
                cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
                self._window = True
            h, w = frame.shape[:2]
            if self._shown_size != (w, h):
                cv2.resizeWindow(self.title, w, h)
                self._shown_size = (w, h)
            cv2.imshow(self.title, frame)
        except cv2.error as exc:
            raise BackendMissing(f"window: OpenCV cannot show a window here ({_short(exc)})") from exc
        self._keys()

    def _keys(self) -> None:
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            self.stop_requested = True

    def close(self) -> None:
        self._size = None

    def destroy(self) -> None:
        """Close the window (main thread)."""
        if self._window:
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)
            except cv2.error:
                pass
            self._window = False


def _overlay(bgr: np.ndarray, text: str) -> None:
    h, w = bgr.shape[:2]
    scale = max(0.35, min(w, 1024) / 1400)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(bgr, (0, 0), (min(w, tw + 8), th + base + 8), (0, 0, 0), -1)
    cv2.putText(bgr, text, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def _short(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:120]
