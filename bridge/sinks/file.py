"""Records to a video file that stays playable up to the last frame, at the speed the run really had.

`.mp4` (fragmented, H.264), `.mov`, `.mkv` (H.264) or `.avi` (MJPEG), through PyAV (see video_encoder).
Each frame is stamped with the wall time it was written, so a run that manages 5 fps for 10 s is a
10 s video. A write that fails, or that silently goes nowhere (folder removed, disk full, the file no
longer growing: see write_watch), raises one line from `write()`; the runtime counts a sink fault and
reopens the sink, which records on into a new numbered file (`NAME.2.mp4`, `NAME.3.mp4`, ...) and
never touches the part already written. A run that finds `PATH` from an earlier run (a daemon restarted
after a crash) starts at the first free numbered name the same way: no file with frames is replaced.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import time
from collections.abc import Callable
from typing import IO

import cv2
import numpy as np

from bridge.errors import SpecError

from .video_encoder import VideoEncoder, container_for, import_av
from .write_watch import FREE_FLOOR, STALL_S, RecordingError, WriteWatch, check_free, describe

log = logging.getLogger("sd-bridge.file")


def part_path(path: str, part: int) -> str:
    """`out/set.mp4` for part 1, `out/set.2.mp4` for part 2, and so on."""
    if part == 1:
        return path
    root, ext = os.path.splitext(path)
    return f"{root}.{part}{ext}"


def is_empty_file(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == 0


def even(n: int) -> int:
    """H.264 in 4:2:0 needs even sides."""
    return max(2, n - n % 2)


class FileSink:
    fixed_size = True

    def __init__(
        self,
        path: str,
        free_floor: int = FREE_FLOOR,
        stall_s: float = STALL_S,
        clock: Callable[[], float] = time.monotonic,
        quiet: bool = False,
    ) -> None:
        if not path:
            raise SpecError("file: expected a path, e.g. file:out/set.mp4")
        self.container = container_for(path)
        self.path = path
        self.name = f"file:{path}"
        self.free_floor, self.stall_s, self.clock = free_floor, stall_s, clock
        self._info = log.debug if quiet else log.info
        self._warn = log.debug if quiet else log.warning
        self.frames = 0
        """Frames written in all parts together."""
        self.parts: list[tuple[str, int]] = []
        """(file, frames written to it) for every file this sink has opened, in order."""
        self._file: IO[bytes] | None = None
        self._encoder: VideoEncoder | None = None
        self._watch: WriteWatch | None = None
        self._size = (0, 0)
        self._t0: float | None = None
        self._announced = ""

    def preflight(self) -> None:
        import_av()

    @property
    def target(self) -> str | None:
        """The file being written now."""
        return self.parts[-1][0] if self._file is not None else None

    def open(self, width: int, height: int, fps: float) -> None:
        folder = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(folder, exist_ok=True)
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
            raise RecordingError(f"cannot make the folder {folder}: {describe(exc)}") from None
        check_free(folder, self.free_floor)  # a full disk gets no new empty files, only a fault per retry
        target, out = self._create_next()
        self._size = (even(width), even(height))
        try:
            self._watch = WriteWatch(out.fileno(), folder, self.free_floor, self.stall_s, self.clock)
            self._encoder = VideoEncoder(out, self.container, *self._size, fps)
        except Exception as exc:
            self._watch = None
            out.close()
            with contextlib.suppress(OSError):
                os.unlink(target)  # ours and still empty: no stray file for the next try to step over
            if isinstance(exc, RecordingError):
                raise
            raise RecordingError(f"cannot record into {target}: {describe(exc)}") from None
        self._file, self._t0 = out, None
        self.parts.append((target, 0))
        if target == self._announced:
            return  # the same empty part, tried again
        self._announced = target
        if len(self.parts) == 1 and target != self.path:
            self._warn(
                "%s: %s already exists and is never replaced; recording to %s", self.name, self.path, target
            )
        elif len(self.parts) == 1:
            self._info("recording to %s", target)
        else:
            earlier = ", ".join(
                f"{p} ({n} frames{'' if os.path.exists(p) else ', since deleted'})"
                for p, n in self.parts[:-1]
                if n
            )
            log.warning("%s: recording on into %s; before: %s", self.name, target, earlier)

    def _create_next(self) -> tuple[str, IO[bytes]]:
        """The first free name from `PATH` on: the first part skips a file left by an earlier run, a
        reopen skips the parts before it. Only an empty file is written over (one whose open failed, or a
        part of ours that got no frame, so retries on a full disk leave no pile of empty files); a file
        with anything in it is never replaced."""
        if self.parts and self.parts[-1][1] == 0:
            target, _ = self.parts.pop()
            return target, self._create(target, "wb")
        part = len(self.parts) + 1
        while True:
            target = part_path(self.path, part)
            try:
                return target, self._create(target, "xb")
            except FileExistsError:
                if is_empty_file(target):
                    return target, self._create(target, "wb")
                part += 1

    @staticmethod
    def _create(target: str, mode: str) -> IO[bytes]:
        try:
            return open(target, mode, buffering=0)  # unbuffered: libav buffers, and the size is checked
        except FileExistsError:
            raise
        except OSError as exc:
            raise RecordingError(f"cannot create {target}: {describe(exc)}") from None

    def write(self, image: np.ndarray, status: str = "") -> None:
        if self._encoder is None or self._watch is None:
            raise RecordingError("the file is not open")
        self._watch.before_write()
        h, w = image.shape[:2]
        if (w, h) != self._size:
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        now = self.clock()
        if self._t0 is None:
            self._t0 = now
        try:
            self._encoder.encode(image, now - self._t0)
        except Exception as exc:
            raise RecordingError(f"cannot write {self.target}: {describe(exc)}") from None
        self._watch.after_write()
        self.frames += 1
        target, n = self.parts[-1]
        self.parts[-1] = (target, n + 1)

    def close(self) -> None:
        """Finish the file. After a failed write this cannot fail louder: what is on disk stays playable."""
        encoder, out, t0 = self._encoder, self._file, self._t0
        self._encoder = self._watch = self._file = None
        if encoder is not None:
            try:
                encoder.close()
            except Exception as exc:
                log.debug("%s: closing: %s", self.name, describe(exc))
            target, n = self.parts[-1]
            if n and t0 is not None:
                self._info("recorded %d frames (%.1f s) to %s", n, self.clock() - t0, target)
        if out is not None:
            with contextlib.suppress(OSError):
                out.close()


def probe(folder: str) -> int:
    """Record two frames into a scratch `.mp4` in `folder` and return its size (for `sd-bridge doctor`).

    Raises BackendMissing without PyAV, RecordingError when the file cannot be written there.
    """
    import_av()
    path = os.path.join(folder, "sd-bridge-probe.mp4")
    sink = FileSink(path, quiet=True)
    try:
        sink.open(64, 64, 30.0)
        for level in (0, 255):
            sink.write(np.full((64, 64, 3), level, np.uint8))
    finally:
        sink.close()
    written = sink.parts[0][0]  # not `path` when a file of that name was already there
    try:
        return os.path.getsize(written)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(written)
