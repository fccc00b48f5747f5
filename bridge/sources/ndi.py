"""NDI receiver (cyndilib), found by source name; a partial name matches; reconnects."""

from __future__ import annotations

import time

import numpy as np

from bridge.errors import BackendMissing, BridgeError, SpecError

from . import ndi_keep

NDI_HINT = 'NDI needs cyndilib: pip install "sd-bridge[ndi]"'


def import_cyndilib():  # noqa: ANN201 - returns the module
    try:
        import cyndilib  # noqa: F401
        from cyndilib import finder, receiver, video_frame
        from cyndilib.wrapper import ndi_recv
    except ImportError as exc:
        raise BackendMissing(NDI_HINT) from exc
    return finder, receiver, video_frame, ndi_recv


def match_source(names: list[str], wanted: str) -> str | None:
    """The source whose name equals `wanted`, else whose stream name equals it, else the first
    that contains it (case-insensitive). NDI names look like "HOST (stream)"."""
    low = wanted.lower()
    for n in names:
        if n.lower() == low:
            return n
    for n in names:
        if "(" in n and n.rsplit("(", 1)[1].rstrip(")").lower() == low:
            return n
    for n in sorted(names):
        if low in n.lower():
            return n
    return None


def _discovery_hint() -> str:
    from bridge.mdns_status import AVAHI_FIX, mdns_problem

    problem = mdns_problem()
    return f"; {problem}: {AVAHI_FIX}" if problem else ""


class NdiSource:
    """Receives the newest video frame of an NDI source.

    If the source is not on the network yet, or goes away (no frame for `stale_s`), the source
    raises; the runtime keeps the last frame going out and calls `open` again, which searches again.
    Its receiver stays connected to the sender's name meanwhile, and NDI picks the sender up again
    when it comes back (see `ndi_keep` for why a receiver is never closed).
    """

    fps = None
    keep_alpha = False
    """RGBA frames instead of RGB (a mask source: TouchDesigner's alpha sent over NDI)."""

    def __init__(self, wanted: str, discover_s: float = 5.0, stale_s: float = 3.0) -> None:
        if not wanted:
            raise SpecError("ndi: expected a source name, e.g. ndi:TouchDesigner")
        self.wanted = wanted
        self.name = f"ndi:{wanted}"
        self.discover_s = discover_s
        self.stale_s = stale_s
        self._receiver = None
        self._frame = None
        self._last = 0.0
        self._last_ts: float | None = None
        self.source_name: str | None = None

    def preflight(self) -> None:
        import_cyndilib()

    def open(self, width: int, height: int) -> None:
        finder = ndi_keep.finder()
        deadline = time.monotonic() + self.discover_s
        found = None
        while found is None and time.monotonic() < deadline:
            # Poll: cyndilib holds the GIL inside wait_for_sources, so a blocking wait would
            # freeze every other thread of the daemon (the output's hold timer included).
            finder.wait_for_sources(0)
            found = match_source(finder.get_source_names(), self.wanted)
            if found is None:
                time.sleep(0.05)
        if found is None:
            seen = finder.get_source_names()
            hint = "" if seen else _discovery_hint()
            names = ", ".join(seen) or "none"
            raise BridgeError(f"{self.name}: no NDI source matches (sources seen: {names}){hint}")
        try:
            self._receiver, self._frame = ndi_keep.take(found)
        except LookupError as exc:
            raise BridgeError(f"{self.name}: {exc}") from exc
        self.source_name = found
        self._last = time.monotonic()
        # A kept receiver still shows the last frame it got: that one is not new.
        self._receiver.frame_sync.capture_video()
        self._last_ts = self._frame.get_timestamp_posix() if self._frame.xres > 0 else None

    def read(self) -> np.ndarray | None:
        assert self._receiver is not None and self._frame is not None
        # NDI's frame sync returns the newest frame at once (never blocks); a new frame is one
        # with a new timestamp. Waiting happens in time.sleep, which lets the engine thread run.
        frame = self._frame
        self._receiver.frame_sync.capture_video()
        ts = frame.get_timestamp_posix()
        if frame.xres <= 0 or ts == self._last_ts:
            if time.monotonic() - self._last > self.stale_s:
                raise BridgeError(f"{self.name}: no frame for {self.stale_s:g} s, searching again")
            time.sleep(0.004)
            return None
        self._last_ts, self._last = ts, time.monotonic()
        h, w = frame.yres, frame.xres
        rgba = np.asarray(frame).reshape(h, w, 4)
        # Always a copy: a view left alive on the frame's buffer makes the next capture fail.
        return rgba.copy() if self.keep_alpha else np.ascontiguousarray(rgba[..., :3])

    def close(self) -> None:
        """Park the receiver, still connected (see `ndi_keep`: destroying it would stop the daemon)."""
        if self._receiver is not None and self.source_name is not None:
            ndi_keep.park(self.source_name, self._receiver, self._frame)
        self._receiver = None
        self._frame = None
