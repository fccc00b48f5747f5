"""Capture: one source read on its own thread, each frame fitted once and handed on.

A source may block for seconds in `open()` (NDI searches the network, a camera probes its
backend) or return nothing from `read()` for a while (a sender that left). None of that may stall
the show, so reading and holding are two threads: the reader opens, reads and reconnects with a
back-off; the hold timer, independent of the source, re-delivers the last good frame at the
runtime's rate whenever the reader has delivered nothing fresh for a few frame times (of the
runtime's rate, or of the source's own when it is slower, so a slow camera is never padded with
repeats while it works). The same room
serves the main video source (with a hold timer) and auxiliary sources such as the mask source
(without one: their last frame simply stays in use).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bridge.frames import Fit, fit
from bridge.sources.base import Source

from .engines import one_line
from .log import log
from .pacing import SMOOTHING, Need, next_read

Deliver = Callable[[np.ndarray, float], None]
"""`deliver(image, t_capture)`: a fitted frame and the perf_counter time its read started."""
FaultHook = Callable[[Source, BaseException, str], bool]
"""`on_fault(source, error, what)` counts and logs a fault; True when it was logged."""

SILENT_S = 1.0
"""A source that delivers nothing fresh for this long (or 3 of its own frame times, if longer)
counts as down in stats and the status line."""


SLEEP_MAX_S = 0.05
"""A paced read's pause up to this long is a plain sleep (see `CaptureRoom._pause`)."""

NEED_WAIT_MAX_S = 0.5
"""Reading when the engine needs a frame never leaves an on-demand source unread for longer than
this (a slow engine on a CPU takes seconds a frame): its health and preview stay current."""


