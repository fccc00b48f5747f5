"""OpenCV sources: a camera, a looping video file, a still image."""

from __future__ import annotations

import os

import cv2
import numpy as np

from bridge.errors import BridgeError, SpecError
from bridge.frames import to_rgb


def open_capture(target: int | str) -> cv2.VideoCapture:
    """`cv2.VideoCapture(target)` with OpenCV's own logging silenced while it probes its backends.

    A camera that is not there makes each backend print several lines of warnings and a C++
    exception text, again on every retry; our one-line error says the same thing once.
    """
    logging = cv2.utils.logging
    previous = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        return cv2.VideoCapture(target)
    finally:
        logging.setLogLevel(previous)


class CameraSource:
    fps = None  # the camera paces itself: read() blocks until its next frame

    def __init__(self, arg: str) -> None:
        try:
            self.index = int(arg)
        except ValueError:
            raise SpecError(f"camera:{arg}: expected a camera number, e.g. camera:0") from None
        self.name = f"camera:{self.index}"
        self._cap: cv2.VideoCapture | None = None

    def open(self, width: int, height: int) -> None:
        cap = open_capture(self.index)
        if not cap.isOpened():
            cap.release()
            raise BridgeError(f"{self.name}: cannot open camera {self.index} (is it connected and free?)")
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a backlog
        self._cap = cap

    def read(self) -> np.ndarray:
        assert self._cap is not None
        ok, img = self._cap.read()
        if not ok:
            raise BridgeError(f"{self.name}: the camera stopped sending frames")
        return to_rgb(img, "BGR")

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class FileSource:
    """A video file played at its own frame rate, looping at the end."""

    on_demand = False
    """Each read decodes the next frame: read less often, the video would play slower."""

    def __init__(self, path: str) -> None:
        if not path:
            raise SpecError("file: expected a path, e.g. file:clip.mp4")
        self.path = path
        self.name = f"file:{path}"
        self.fps: float | None = 30.0
        self._cap: cv2.VideoCapture | None = None

    def preflight(self) -> None:
        """At start, before the model loads: a file that is not there (or not video) is a one-line
        error, not a source retried for ever. Once running, a file that goes away is retried."""
        self.open(0, 0)
        self.close()

    def open(self, width: int, height: int) -> None:
        if not os.path.isfile(self.path):
            raise BridgeError(f"{self.name}: no such file ({os.path.abspath(self.path)})")
        cap = open_capture(self.path)
        if not cap.isOpened():
            cap.release()
            raise BridgeError(f"{self.name}: OpenCV cannot decode this file")
        native = cap.get(cv2.CAP_PROP_FPS)
        self.fps = native if 1 <= native <= 240 else 30.0
        self._cap = cap

    def read(self) -> np.ndarray:
        assert self._cap is not None
        ok, img = self._cap.read()
        if not ok:  # the end: loop
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, img = self._cap.read()
            if not ok:
                raise BridgeError(f"{self.name}: no frames could be decoded")
        return to_rgb(img, "BGR")

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageSource:
    """A still image, sent again at `fps` so that the engine (and the similarity filter) keep running."""

    keep_alpha = False
    """RGBA frames (the image's transparency) instead of RGB: for a mask source."""
    on_demand = True
    """The same picture every read: reading less often loses nothing."""

    def __init__(self, path: str, fps: float = 30.0) -> None:
        if not path:
            raise SpecError("image: expected a path, e.g. image:photo.png")
        self.path = path
        self.name = f"image:{path}"
        self.fps = fps
        self._img: np.ndarray | None = None

    def preflight(self) -> None:
        """At start: a missing or unreadable image is a one-line error (see FileSource.preflight)."""
        self.open(0, 0)
        self.close()

    def open(self, width: int, height: int) -> None:
        img = cv2.imread(self.path, cv2.IMREAD_UNCHANGED if self.keep_alpha else cv2.IMREAD_COLOR)
        if img is None:
            raise BridgeError(f"{self.name}: cannot read this image (missing file or unknown format)")
        if img.dtype == np.uint16:  # a 16-bit PNG, read unchanged
            img = (img >> 8).astype(np.uint8)
        elif img.dtype != np.uint8:
            raise BridgeError(f"{self.name}: expected an 8- or 16-bit image, got {img.dtype}")
        if img.ndim == 3 and img.shape[2] == 4:
            self._img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
        else:
            self._img = to_rgb(img, "GRAY" if img.ndim == 2 else "BGR")

    def read(self) -> np.ndarray:
        assert self._img is not None
        return self._img

    def close(self) -> None:
        self._img = None
