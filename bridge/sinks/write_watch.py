"""Notices when a recording stops reaching the disk, and says why in one line.

A video writer can keep accepting frames that go nowhere: into a file whose folder was removed (the
data lands in a deleted inode), onto a full disk, or through a library that swallows its errors. So
besides the encoder's own exceptions, each write is checked against the file itself: still linked,
enough free space beside it, and growing as frames go in.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from collections.abc import Callable

from bridge.errors import BridgeError

FREE_FLOOR = 256 * 1024
"""Below this many free bytes a disk counts as full: we stop before a frame is cut in half."""
STALL_S = 3.0
"""A file that has not grown for this long while frames were written is not being recorded."""
FREE_CHECK_S = 0.5
"""Free space is read this often, and before every frame once the disk nears the floor."""


class RecordingError(BridgeError):
    """A recording that cannot go on in its current file (the sink is reopened into a new one)."""


def describe(exc: BaseException) -> str:
    """One line for an OS or libav write error."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "disk full"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def kib(n: int) -> str:
    return f"{n // 1024} KiB"


def check_free(folder: str, floor: int = FREE_FLOOR) -> int:
    """The free bytes beside `folder`; RecordingError when it is gone or has fewer than `floor`."""
    try:
        free = shutil.disk_usage(folder).free
    except FileNotFoundError:
        raise RecordingError(f"the folder {folder} is gone") from None
    except OSError as exc:
        raise RecordingError(f"cannot check the free space on {folder}: {describe(exc)}") from None
    if free < floor:
        raise RecordingError(f"disk full: {kib(free)} free on {folder}")
    return free


class WriteWatch:
    """Checks one open file before and after each frame is written to it."""

    def __init__(
        self,
        fd: int,
        folder: str,
        floor: int = FREE_FLOOR,
        stall_s: float = STALL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fd, self.folder, self.floor, self.stall_s, self.clock = fd, folder, floor, stall_s, clock
        self._size = os.fstat(fd).st_size
        self._grew_at = clock()
        self._writes_since_growth = 0
        self._free = check_free(folder, floor)
        self._free_read_at, self._size_at_free = self._grew_at, self._size

    def before_write(self) -> None:
        if os.fstat(self.fd).st_nlink == 0:
            raise RecordingError("the file was deleted (was its folder removed?)")
        now = self.clock()
        left = self._free - (self._size - self._size_at_free)  # what we wrote since is gone from it
        if now - self._free_read_at >= FREE_CHECK_S or left < 2 * self.floor + 64 * 1024:
            self._free = check_free(self.folder, self.floor)
            self._free_read_at, self._size_at_free = now, self._size

    def after_write(self) -> None:
        size, now = os.fstat(self.fd).st_size, self.clock()
        if size > self._size:
            self._size, self._grew_at, self._writes_since_growth = size, now, 0
            return
        self._writes_since_growth += 1
        stalled = now - self._grew_at
        if self._writes_since_growth >= 3 and stalled > self.stall_s:
            lost = self._writes_since_growth
            raise RecordingError(f"the file stopped growing: {lost} frames in {stalled:.0f} s went nowhere")
