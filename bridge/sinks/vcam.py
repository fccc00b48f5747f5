"""Virtual camera (pyvirtualcam): OBS Virtual Camera / Unity Capture on Windows, OBS on macOS,
v4l2loopback on Linux."""

from __future__ import annotations

import sys

import cv2
import numpy as np

from bridge.errors import BackendMissing


def install_hint() -> str:
    if sys.platform == "win32":
        return "install OBS Studio (26 or newer; start its Virtual Camera once) or Unity Capture"
    if sys.platform == "darwin":
        return "install OBS Studio (28 or newer) and start its Virtual Camera once"
    return (
        "install v4l2loopback: sudo apt install v4l2loopback-dkms"
        " && sudo modprobe v4l2loopback exclusive_caps=1"
    )


class VcamSink:
    name = "vcam"
    fixed_size = False

    def __init__(self, device: str | None = None) -> None:
        self.device = device or None
        self._cam = None
        self._size = (0, 0)

    def open(self, width: int, height: int, fps: float) -> None:
        try:
            import pyvirtualcam
        except ImportError as exc:
            raise BackendMissing('vcam needs pyvirtualcam: pip install "sd-bridge[vcam]"') from exc
        try:
            # The camera advertises the output rate; frames are sent as they come (latest wins).
            self._cam = pyvirtualcam.Camera(
                width, height, max(1.0, float(fps)), fmt=pyvirtualcam.PixelFormat.RGB, device=self.device
            )
        except RuntimeError as exc:
            raise BackendMissing(f"vcam: no virtual camera device; {install_hint()}") from exc
        self._size = (width, height)

    def preflight(self) -> None:
        """Open and close the device once, so that a missing one is reported at start."""
        self.open(64, 64, 30.0)
        self.close()

    def write(self, image: np.ndarray, status: str = "") -> None:
        assert self._cam is not None
        h, w = image.shape[:2]
        if (w, h) != self._size:
            image = cv2.resize(image, self._size)
        self._cam.send(image)

    def close(self) -> None:
        if self._cam is not None:
            self._cam.close()
            self._cam = None
