"""An OpenCV preview window with the status line drawn over the picture. `q` or Esc stops the daemon."""

from __future__ import annotations

import os
import sys

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

    def __init__(self, title: str = "sd-bridge") -> None:
        self.title = title
        self.stop_requested = False
        self._open = False

    def open(self, width: int, height: int, fps: float) -> None:
        if not has_display():
            raise BackendMissing("window: no display (DISPLAY is not set); use --sink file:out/sd-bridge.mp4")
        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
            cv2.resizeWindow(self.title, width, height)
        except cv2.error as exc:
            raise BackendMissing(f"window: OpenCV cannot open a window here ({_short(exc)})") from exc
        self._open = True

    def write(self, image: np.ndarray, status: str = "") -> None:
        bgr = from_rgb(image, "BGR")
        if status:
            _overlay(bgr, status)
        cv2.imshow(self.title, bgr)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            self.stop_requested = True

    def close(self) -> None:
        if self._open:
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)
            except cv2.error:
                pass
            self._open = False


def _overlay(bgr: np.ndarray, text: str) -> None:
    h, w = bgr.shape[:2]
    scale = max(0.35, min(w, 1024) / 1400)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(bgr, (0, 0), (min(w, tw + 8), th + base + 8), (0, 0, 0), -1)
    cv2.putText(bgr, text, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def _short(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:120]