class CaptureRoom:
    """Reads `source` on a reader thread; with `hold_fps`, a hold timer keeps its last frame going."""

    def __init__(
        self,
        role: str,
        source: Source,
        deliver: Deliver,
        *,
        size: Callable[[], tuple[int, int]],
        fit_mode: Callable[[], Fit],
        stop: threading.Event,
        on_fault: FaultHook,
        on_back: Callable[[Source], None],
        retry_s: float = 0.5,
        hold_fps: float | None = None,
        need: Callable[[], Need | None] | None = None,
    ) -> None:
        self.role = role
        self.source = source
        self._deliver_to = deliver
        self._size = size
        self._fit_mode = fit_mode
        self._stop = stop
        self._on_fault = on_fault
        self._on_back = on_back
        self._retry_s = retry_s
        self.hold_fps = hold_fps
        self._need = need
        """The consumer's next need for a frame (`pacing`): an on-demand source is read for it."""
        self._read_s = 0.0
        """Moving average of a read's duration, fitting and delivery included."""
        self._planned_at = 0.0
        """time.monotonic() of the next read when it was put off for the engine's need: the hold
        timer counts silence from then, not from the last read."""
        self._interval = 0.0
        """The source's own frame interval: its declared rate's, then a moving average of the gaps
        between fresh frames."""
        self._lock = threading.Lock()
        self._last: np.ndarray | None = None
        self._fresh_at = time.monotonic()
        self._opened = False
        self._down_since: float | None = time.monotonic()  # down until the first frame arrives
        self._logged_down = False
        self.fresh = 0
        self.held = 0
        self.threads: list[threading.Thread] = []

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        loops: list[tuple[str, Callable[[], None]]] = [(self.role, self._read_loop)]
        if self.hold_fps:
            loops.append((f"{self.role}-hold", self._hold_loop))
        for name, target in loops:
            t = threading.Thread(target=target, name=f"sd-bridge-{name}", daemon=True)
            t.start()
            self.threads.append(t)

    # -- health ---------------------------------------------------------------------------
    @property
    def hold_after_s(self) -> float:
        """Silence before the hold timer steps in: 3 frame times of the runtime's rate or of the
        source's own, whichever is longer (at least 0.1 s, at most SILENT_S)."""
        base = 3.0 / self.hold_fps if self.hold_fps else 0.0
        return min(SILENT_S, max(0.1, base, 3.0 * self._interval))

    def health(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            since = self._down_since
            if since is None and now - self._fresh_at > max(SILENT_S, 3.0 * self._interval):
                since = self._fresh_at
        return {
            "name": self.source.name,
            "up": since is None,
            "down_s": round(now - since, 2) if since is not None else 0.0,
            "frames": self.fresh,
            "held": self.held,
        }

    def _mark_down(self) -> None:
        with self._lock:
            if self._down_since is None:
                self._down_since = time.monotonic()

    def _mark_fresh(self) -> None:
        now = time.monotonic()
        with self._lock:
            was_down = self._down_since is not None
            if not was_down:
                gap = min(now - self._fresh_at, SILENT_S)
                self._interval = gap if not self._interval else 0.9 * self._interval + 0.1 * gap
            self._fresh_at = now
            self._down_since = None
        if was_down and self._logged_down:
            self._logged_down = False
            self._on_back(self.source)

    def fault(self, exc: BaseException, what: str) -> None:
        if what != "frame":  # one odd frame (skipped) is not a lost source
            self._mark_down()
        self._logged_down |= bool(self._on_fault(self.source, exc, what))

    # -- the reader -----------------------------------------------------------------------
    def _read_loop(self) -> None:
        src = self.source
        backoff = self._retry_s
        next_tick = time.perf_counter()
        when_needed = self._need is not None and bool(getattr(src, "on_demand", False))
        try:
            while not self._stop.is_set():
                if not self._opened:
                    try:
                        src.open(*self._size())
                        self._opened, backoff = True, self._retry_s
                        if src.fps and not self._interval:  # a paced source says its rate
                            self._interval = 1.0 / src.fps
                        next_tick = time.perf_counter()
                    except Exception as exc:
                        self.fault(exc, "open")
                        self._stop.wait(backoff)
                        backoff = min(backoff * 2, 5.0)
                    continue
                pace = src.fps or 0.0
                if pace:
                    delay = next_tick - time.perf_counter()
                    if delay > 0 and self._pause(delay):
                        break
                    next_tick = max(next_tick + 1.0 / pace, time.perf_counter() - 1.0 / pace)
                t0 = time.perf_counter()
                try:
                    img = src.read()
                except Exception as exc:
                    self.fault(exc, "read")
                    self._close(src)
                    self._opened = False
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                if img is None:
                    continue
                w, h = self._size()
                try:
                    image = fit(img, w, h, self._fit_mode())
                except Exception as exc:  # e.g. a frame of an unexpected shape: skip it
                    self.fault(exc, "frame")
                    continue
                self._mark_fresh()
                self._deliver(image, t0, fresh=True)
                if pace and when_needed:
                    next_tick = self._plan(next_tick, t0)
        finally:
            if self._opened:
                self._close(src)

    def _plan(self, paced: float, t0: float) -> float:
        """The next read of an on-demand source: at `paced`, or later, just before the engine's
        next need for a frame (bridge/runtime/pacing.py), but never more than NEED_WAIT_MAX_S on."""
        assert self._need is not None
        now = time.perf_counter()
        took = now - t0
        self._read_s = took if not self._read_s else self._read_s + SMOOTHING * (took - self._read_s)
        planned = next_read(paced, self._need(), self._read_s, latest=now + NEED_WAIT_MAX_S)
        if planned > paced:
            self._planned_at = time.monotonic() + (planned - now)
        return planned

    def _pause(self, delay: float) -> bool:
        """Wait `delay` seconds for the next paced read; True when the runtime is stopping. A pause
        of a frame or so is a plain sleep, which wakes up for half the CPU of `Event.wait` (58
        against 119 us on a 2-core VM, issue 16): stopping then waits at most that one pause."""
        if delay > SLEEP_MAX_S:
            return self._stop.wait(delay)
        time.sleep(delay)
        return self._stop.is_set()

    # -- the hold timer -------------------------------------------------------------------
    def _hold_loop(self) -> None:
        """Sleeps until the source has been silent for `hold_after_s`, then repeats its last frame
        at the runtime's rate until a fresh one comes (a healthy source costs ~10 wake-ups a second)."""
        assert self.hold_fps
        period = 1.0 / self.hold_fps
        tick: float | None = None  # while holding: when the next repeat is due (a steady cadence)
        while not self._stop.is_set():
            with self._lock:
                last, fresh_at = self._last, max(self._fresh_at, self._planned_at)
            wait = fresh_at + self.hold_after_s - time.monotonic()
            if last is None or wait > 0:
                tick = None
                self._stop.wait(wait if last is not None else period)
                continue
            now = time.perf_counter()
            self._deliver(last, now, fresh=False)
            tick = max((tick or now) + period, now - period)  # catch up by a frame at most
            self._stop.wait(max(0.0, tick - time.perf_counter()))

    def _deliver(self, image: np.ndarray, t0: float, *, fresh: bool) -> None:
        with self._lock:  # the reader and the hold timer never deliver at once
            self._last = image
            if fresh:
                self.fresh += 1
            else:
                self.held += 1
            self._deliver_to(image, t0)

    @staticmethod
    def _close(src: Source) -> None:
        try:
            src.close()
        except Exception as exc:
            log.debug("closing %s: %s", src.name, one_line(exc))
