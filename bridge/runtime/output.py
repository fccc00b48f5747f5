"""Output: each sink on its own thread behind its own latest-wins slot, so a slow sink never
delays another.

The engine loop hands each batch straight to every sink's slot (`OutputRoom.deliver`: numbering
and a slot put, no thread in between: on a 2-core machine each extra hop per frame cost the engine
about 0.4 ms, issue 16). The pixels are still on their way from the device then; the first read of
`frame.image`, in a sink's thread, waits for them. A sink worker opens its sink at the frame's
size, writes, and on a failure closes it and reopens it later with a back-off while the other sinks
carry on. A frame counts as out (fps, end-to-end latency) when the first sink has written it;
`--frames N` stops once every sink has written N (checked after each write, and by the engine
loop between frames for the drain timeout). The status line is built only for sinks that draw it
(`shows_status`, the preview window), at most 10 times a second, after a write, never before one:
building it holds the GIL for a fraction of a millisecond, which a small engine on the CPU feels.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from bridge.frames import Frame
from bridge.sinks.base import Sink

from .engines import one_line
from .log import log
from .slot import LatestSlot

if TYPE_CHECKING:
    from .daemon import Runtime

STATUS_PERIOD_S = 0.1
DRAIN_S = 5.0
"""After `--frames N`, how long the other sinks get to catch up once the first has written N."""


class SinkWorker:
    """One sink, its slot and its thread."""

    def __init__(self, sink: Sink, room: OutputRoom) -> None:
        self.sink = sink
        self.room = room
        self.slot: LatestSlot[list[tuple[int, Frame]]] = LatestSlot()
        """The newest batch, each frame with its output number."""
        self.retired = threading.Event()
        self.written = 0
        self.faults = 0
        self.shows_status = bool(getattr(sink, "shows_status", False))
        """The sink draws the status line (the preview window); the others get "" and cost nothing."""
        self._size: tuple[int, int] | None = None
        self._retry_at = 0.0
        self._backoff = room.rt.options.retry_s
        self.thread = threading.Thread(target=self._run, name=f"sd-bridge-sink-{sink.name}", daemon=True)

    def _run(self) -> None:
        stop = self.room.rt.stop_event
        try:
            while not stop.is_set() and not self.retired.is_set():
                frames = self.slot.get(0.1)
                if frames is None:
                    continue
                for n, frame in frames:
                    if stop.is_set() or self.retired.is_set():
                        break
                    try:
                        self._write(n, frame)
                    except Exception as exc:  # a bug here must not silence this sink for good
                        what = f"{type(exc).__name__}: {one_line(exc)}"
                        self.room.rt.once.warn(f"loop:sink:{what}", f"sink {self.sink.name}: {what}")
        finally:
            if self._size is not None:
                self.room.rt._close_quietly(self.sink)

    @property
    def is_open(self) -> bool:
        return self._size is not None

    def _write(self, n: int, frame: Frame) -> None:
        sink, rt = self.sink, self.room.rt
        limit = rt.options.max_frames
        if limit is not None and self.written >= limit:  # `--frames N`: this sink has its N
            return
        h, w = frame.image.shape[:2]
        if self._size is not None and self._size != (w, h) and not sink.fixed_size:
            rt._close_quietly(sink)
            self._size = None
        if self._size is None:
            if time.monotonic() < self._retry_at:
                return
            try:
                sink.open(w, h, rt.options.fps)
            except Exception as exc:
                self._fault(exc, "open")
                return
            self._size = (w, h)
            if rt.once.count(f"sink:{sink.name}:"):
                log.info("sink %s is back", sink.name)
                rt.once.forget(f"sink:{sink.name}:")
        try:
            sink.write(frame.image, self.room.status if self.shows_status else "")
        except Exception as exc:
            self._fault(exc, "write")
            rt._close_quietly(sink)
            self._size = None
            return
        self._backoff = rt.options.retry_s
        self.written += 1
        self.room.written(n, frame)

    def _fault(self, exc: BaseException, what: str) -> None:
        rt = self.room.rt
        rt.faults["sink"] += 1
        self.faults += 1
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, 5.0)
        name = self.sink.name
        rt.once.warn(f"sink:{name}:{what}:{one_line(exc)}", f"sink {name}: {one_line(exc)} (reopening)")

    def stats(self) -> dict[str, Any]:
        return {
            "written": self.written,
            "dropped": self.slot.dropped,
            "faults": self.faults,
            "open": self.is_open,
        }


class OutputRoom:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.workers = [SinkWorker(s, self) for s in rt.sinks]
        self.status = ""
        self.frames_out = 0
        self._number = 0
        self._limit_reached_at: float | None = None
        self._last_out = -1
        self._out_lock = threading.Lock()
        self._status_at = 0.0
        self._status_lock = threading.Lock()

    def start(self) -> list[threading.Thread]:
        threads = [w.thread for w in self.workers]
        for t in threads:
            t.start()
        return threads

    def remove(self, sink: Sink) -> None:
        """Stop feeding `sink` (a preview window that failed); its thread closes it."""
        for w in [w for w in self.workers if w.sink is sink]:
            w.retired.set()
            self.workers.remove(w)

    # -- from the engine loop ---------------------------------------------------------------
    def deliver(self, frames: list[Frame]) -> None:
        """Number one engine call's frames and put them into every sink's slot (never waits)."""
        numbered = [(self._number + i, f) for i, f in enumerate(frames)]
        self._number += len(numbered)
        workers = list(self.workers)
        for w in workers:
            w.slot.put(numbered)
        if not workers:  # nowhere to write: the frames are out as soon as they are here
            for n, f in numbered:
                self.written(n, f)

    def check_limit(self) -> None:
        """`--frames N`: stop the runtime once every sink has its N (see `_finished`)."""
        limit = self.rt.options.max_frames
        if limit is not None and self._finished(limit):
            self.rt.stop_event.set()

    @property
    def dropped(self) -> int:
        """Frames no sink showed because a newer batch replaced them in its slot: the fewest any
        sink dropped (a slow preview window dropping frames loses nothing while NDI shows them all;
        each sink's own count is in `stats()`)."""
        return min((w.slot.dropped for w in self.workers), default=0)

    def _finished(self, limit: int) -> bool:
        """`--frames N`: every sink has written N frames (a failing one does not hold the run up,
        nor, for longer than DRAIN_S after the first sink is done, a stuck one)."""
        if self.frames_out < limit:
            return False
        now = time.monotonic()
        if self._limit_reached_at is None:
            self._limit_reached_at = now
        if now - self._limit_reached_at > DRAIN_S:
            return True
        return all(w.written >= limit or (w.faults and not w.is_open) for w in self.workers)

    # -- called by the sink workers -------------------------------------------------------
    def written(self, n: int, frame: Frame) -> None:
        """A sink wrote frame number `n`: the first sink to do so makes it count as out."""
        rt = self.rt
        done = time.perf_counter()
        with self._out_lock:
            if n <= self._last_out:
                first = False
            else:
                self._last_out, first = n, True
                self.frames_out += 1
        if first:
            rt._stats.add("output", done - frame.times.get("engine", done))
            rt._stats.add("e2e", done - frame.t_capture)
            rt._stats.frame_out(done)
            if self.frames_out == 1:
                log.info("first frame out, %.0f ms after start", (done - rt._t_start) * 1000)
        if any(w.shows_status for w in self.workers):
            self._refresh_status(done)
        self.check_limit()

    def _refresh_status(self, now: float) -> None:
        if now - self._status_at < STATUS_PERIOD_S or not self._status_lock.acquire(blocking=False):
            return
        try:
            self._status_at = now
            self.status = self.rt.status_line()
        except Exception:  # the overlay is cosmetic
            self.status = ""
        finally:
            self._status_lock.release()

    def stats(self) -> dict[str, dict[str, Any]]:
        return {w.sink.name: w.stats() for w in self.workers}
