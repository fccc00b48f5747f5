"""Records to a video file (OpenCV VideoWriter, mp4v in .mp4, MJPG in .avi)."""

from __future__ import annotations

import os

import cv2
import numpy as np

from bridge.errors import BridgeError, SpecError
from bridge.frames import from_rgb


class FileSink:
    fixed_size = True

    def __init__(self, path: str) -> None:
        if not path:
            raise SpecError("file: expected a path, e.g. file:out/set.mp4")
        self.path = path
        self.name = f"file:{path}"
        self._writer: cv2.VideoWriter | None = None
        self._size = (0, 0)
        self.frames = 0
        self._opened_once = False

    def open(self, width: int, height: int, fps: float) -> None:
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        if self._opened_once:
            # Reopening after a failure must not truncate what was recorded: write a numbered part.
            root, ext = os.path.splitext(self.path)
            part = 2
            while os.path.exists(f"{root}.{part}{ext}"):
                part += 1
            target = f"{root}.{part}{ext}"
        else:
            target = self.path
        fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.path.lower().endswith(".avi") else "mp4v"))
        writer = cv2.VideoWriter(target, fourcc, float(fps), (width, height))
        if not writer.isOpened():
            raise BridgeError(f"{self.name}: OpenCV cannot write this file (use .mp4 or .avi)")
        self._writer, self._size, self._opened_once = writer, (width, height), True

    def write(self, image: np.ndarray, status: str = "") -> None:
        assert self._writer is not None
        h, w = image.shape[:2]
        if (w, h) != self._size:
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(from_rgb(image, "BGR"))
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
